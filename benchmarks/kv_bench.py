"""The quantized KV cache (kv_bits, issue 32): the context it buys (fit's arithmetic) and what it costs in decode
speed and quality (kv_measure.py in an MLX venv, with SmolLM2).

In the suite: `benchmarks/run.py --only kv_context kv_decode kv_quality`. On another machine (a GPU's, through
cuda_bench.py's venv, say), with any model folder and MLX venv that has mlxtasks importable:
    python3 benchmarks/kv_bench.py --python VENV/bin/python --model FOLDER [--context 3072] [--steps 64]
prints kv_measure.py's decode figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

from harness import ROOT, Result, real_model, venv_python

from mlxtasks import catalog, fit
from mlxtasks.facts import GB

MEASURE = ROOT / "benchmarks" / "kv_measure.py"
MODEL = "qwen3-8b"
BUDGETS_GB = (8, 16)
CONTEXT = 3072  # tokens before the timed decode steps: the KV cache is most of attention's reading there
STEPS = 64
QUALITY_TEXT = ROOT / "docs" / "serve.md"  # English prose with code: long enough for QUALITY_TOKENS
QUALITY_TOKENS = 2048


def measure(python: Path, model: Path, *args: object) -> dict:
    done = subprocess.run(
        [str(python), str(MEASURE), str(model), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"kv_measure.py failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout)


def kv_context(work: Path) -> Result:
    """The longest context qwen3-8b fits in 8 and 16 GB, 16-bit and at kv_bits 8 and 4 (fit.py; no model runs)."""
    model = catalog.find(MODEL, catalog.BUILTIN)
    weights, rows, raw = int(model.size_gb * GB), [], {}
    for budget in BUDGETS_GB:
        fits = {
            bits: fit.largest_context(weights, replace(model.shape, kv=fit.KV(bits), context=0), budget * GB)
            for bits in (0, 8, 4)
        }
        raw.update({f"{budget}gb_kv{bits or 16}": float(tokens) for bits, tokens in fits.items()})
        rows.append(f"{budget} GB: " + ", ".join(f"{tokens:,} at {bits or 16} bits" for bits, tokens in fits.items()))
    more = raw["8gb_kv8"] / raw["8gb_kv16"]
    return Result(
        f"longest context of {MODEL} ({model.size_gb} GB of weights) that fits a budget, by KV cache bits",
        "; ".join(rows),
        "kv_bits 8 fits at least 1.8x the tokens of a 16-bit cache in the same budget",
        more >= 1.8,
        raw,
        (
            f"{MODEL}'s own limit is {model.context:,} tokens: fit caps the context there (models.list shows "
            f"{min(int(raw['8gb_kv16']), model.context) // 1000}k at 16 bits and "
            f"{min(int(raw['8gb_kv8']), model.context) // 1000}k at 8 bits in 8 GB); the figures here are uncapped",
            "a quantized value costs bits/8 bytes plus a 16-bit scale and bias per 64 values: 53% of 16-bit at 8 "
            "bits, 28% at 4",
        ),
    )


def kv_decode(work: Path) -> Result:
    """One stream's decode tokens/s after CONTEXT tokens, with the KV cache at 16, 8 and 4 bits (SmolLM2)."""
    found = measure(venv_python(work), real_model(work), "decode", CONTEXT, STEPS)
    rates = found["tokens_per_s"]
    share = rates["kv8"] / rates["kv16"]
    return Result(
        f"SmolLM2-135M decode after {CONTEXT:,} tokens, by KV cache bits ({found['device']})",
        ", ".join(f"{rates[k]:.1f} tokens/s at {k[2:]} bits" for k in ("kv16", "kv8", "kv4"))
        + f" (8-bit: {share:.0%} of 16-bit)",
        "decode with an 8-bit KV cache >= 90% of the 16-bit cache's tokens/s",
        share >= 0.9,
        {key: float(value) for key, value in rates.items()},
    )


def kv_quality(work: Path) -> Result:
    """SmolLM2's perplexity over docs/serve.md's first QUALITY_TOKENS tokens, and top-1 agreement with 16-bit."""
    found = measure(venv_python(work), real_model(work), "quality", QUALITY_TEXT, QUALITY_TOKENS)
    base = found["kv16"]["perplexity"]
    eight, four = found["kv8"], found["kv4"]
    return Result(
        f"SmolLM2-135M over {found['tokens']:,} tokens of docs/serve.md, its cache quantized from the first token",
        f"perplexity {base:.3f} at 16 bits, {eight['perplexity']:.3f} at 8 ({eight['perplexity'] / base - 1:+.2%}), "
        f"{four['perplexity']:.3f} at 4 ({four['perplexity'] / base - 1:+.2%}); the top next token agrees with "
        f"16-bit's at {eight['agreement']:.1%} of positions at 8 bits, {four['agreement']:.1%} at 4",
        "8-bit within 1% of 16-bit's perplexity (the cost is stated, not tuned for)",
        eight["perplexity"] <= base * 1.01,
        {
            "kv16_perplexity": base,
            "kv8_perplexity": eight["perplexity"],
            "kv4_perplexity": four["perplexity"],
            "kv8_agreement": eight["agreement"],
            "kv4_agreement": four["agreement"],
        },
    )


BENCHMARKS = [kv_context, kv_decode, kv_quality]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", required=True, type=Path, help="an MLX venv's python")
    parser.add_argument("--model", required=True, type=Path, help="an MLX model folder")
    parser.add_argument("--context", type=int, default=CONTEXT)
    parser.add_argument("--steps", type=int, default=STEPS)
    args = parser.parse_args()
    print(json.dumps(measure(args.python, args.model, "decode", args.context, args.steps)))


if __name__ == "__main__":
    main()
