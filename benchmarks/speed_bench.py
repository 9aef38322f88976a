"""`invoke bench`'s own honesty: the generation tokens/s its runtime reports against the figure
mlx_lm's stream_generate reports itself (what `mlx_lm.benchmark` prints), same model, same prompt,
runs interleaved in one process of the venv's Python."""

from __future__ import annotations

import statistics
from pathlib import Path

from harness import Result, measure_in_venv

PROMPT, TOKENS, RUNS = 128, 256, 20
MEASURE = """
import json, sys
from mlx_lm import load, stream_generate
from mlxtasks.protocol import BenchSpec
from mlxtasks.runtime.bench import Bench

path, prompt, tokens, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
model, tokenizer = load(path)
tokenizer.eos_token_ids = set()  # as bench and mlx_lm.benchmark do
bench = Bench(BenchSpec(models=(), prompt_tokens=(prompt,), generation_tokens=tokens, runs=1, warmup=0))
ids = bench.prompt(tokenizer, 1, prompt)

def raw():
    for last in stream_generate(model, tokenizer, ids, max_tokens=tokens, sampler=bench.sampler):
        pass
    return last.generation_tps

def ours():  # as invoke bench derives it (mlxtasks.bench.mlx_run)
    run = bench.measure(model, tokenizer, ids)
    return (run.generation_tokens - 1) / run.generation_s

raw(); ours()  # warm-up
runs = {"mlx_lm": [], "bench": []}
for _ in range(repeats):
    runs["mlx_lm"].append(raw())
    runs["bench"].append(ours())
print(json.dumps(runs))
"""


def bench_vs_mlx_lm(work: Path) -> Result:
    runs = measure_in_venv(work, MEASURE, PROMPT, TOKENS, RUNS)
    ours, theirs = statistics.median(runs["bench"]), statistics.median(runs["mlx_lm"])
    ratio = ours / theirs
    return Result(
        f"`invoke bench` generation tokens/s vs mlx_lm's own figure (tiny qwen2, {PROMPT}-token prompt, {TOKENS} tokens)",
        f"{ours:.1f} vs {theirs:.1f} tokens/s = {ratio:.1%}",
        "within 5% either way",
        abs(ratio - 1) <= 0.05,
        runs,
        (
            f"medians of {RUNS} interleaved runs each, after a warm-up, in one process, on the same prompt ids; mlx_lm "
            "counts the first token among the generation time's tokens, bench leaves it to the prompt's time (about 0.4% "
            f"lower at {TOKENS} tokens); per-token overhead weighs more on the tiny model than on a real one",
        ),
    )


BENCHMARKS = [bench_vs_mlx_lm]
