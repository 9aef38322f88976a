"""Embeddings (issue 31): a batch of 64 short texts through the server's POST /v1/embeddings, as inputs per second,
against the raw model call on the same texts (mlx_lm's qwen3 body on the padded batch, last-token pooling,
normalization; tokenizing left out). The model is random-weight and 8-bit (tests/support/tiny_model.py
--embedding): in the suite the tests' tiny one, since a 2-core CPU would take hours per batch at the real size;
on a GPU, or any machine with an MLX venv, Qwen3-Embedding-0.6B's exact shape and vocabulary (--shape
0.6b-embed, the default), whose speed is the real model's, or a real model's folder (--model):

    .venv/bin/python benchmarks/embed_bench.py --python VENV/bin/python
    .venv/bin/python benchmarks/embed_bench.py --python VENV/bin/python --model FOLDER

print the figures as JSON; the server runs this checkout's code (PYTHONPATH), nothing is installed. In the suite:
`benchmarks/run.py --only embeddings_throughput` (the set-up venv, the tiny model made there)."""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from harness import ROOT, Result, venv_python

from mlxtasks import serve
from mlxtasks.protocol import ServedModel, ServeSpec

INPUTS, RUNS = 64, 9
ENCODINGS = ("base64", "float")  # the openai SDK's default, and JSON's numbers (Ollama's only form)
# 64 short texts of a search index's size (5 to 20 words), each different
WORDS = "the a model reads text and writes vectors that place similar meanings near each other in space".split()
TEXTS = [" ".join(WORDS[(n * 7 + k) % len(WORDS)] for k in range(5 + n % 16)) + f" ({n})" for n in range(INPUTS)]

# The raw call, kept running beside the server: the texts tokenized once (as the server does: the end of text
# appended), a warm-up, then one timed forward pass of the padded batch with pooling and normalization for each
# line read, its seconds printed: raw calls and server requests take turns, so both see the same machine.
RAW = """
import json, sys, time
import mlx.core as mx
from mlx_lm import load
model, tokenizer = load(sys.argv[1])
texts = json.loads(sys.argv[2])
end = tokenizer.get_vocab().get("<|endoftext|>", tokenizer.eos_token_id)
ids = [tokenizer.encode(text) + [end] for text in texts]
width = max(map(len, ids))
padded = mx.array([row + [end] * (width - len(row)) for row in ids])
last = mx.array([len(row) - 1 for row in ids])
def call():
    hidden = model.model(padded)[mx.arange(len(ids)), last].astype(mx.float32)
    mx.eval(hidden / mx.linalg.norm(hidden, axis=1, keepdims=True))
call()
print(sum(map(len, ids)), flush=True)
for _ in sys.stdin:
    start = time.perf_counter()
    call()
    print(time.perf_counter() - start, flush=True)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(port: int, body: dict) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
    start = time.perf_counter()
    connection.request("POST", "/v1/embeddings", json.dumps(body), {"Content-Type": "application/json"})
    answer = connection.getresponse()
    reply = json.loads(answer.read())
    seconds = time.perf_counter() - start
    assert answer.status == 200 and len(reply["data"]) == INPUTS, reply
    return seconds


def figures(python: Path, model: Path, work: Path) -> dict:
    """Seconds of RUNS rounds, each a raw call and a server request in each encoding (after a warm-up of each),
    and inputs per second from their medians. The server runs this checkout's code in the venv's Python."""
    port, state = free_port(), work / "state"
    spec = ServeSpec(
        alias="",
        model="",
        names=[],
        port=port,
        installed=[ServedModel("embed", str(model), [], kind="embedding")],
        keep_alive=-1,
        log_file=str(serve.log_path(state)),
        exit_file=str(serve.exit_path(state)),
    )
    os.environ["PYTHONPATH"] = str(ROOT)
    serve.start(
        [str(python), "-m", "mlxtasks.runtime.server", spec.to_json()], state, serve.NO_MODEL, "127.0.0.1", port, 600
    )
    raw = subprocess.Popen(
        [str(python), "-c", RAW, str(model), json.dumps(TEXTS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert raw.stdin and raw.stdout
    try:
        tokens = int(raw.stdout.readline())
        bodies = {encoding: {"model": "embed", "input": TEXTS, "encoding_format": encoding} for encoding in ENCODINGS}
        for body in bodies.values():
            post(port, body)  # a warm-up (and the model's load)
        found: dict[str, list[float]] = {"raw": [], **{encoding: [] for encoding in ENCODINGS}}
        for _ in range(RUNS):
            raw.stdin.write("\n")
            raw.stdin.flush()
            found["raw"].append(float(raw.stdout.readline()))
            for encoding, body in bodies.items():
                found[encoding].append(post(port, body))
    finally:
        raw.kill()
        serve.stop(state)
    rates = {what: INPUTS / statistics.median(seconds) for what, seconds in found.items()}
    return {"inputs_per_s": rates, "tokens": tokens, "load": os.getloadavg()[0], **found}


def make_model(python: Path, out: Path, shape: str) -> Path:
    subprocess.run(
        [str(python), str(ROOT / "tests" / "support" / "tiny_model.py"), str(out), "--shape", shape, "--embedding"],
        check=True,
        capture_output=True,
    )
    return out


@functools.cache
def numbers(work: Path) -> dict:
    python = venv_python(work)
    return figures(python, make_model(python, work / "embed-model", "tiny"), work / "embed-bench")


def embeddings_throughput(work: Path) -> Result:
    found = numbers(work)
    rates = found["inputs_per_s"]
    share = {encoding: rates[encoding] / rates["raw"] for encoding in ("base64", "float")}
    return Result(
        f"Embeddings: {INPUTS} short texts per request through POST /v1/embeddings against the raw model call "
        "(the tests' tiny qwen3 embedding model, 8-bit, random weights)",
        f"{rates['base64']:.1f} inputs/s as base64 (the openai SDK's default; {share['base64']:.0%} of raw), "
        f"{rates['float']:.1f} as JSON floats ({share['float']:.0%}); raw call {rates['raw']:.1f} inputs/s",
        ">= 90% of the raw call's inputs/s (base64 and floats)",
        min(share.values()) >= 0.90,
        {"raw_s": found["raw"], "base64_s": found["base64"], "float_s": found["float"]},
        (
            f"The {INPUTS} texts are {found['tokens']} tokens with the end of text each (5 to 20 words); medians of "
            f"{RUNS} rounds after a warm-up, each a raw call then a request in each encoding, so both see the same "
            "machine (other sessions' tests shared its 2 cores: load average "
            f"{found['load']:.1f} at the end). The raw side is the padded batch's forward pass, pooling and "
            "normalization only; the server's adds HTTP, JSON, tokenizing and the vectors' encoding.",
        ),
    )


BENCHMARKS = [embeddings_throughput]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", type=Path, required=True, help="an MLX venv's python (mlx, mlx-lm, starlette)")
    parser.add_argument("--model", type=Path, help="an embedding model's folder (default: make a random one)")
    parser.add_argument("--shape", default="0.6b-embed", help="the random model's shape: 0.6b-embed or tiny")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlxtasks-embed-bench-") as work:
        model = args.model or make_model(args.python, Path(work) / "model", args.shape)
        print(json.dumps(figures(args.python, model, Path(work)), indent=2))


if __name__ == "__main__":
    main()
