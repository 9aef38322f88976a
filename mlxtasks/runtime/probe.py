"""The validator's checks that need MLX, run by the venv's Python; prints a JSON list of results.

    python -m mlxtasks.runtime.probe --os linux --backend cpu [--budget BYTES --budget-source TEXT] [--deep MODEL_FOLDER ...]
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

from ..checks import run_checks
from ..validate import MLX_LM_API, accelerator_checks, deep_result, mlx_checks, mlx_lm_checks

DEEP_TOKENS = 8


@functools.cache
def mlx_answers() -> dict:
    """What MLX says about itself; the judging is in validate.py, so it is tested with other answers."""
    try:
        import mlx.core as mx
        import numpy as np
    except Exception as exc:  # noqa: BLE001 - a broken install is the answer
        return {"import_error": f"{exc.__class__.__name__}: {exc}"}
    a = mx.arange(10)
    answers = {
        "version": mx.__version__,
        "default_device": str(mx.default_device()),
        "metal_available": mx.metal.is_available(),
        "cuda_available": mx.cuda.is_available(),
        "device_info": {k: v for k, v in mx.device_info().items() if isinstance(v, (int, str))},
        "compute": {
            "sum_of_squares": (a * a).sum().item(),
            "matmul": (mx.array([[1.0, 2.0], [3.0, 4.0]]) @ mx.array([[5.0, 6.0], [7.0, 8.0]])).tolist(),
        },
    }
    rng = np.random.default_rng(0)
    left, right = (rng.standard_normal((1024, 1024), dtype=np.float32) for _ in range(2))
    product = np.array(mx.array(left) @ mx.array(right))
    expected = left.astype(np.float64) @ right.astype(np.float64)
    answers["matmul_error"] = float(np.abs(product - expected).max() / np.abs(expected).max())
    return answers


def mlx_lm_answers() -> dict:
    import importlib

    try:
        modules = {name: importlib.import_module(name) for name in MLX_LM_API}
    except Exception as exc:  # noqa: BLE001
        return {"import_error": f"{exc.__class__.__name__}: {exc}"}
    missing = [f"{module}.{name}" for module, names in MLX_LM_API.items() for name in names
               if not hasattr(modules[module], name)]
    return {"version": modules["mlx_lm"].__version__, "missing_api": missing}


def deep_answer(folder: str) -> dict:
    """Load a model and generate a few tokens: load time and tokens/s from mlx_lm's own counts."""
    try:
        from mlx_lm import load, stream_generate

        start = time.perf_counter()
        model, tokenizer = load(folder)
        load_seconds = time.perf_counter() - start
        last = None
        for last in stream_generate(model, tokenizer, "Hello", max_tokens=DEEP_TOKENS):
            pass
        return {"load_seconds": load_seconds, "tokens": last.generation_tokens, "tokens_per_second": last.generation_tps}
    except Exception as exc:  # noqa: BLE001 - a model that does not load is this check's answer
        return {"error": f"{exc.__class__.__name__}: {exc}"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--os", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--budget", type=int, default=0, help="bytes a model may use (catalog.memory_budget)")
    parser.add_argument("--budget-source", default="", help="where that figure comes from, in words")
    parser.add_argument("--groups", nargs="*", default=["mlx", "accelerator", "mlx-lm"])
    parser.add_argument("--deep", nargs="*", default=[])
    args = parser.parse_args()
    checks = []
    if "mlx" in args.groups:
        checks.append(("mlx.import", "mlx.core imports", lambda: mlx_checks(mlx_answers())))
    if "accelerator" in args.groups:
        checks.append(("accelerator.device", "Accelerator", lambda: accelerator_checks(
            args.os, args.backend, mlx_answers(), (args.budget, args.budget_source))))
    if "mlx-lm" in args.groups:
        checks.append(("mlx-lm.import", "mlx_lm imports", lambda: mlx_lm_checks(mlx_lm_answers())))
    for folder in args.deep:
        name = Path(folder).name
        checks.append((f"models.{name}.generate", f"{name}: load and generate",
                       lambda folder=folder, name=name: deep_result(name, deep_answer(folder))))
    print(json.dumps([r.as_dict() for r in run_checks(checks)]))


if __name__ == "__main__":
    main()
