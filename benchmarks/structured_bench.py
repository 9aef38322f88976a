"""What a structured answer costs (issue 31): the server's decode rate with a JSON schema against the same request
without one, for one stream and for STREAMS at once, and the time llguidance takes to read a model's vocabulary
(once per model) and to compile a nested schema (once per request). run.py runs it on SmolLM2-135M-Instruct in
the set-up venv; on any machine, with any MLX venv that has mlx-lm, llguidance and the server's packages, and a
model folder (the checkout's code runs there, through PYTHONPATH), from the checkout:

    .venv/bin/python benchmarks/structured_bench.py --python VENV/bin/python --model FOLDER

prints the figures as JSON (--doc: and puts them in docs/performance.md's rows); cuda_bench.py --only structured runs it on a lent GPU with the 7B-shaped model."""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from harness import ROOT, Result, real_model, venv_python
from serve_bench import decode_rate, free_port, post_streamed, special_ids

from mlxtasks.protocol import ServeSpec

TOKENS, STREAMS, RUNS = 64, 8, 3
PROMPT = "List the people of a small town as JSON: each one's name, age, role, address and scores."
# Nested objects, arrays, enums and required fields; at least 50 people, so that no answer ends before TOKENS:
# the runs with and without the schema make the same number of tokens.
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "role": {"enum": ["admin", "editor", "viewer"]},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["city", "zip"],
        },
        "scores": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"subject": {"type": "string"}, "value": {"type": "number"}},
                "required": ["subject", "value"],
            },
        },
    },
    "required": ["name", "age", "role", "address", "scores"],
}
SCHEMA = {
    "type": "object",
    "properties": {"people": {"type": "array", "items": PERSON, "minItems": 50}},
    "required": ["people"],
}
FORMAT = {"type": "json_schema", "json_schema": {"name": "town", "schema": SCHEMA, "strict": True}}

# In the venv: llguidance's reading of the model's vocabulary, then compiles of SCHEMA (the first warms up).
COMPILE = """
import json, statistics, sys, time
from mlx_lm.utils import load_tokenizer
from pathlib import Path
from mlxtasks.runtime.server.grammar import Grammars
from mlxtasks.runtime.server.request import Format
folder, schema = Path(sys.argv[1]), json.loads(sys.argv[2])
config = json.loads((folder / "config.json").read_text())
tokenizer = load_tokenizer(folder)
vocab = int(config.get("vocab_size") or len(tokenizer.get_vocab()))
grammars = Grammars(tokenizer, vocab, sorted(tokenizer.eos_token_ids))
start = time.perf_counter(); grammars.vocabulary(); vocabulary = time.perf_counter() - start
grammars.compile(Format(schema))
times = []
for _ in range(5):
    start = time.perf_counter(); grammars.compile(Format(schema)); times.append(time.perf_counter() - start)
print(json.dumps({"vocab": vocab, "vocabulary_s": vocabulary, "compile_s": statistics.median(times)}))
"""


def env() -> dict[str, str]:
    """The checkout's mlxtasks first, whatever the venv has installed."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }


def ask(port: int, bias: dict[str, float], structured: bool, n: int = 0, tokens: int = TOKENS) -> dict:
    body = {
        "messages": [{"role": "user", "content": f"{PROMPT} ({n})"}],  # each prompt new: no cache head start
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "logit_bias": bias,  # the end of turn away: every answer makes TOKENS tokens
        **({"response_format": FORMAT} if structured else {}),
    }
    return post_streamed(port, "/v1/chat/completions", body)


def parallel(port: int, bias: dict[str, float], structured: bool, base: int, tokens: int = TOKENS) -> float:
    """STREAMS requests at once: all their tokens over the wall time."""
    start = time.perf_counter()
    with ThreadPoolExecutor(STREAMS) as pool:
        runs = list(pool.map(lambda n: ask(port, bias, structured, base + n, tokens), range(STREAMS)))
    return sum(run["tokens"] for run in runs) / (time.perf_counter() - start)


def measure(
    python: Path,
    folder: Path,
    log: Path,
    run_env: dict | None = None,
    bias: dict[str, float] | None = None,
    tokens: int = TOKENS,
) -> dict:
    """Start the server on the model (the checkout's code in the venv's Python), then the runs with and without
    the schema, alternated so that a machine's drift falls on both; and the compile figures. bias: the end-of-turn
    tokens biased away (default: the tokenizer's added tokens)."""
    run_env = run_env or env()
    began = os.getloadavg()[0]
    compiled = json.loads(
        subprocess.run(
            [str(python), "-c", COMPILE, str(folder), json.dumps(SCHEMA)],
            env=run_env,
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        ).stdout
    )
    bias = bias or {str(i): -100.0 for i in special_ids(folder)}
    port = free_port()
    spec = ServeSpec(alias="model", model=str(folder), names=[], port=port, log_file=str(log))
    server = subprocess.Popen(
        [str(python), "-m", "mlxtasks.runtime.server", spec.to_json()],
        env=run_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(port, server)
        for structured in (False, True):  # warm-up: one stream, then a batch, each way
            ask(port, bias, structured, 1000, 8)
            parallel(port, bias, structured, 2000, 8)
        one: dict[bool, list[float]] = {False: [], True: []}
        many: dict[bool, list[float]] = {False: [], True: []}
        texts = []
        for run in range(RUNS):
            for structured in (False, True) if run % 2 == 0 else (True, False):  # neither always goes first
                answer = ask(port, bias, structured, 3000 + run, tokens)
                assert answer["tokens"] == tokens, answer
                one[structured].append(decode_rate(answer))
                texts += [answer["text"]] if structured else []
                many[structured].append(parallel(port, bias, structured, 4000 + 100 * run, tokens))
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert all(text.startswith('{"people": [{"name": "') for text in texts), texts  # the schema held
    return {
        **compiled,
        "one_plain_tps": statistics.median(one[False]),
        "one_schema_tps": statistics.median(one[True]),
        "many_plain_tps": statistics.median(many[False]),
        "many_schema_tps": statistics.median(many[True]),
        "tokens": tokens,
        "streams": STREAMS,
        "load": [began, os.getloadavg()[0]],
    }


def wait_until_up(port: int, server: subprocess.Popen) -> None:
    import http.client

    for _ in range(1200):
        if server.poll() is not None:
            raise SystemExit(f"the server exited ({server.returncode})")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/v1/models")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise SystemExit("the server did not start")


@functools.cache
def numbers(work: Path) -> dict:
    return measure(venv_python(work), real_model(work), work / "structured-serve.log")


def one_stream(found: dict, notes: tuple[str, ...] = ()) -> Result:
    share = found["one_schema_tps"] / found["one_plain_tps"]
    return Result(
        f"A structured answer, one stream: decode rate with a nested JSON schema against the same request without "
        f"({found['tokens']} tokens, warmed up, {RUNS} runs each, alternated)",
        f"{found['one_schema_tps']:.1f} tokens/s with the schema, {found['one_plain_tps']:.1f} without ({share:.0%})",
        ">= 90% of the same request without a schema",
        share >= 0.90,
        {k: found[k] for k in ("one_plain_tps", "one_schema_tps")},
        notes,
    )


def parallel_streams(found: dict, notes: tuple[str, ...] = ()) -> Result:
    share = found["many_schema_tps"] / found["many_plain_tps"]
    return Result(
        f"A structured answer, {found['streams']} parallel streams: aggregate rate with the schema against the same "
        "requests without",
        f"{found['many_schema_tps']:.1f} tokens/s with the schema, {found['many_plain_tps']:.1f} without ({share:.0%})",
        ">= 90% of the same requests without a schema",
        share >= 0.90,
        {k: found[k] for k in ("many_plain_tps", "many_schema_tps")},
        notes,
    )


def compile_times(found: dict, notes: tuple[str, ...] = ()) -> Result:
    return Result(
        "A structured answer's grammar: llguidance reading the model's vocabulary (once per model) and compiling "
        "the nested schema (once per request)",
        f"vocabulary ({found['vocab']:,} tokens) {found['vocabulary_s']:.2f} s once; a schema compile "
        f"{found['compile_s'] * 1e3:.1f} ms",
        "reported (no target)",
        True,
        {"vocabulary_s": found["vocabulary_s"], "compile_s": found["compile_s"]},
        notes,
    )


def structured_one_stream(work: Path) -> Result:
    return one_stream(numbers(work))


def structured_parallel_streams(work: Path) -> Result:
    return parallel_streams(numbers(work))


def structured_compile(work: Path) -> Result:
    return compile_times(numbers(work))


BENCHMARKS = [structured_one_stream, structured_parallel_streams, structured_compile]
MAKERS = [one_stream, parallel_streams, compile_times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", type=Path, required=True, help="the MLX venv's Python")
    parser.add_argument("--model", type=Path, required=True, help="a model folder")
    parser.add_argument("--tokens", type=int, default=TOKENS, help=f"tokens per answer (default {TOKENS})")
    parser.add_argument("--results", type=Path, help="a run's printed JSON, rendered instead of measuring again")
    parser.add_argument("--doc", action="store_true", help="also replace this benchmark's rows of performance.md")
    args = parser.parse_args()
    if args.results:
        found = json.loads(args.results.read_text())
    else:
        with tempfile.TemporaryDirectory() as work:
            found = measure(args.python, args.model.resolve(), Path(work) / "serve.log", tokens=args.tokens)
        print(json.dumps(found, indent=2))
    if args.doc:
        import run

        note = (
            f"Measured by structured_bench.py's command line, in the venv given, on {args.model.name}; load average "
            f"(1 minute) when it began and ended: {found['load'][0]:.1f}, {found['load'][1]:.1f} on "
            f"{os.cpu_count()} cores (other work on the machine: the runs with and without the schema alternate, "
            "but a load that changes between them moves the ratio)",
        )
        results = {bench.__name__: make(found, note) for bench, make in zip(BENCHMARKS, MAKERS, strict=True)}
        for name, result in results.items():
            run.show(name, result)
        run.update_doc(results, datetime.now(UTC))


if __name__ == "__main__":
    main()
