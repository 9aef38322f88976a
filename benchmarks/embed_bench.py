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

INPUTS, RUNS = 64, 5
# 64 short texts of a search index's size (5 to 20 words), each different
WORDS = "the a model reads text and writes vectors that place similar meanings near each other in space".split()
TEXTS = [" ".join(WORDS[(n * 7 + k) % len(WORDS)] for k in range(5 + n % 16)) + f" ({n})" for n in range(INPUTS)]

# The raw call: the texts tokenized once (as the server does: the end of text appended), then RUNS timed forward
# passes of the padded batch with pooling and normalization, after a warm-up.
RAW = """
import json, sys, time
import mlx.core as mx
from mlx_lm import load
model, tokenizer = load(sys.argv[1])
texts, runs = json.loads(sys.argv[2]), int(sys.argv[3])
end = tokenizer.get_vocab().get("<|endoftext|>", tokenizer.eos_token_id)
ids = [tokenizer.encode(text) + [end] for text in texts]
width = max(map(len, ids))
padded = mx.array([row + [end] * (width - len(row)) for row in ids])
last = mx.array([len(row) - 1 for row in ids])
def call():
    hidden = model.model(padded)[mx.arange(len(ids)), last].astype(mx.float32)
    vectors = hidden / mx.linalg.norm(hidden, axis=1, keepdims=True)
    mx.eval(vectors)
    return vectors
call()
seconds = []
for _ in range(runs):
    start = time.perf_counter()
    call()
    seconds.append(time.perf_counter() - start)
print(json.dumps({"seconds": seconds, "tokens": sum(map(len, ids))}))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(port: int, body: dict) -> tuple[float, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
    start = time.perf_counter()
    connection.request("POST", "/v1/embeddings", json.dumps(body), {"Content-Type": "application/json"})
    answer = connection.getresponse()
    reply = json.loads(answer.read())
    seconds = time.perf_counter() - start
    assert answer.status == 200 and len(reply["data"]) == INPUTS, reply
    return seconds, reply


def through_server(python: Path, model: Path, work: Path) -> dict:
    """The server (this checkout's code, run by the venv's Python) with the model: RUNS requests of the 64 texts
    for each encoding, after a warm-up."""
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
    os.environ["PYTHONPATH"] = str(ROOT)  # the server this checkout has, in the venv's Python
    serve.start(
        [str(python), "-m", "mlxtasks.runtime.server", spec.to_json()], state, serve.NO_MODEL, "127.0.0.1", port, 600
    )
    try:
        found = {}
        for encoding in ("base64", "float"):
            body = {"model": "embed", "input": TEXTS, "encoding_format": encoding}
            post(port, body)  # a warm-up (and the model's load)
            found[encoding] = [post(port, body)[0] for _ in range(RUNS)]
        return found
    finally:
        serve.stop(state)


def raw(python: Path, model: Path) -> dict:
    done = subprocess.run(
        [str(python), "-c", RAW, str(model), json.dumps(TEXTS), str(RUNS)], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout)


def figures(python: Path, model: Path, work: Path) -> dict:
    """Inputs per second: the raw call's and the server's for each encoding (medians of RUNS)."""
    base = raw(python, model)
    served = through_server(python, model, work)
    rates = {"raw": INPUTS / statistics.median(base["seconds"])}
    rates |= {encoding: INPUTS / statistics.median(seconds) for encoding, seconds in served.items()}
    return {"inputs_per_s": rates, "tokens": base["tokens"], "raw_s": base["seconds"], **served}


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
        {"raw_s": found["raw_s"], "base64_s": found["base64"], "float_s": found["float"]},
        (
            f"The {INPUTS} texts are {found['tokens']} tokens with the end of text each (5 to 20 words); medians of "
            f"{RUNS} runs after a warm-up. The raw side is the padded batch's forward pass, pooling and "
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
