"""The prompt cache's disk tier (issue 32): a 10-turn agent conversation with a long fixed prefix (a system prompt
and tool descriptions, as coding agents send), broken between turns 5 and 6 by a server stop and start, by
serve.unload, or by an LRU unload for another model, each with the disk tier on and off; each turn's seconds to
its first token. With it on, the caches are written as soon as each turn ends (disk_cache_write_s 0, the most
writing there can be), so the turns measure what writing costs them too.

Callable with any MLX venv and model folder, for a GPU run through the lead's device tool:
    python benchmarks/disk_cache_bench.py VENV_PYTHON MODEL_FOLDER --prefix 16000 --out disk.json
(the checkout's runtime code runs, through PYTHONPATH). On this machine run.py runs it on SmolLM2-135M."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from harness import ROOT, Result, real_model, venv_python
from serve_bench import free_port, post_streamed

from mlxtasks.protocol import ServedModel, ServeSpec

TURNS, BREAK_AFTER = 10, 5
PREFIX_TOKENS = 1000  # on this CPU with SmolLM2; the GPU run: 16,000
REPLY_TOKENS = 8
BREAKS = ("restart", "unload", "lru")
TOOL = (
    "Tool {n}: run_command_{n}. Runs a shell command in the user's project folder and returns its output, its exit "
    "status and the time it took. Use it to read files, run the tests and search the code; never to delete files. "
)
ASKS = ["List the files.", "Open main.py.", "Rename run to start.", "Add a docstring.", "Run the tests."]
ASKS += ["One test failed: why?", "Fix it.", "Run the tests again.", "Write a commit message.", "Thank you."]


def prefix_text(tokens: int) -> str:
    """A coding agent's system prompt of about `tokens` tokens (a tool description is about 50)."""
    return "You are a coding agent in the user's terminal.\n" + "".join(
        TOOL.format(n=n) for n in range(max(1, tokens // 50))
    )


class Server:
    """Our runtime server on a spec, its state in `state`; the checkout's code through PYTHONPATH."""

    def __init__(self, python: Path, state: Path, spec: ServeSpec):
        self.python, self.state, self.spec = python, state, spec
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
        with open(self.state / "serve.log", "ab") as log:
            self.process = subprocess.Popen(
                [str(self.python), "-m", "mlxtasks.runtime.server", self.spec.to_json()],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.state / "serve.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.spec.port}/health", timeout=5)
                return
            except OSError:
                time.sleep(0.25)
        raise SystemExit("the server did not start")

    def stop(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)

    def post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.spec.port}{path}", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=900) as answer:
            return json.loads(answer.read())

    def warm(self, model: str) -> None:
        """A short request: loads the model if it is not, and compiles what a first request does."""
        self.post("/v1/completions", {"model": model, "prompt": "Hello", "max_tokens": 1})


def conversation(python: Path, folder: Path, prefix: int, broken_by: str, disk: bool, work: Path) -> dict:
    """Each turn's seconds to its first token, and turn 1's prompt tokens."""
    state = Path(tempfile.mkdtemp(dir=work))
    need = 4 * 10**9  # as judged by the pool: what matters is that two do not fit the budget
    installed = [ServedModel("agent", str(folder), [], need=need), ServedModel("other", str(folder), [], need=need)]
    spec = ServeSpec(
        alias="agent",
        model=str(folder),
        names=[],
        port=free_port(),
        installed=installed,
        budget=int(1.5 * need),  # one model at a time: asking for the other unloads the first
        keep_alive=-1,
        log_file=str(state / "serve.log"),
        disk_cache_folder=str(state / "prompt-cache"),
        disk_cache_bytes=(8 << 30) if disk else 0,
        disk_cache_write_s=0.0,
    )
    server = Server(python, state, spec)
    server.start()
    server.warm("agent")
    system = prefix_text(prefix)
    counted = server.post(
        "/v1/messages/count_tokens",
        {"model": "agent", "system": system, "messages": [{"role": "user", "content": ASKS[0]}]},
    )["input_tokens"]
    messages, firsts = [{"role": "system", "content": system}], []
    try:
        for turn, ask in enumerate(ASKS, 1):
            if turn == BREAK_AFTER + 1:
                if broken_by == "restart":
                    server.stop()
                    server.start()
                elif broken_by == "unload":
                    server.post("/v1/mlxtasks/unload", {"model": "agent"})
                else:
                    server.warm("other")  # loads it, unloading the agent's model
                server.warm("agent")
            messages.append({"role": "user", "content": ask})
            answer = post_streamed(
                spec.port,
                "/v1/chat/completions",
                {
                    "model": "agent",
                    "messages": messages,
                    "max_tokens": REPLY_TOKENS,
                    "temperature": 0,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                },
            )
            firsts.append(answer["first"])
            messages.append({"role": "assistant", "content": answer["text"]})
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)
    return {"first_s": firsts, "prompt_tokens": counted}


def measure(python: Path, folder: Path, prefix: int, work: Path) -> dict:
    """Every break with the disk tier on and off."""
    return {
        f"{broken_by}_{'on' if disk else 'off'}": conversation(python, folder, prefix, broken_by, disk, work)
        for broken_by in BREAKS
        for disk in (True, False)
    }


def verdict(found: dict) -> tuple[bool, list[str]]:
    """Whether the targets hold, and a line for each break."""
    lines, held = [], True
    for broken_by in BREAKS:
        on, off = found[f"{broken_by}_on"]["first_s"], found[f"{broken_by}_off"]["first_s"]
        sixth, fifth = on[BREAK_AFTER], on[BREAK_AFTER - 1]
        others = [(a, b) for i, (a, b) in enumerate(zip(on, off, strict=True)) if i not in (0, BREAK_AFTER)]
        slowest = max(a / b for a, b in others)
        ok = sixth <= 1.5 * fifth and sixth <= 0.2 * off[BREAK_AFTER] and slowest <= 1 + NOISE
        held = held and ok
        lines.append(
            f"{broken_by}: turn 6 {sixth:.3f} s against turn 5's {fifth:.3f} s ({sixth / fifth:.2f}x) and "
            f"{off[BREAK_AFTER]:.3f} s with the disk tier off ({sixth / off[BREAK_AFTER]:.0%}); turns 2-5 and 7-10 "
            f"{sum(a for a, _ in others):.1f} s on, {sum(b for _, b in others):.1f} s off, one turn at most {slowest:.2f}x"
        )
    return held, lines


NOISE = 0.15  # the other turns on this shared 2-core machine: on/off within this share counts as no slower


def serve_disk_cache(work: Path) -> Result:
    folder = real_model(work)
    found = measure(venv_python(work), folder, PREFIX_TOKENS, work)
    held, lines = verdict(found)
    tokens = found["restart_on"]["prompt_tokens"]
    return Result(
        f"The prompt cache on disk: a {TURNS}-turn agent conversation with a {tokens}-token prefix, broken after turn "
        f"{BREAK_AFTER} (SmolLM2-135M)",
        "; ".join(lines),
        "turn 6's first token <= 1.5x turn 5's and <= 20% of turn 6 with the disk tier off; no other turn (turn 1 "
        f"aside: both prefill it all) slower with it on (within {NOISE:.0%})",
        held,
        {key: value["first_s"] for key, value in found.items()},
        (
            "each turn's time to its first token, streamed; after each break a 1-token request loads the model "
            "again (its load is not in turn 6); the disk tier writes each turn's cache as it ends "
            "(disk_cache_write_s 0), so its writing overlaps the next turn",
        ),
    )


BENCHMARKS = [serve_disk_cache]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("python", type=Path, help="an MLX venv's Python")
    parser.add_argument("model", type=Path, help="an MLX model folder")
    parser.add_argument("--prefix", type=int, default=PREFIX_TOKENS, help="tokens of the fixed prefix")
    parser.add_argument("--out", type=Path, help="where to write the JSON (default: stdout)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        found = measure(args.python, args.model, args.prefix, Path(work))
    held, lines = verdict(found)
    text = json.dumps({"held": held, "lines": lines, **found}, indent=1)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    sys.exit(0 if held else 1)


if __name__ == "__main__":
    main()
