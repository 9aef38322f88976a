"""Chat overhead: our chat's reply vs raw mlx_lm.stream_generate on the same model, prompt and
settings, in one process of the venv's Python."""

from __future__ import annotations

import statistics
from pathlib import Path

from harness import Result, measure_in_venv

TOKENS = 512  # long enough that a run lasts about a second on the tiny model
RUNS = 20
MEASURE = """
import json, sys, time
from mlx_lm import load, stream_generate
from mlx_lm.sample_utils import make_sampler
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
    session = Session({"m": {"path": path, "sampling": {"temp": 0.0, "top_p": 1.0, "max_tokens": max_tokens}}}, "m", {})
    session.model, session.tokenizer = model, tokenizer  # the same loaded weights
    from mlx_lm.models.cache import make_prompt_cache
    session.cache, session.cached, session.context = make_prompt_cache(model), [], 4096
    session.reply(prompt[0]["content"], lambda text: None)
    return session.stats.generation_tps, session.stats.first_token_seconds

raw(); ours()  # warm-up
runs = {"raw": [], "ours": []}
for n in range(repeats):  # each pair in turn order, then the other, so drift favours neither
    for side in (("raw", raw), ("ours", ours))[:: 1 if n % 2 == 0 else -1]:
        runs[side[0]].append(side[1]())
print(json.dumps(runs))
"""


TARGET = "generation >= 97% and first token within +5%"


def judge(runs: dict) -> tuple[str, bool]:
    """MEASURE's runs: the figure and whether the target held."""
    best = {side: (statistics.median(tps for tps, _ in values), statistics.median(ttft for _, ttft in values))
            for side, values in runs.items()}
    tps_ratio = best["ours"][0] / best["raw"][0]
    ttft_ratio = best["ours"][1] / best["raw"][1]
    figure = (f"generation {best['ours'][0]:.1f} vs {best['raw'][0]:.1f} tokens/s = {tps_ratio:.1%}; "
              f"first token {best['ours'][1] * 1000:.0f} vs {best['raw'][1] * 1000:.0f} ms = {ttft_ratio - 1:+.1%}")
    return figure, tps_ratio >= 0.97 and ttft_ratio <= 1.05


def chat_overhead(work: Path) -> Result:
    runs = measure_in_venv(work, MEASURE, TOKENS, RUNS)
    figure, held = judge(runs)
    return Result(
        f"Chat overhead vs raw `mlx_lm.stream_generate` (the tests' tiny qwen2, 4-bit, {TOKENS} tokens)",
        figure, TARGET, held,
        {side: [t for pair in values for t in pair] for side, values in runs.items()},
        (f"medians of {RUNS} interleaved runs each (alternating which goes first), after a warm-up, in one process; the model is the tests' tiny 4-bit "
         "qwen2 (hidden 64, 2 layers), where per-token overhead weighs more, not less. The realistic shape the issue "
         "names (0.5B, 4-bit) makes under 2 tokens/s on this machine's CPU, so it ran on the lent GPU: see the CUDA "
         "section below",),
    )


BENCHMARKS = [chat_overhead]
