"""Chat overhead: our chat's reply vs raw mlx_lm.stream_generate on the same model, prompt and
settings, in one process of the venv's Python. And a one-shot's first token with a warm server against
loading the model in the answer's own process."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from pathlib import Path

from harness import INVOKE, Result, measure_in_venv, real_model, set_up_home, timed, user_env
from serve_bench import ALIAS, free_port

TOKENS = 512  # long enough that a run lasts about a second on the tiny model
RUNS = 20
MEASURE = """
import gc, json, sys, time
from mlx_lm import load, stream_generate
from mlx_lm.sample_utils import make_sampler
from mlxtasks.protocol import ChatModel
from mlxtasks.runtime.chat import Session

path, max_tokens, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
prompt = [{"role": "user", "content": "Write a function that sorts a list of numbers, and explain it."}]
model, tokenizer = load(path)

def raw():
    tokens = tokenizer.apply_chat_template(prompt, add_generation_prompt=True)
    start, first, last = time.perf_counter(), None, None
    for last in stream_generate(model, tokenizer, tokens, max_tokens=max_tokens, sampler=make_sampler(0.0)):
        first = first or time.perf_counter() - start
    return last.generation_tps, first

def ours():
    session = Session({"m": ChatModel.from_dict({"path": path, "sampling": {"temp": 0.0, "top_p": 1.0,
                                                                             "max_tokens": max_tokens}})}, "m", {})
    session.model, session.tokenizer = model, tokenizer  # the same loaded weights
    from mlx_lm.models.cache import make_prompt_cache
    session.cache, session.cached, session.context = make_prompt_cache(model), [], 4096
    session.reply(prompt[0]["content"], lambda text: None)
    return session.stats.generation_tps, session.stats.first_token_seconds

def without_gc(side):  # as timeit does: a collection landing in one side's 25 ms first token is noise
    gc.collect()
    gc.disable()
    try:
        return side()
    finally:
        gc.enable()

raw(); ours()  # warm-up
runs = {"raw": [], "ours": []}
for n in range(repeats):  # each pair in turn order, then the other, so drift favours neither
    for side in (("raw", raw), ("ours", ours))[:: 1 if n % 2 == 0 else -1]:
        runs[side[0]].append(without_gc(side[1]))
print(json.dumps(runs))
"""


TARGET = "generation >= 97% and first token within +5%"


def judge(runs: dict) -> tuple[str, bool]:
    """MEASURE's runs: the figure and whether the target held. Each run of ours is compared with the raw
    run beside it (the pair ran back to back), and the median of those ratios is judged, so a slow spell
    of the machine that spans several pairs moves both sides of each pair alike."""
    medians = {
        side: (statistics.median(tps for tps, _ in values), statistics.median(ttft for _, ttft in values))
        for side, values in runs.items()
    }
    pairs = list(zip(runs["raw"], runs["ours"], strict=True))
    tps_ratio = statistics.median(ours[0] / raw[0] for raw, ours in pairs)
    ttft_ratio = statistics.median(ours[1] / raw[1] for raw, ours in pairs)
    figure = (
        f"generation {medians['ours'][0]:.1f} vs {medians['raw'][0]:.1f} tokens/s, paired {tps_ratio:.2%}; "
        f"first token {medians['ours'][1] * 1000:.0f} vs {medians['raw'][1] * 1000:.0f} ms, paired {ttft_ratio - 1:+.1%}"
    )
    return figure, tps_ratio >= 0.97 and ttft_ratio <= 1.05


def chat_overhead(work: Path) -> Result:
    runs = measure_in_venv(work, MEASURE, TOKENS, RUNS)
    figure, held = judge(runs)
    return Result(
        f"Chat overhead vs raw `mlx_lm.stream_generate` (the tests' tiny qwen2, 4-bit, {TOKENS} tokens)",
        figure,
        TARGET,
        held,
        {side: [t for pair in values for t in pair] for side, values in runs.items()},
        (
            f"{RUNS} pairs of runs back to back (alternating which goes first, garbage collection paused during each run "
            "as timeit does), after a warm-up, in one process; 'paired' is the median of each pair's ratio; the model is the tests' tiny 4-bit "
            "qwen2 (hidden 64, 2 layers), where per-token overhead weighs more, not less. The realistic shape the issue "
            "names (0.5B, 4-bit) makes under 2 tokens/s on this machine's CPU, so it ran on the lent GPU: see the CUDA "
            "section below",
        ),
    )


ASK = ["What is the capital of France?", "--temp", "0", "--max-tokens", "8"]
ASK_RUNS = 3


def first_output(argv: list[str], home: Path, **env: str) -> float:
    """Seconds from starting a command to the first byte of its stdout (the answer's first token); it runs to its end.
    PYTHONDONTWRITEBYTECODE is left out unless given, as in a new user's shell (this machine sets it)."""
    start = time.perf_counter()
    environment = {k: v for k, v in user_env(home, **env).items() if k != "PYTHONDONTWRITEBYTECODE" or k in env}
    process = subprocess.Popen(
        argv, cwd=home, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None
    process.stdout.read(1)
    seconds = time.perf_counter() - start
    _, errors = process.communicate()
    if process.returncode:
        raise SystemExit(f"`{' '.join(argv)}` failed (exit {process.returncode}):\n{errors.decode()[-4000:]}")
    return seconds


def ask_first_token(work: Path) -> Result:
    home = set_up_home(work)
    models = work / "ask-bench" / "models"
    shutil.copytree(real_model(work), models / ALIAS)
    port = str(free_port())
    # As the shell's mlx-<alias> runs it: the venv's mlxtasks, from any folder.
    ask = [str(home / "venv-mlx" / "bin" / "mlxtasks"), "chat.ask", *ASK, "--model", ALIAS, "--models", str(models)]
    cold = [first_output(ask, home, INVOKE_MLX_SERVE_PORT=port) for _ in range(ASK_RUNS)]  # no server: loads here
    timed([INVOKE, "serve", ALIAS, "--port", port, "--models", str(models)], home)
    try:
        first_output(ask, home, INVOKE_MLX_SERVE_PORT=port)  # the server's first request warms it up
        warm = [first_output(ask, home, INVOKE_MLX_SERVE_PORT=port) for _ in range(ASK_RUNS)]
        no_bytecode = [
            first_output(ask, home, INVOKE_MLX_SERVE_PORT=port, PYTHONDONTWRITEBYTECODE="1") for _ in range(ASK_RUNS)
        ]
    finally:
        timed([INVOKE, "serve.stop"], home)
    ratio = statistics.median(warm) / statistics.median(cold)
    return Result(
        'A one-shot\'s first token (`mlx-<alias> "..."`): a warm server against loading the model in-process '
        "(SmolLM2-135M, 4-bit)",
        f"warm {statistics.median(warm):.2f} s, cold {statistics.median(cold):.2f} s ({ratio:.0%})",
        "warm <= 10% of cold",
        ratio <= 0.10,
        {"warm_s": warm, "cold_s": cold, "warm_no_bytecode_s": no_bytecode},
        (
            f"medians of {ASK_RUNS} runs of the venv's `mlxtasks chat.ask`, from its start to the first byte of the answer "
            "on stdout, the same prompt and greedy sampling; cold runs had no server (the model files in the page cache "
            "after the first), warm ones a server that had answered once (the whole prompt in its prompt cache)",
            f"PYTHONDONTWRITEBYTECODE=1 is this machine's default, unset above as in a new user's shell; set again once "
            f"those runs had left their bytecode (which Python still reads): warm {statistics.median(no_bytecode):.2f} s",
        ),
    )


BENCHMARKS = [chat_overhead, ask_first_token]
