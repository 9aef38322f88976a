"""What the validator asks MLX, answered by the venv's Python; prints a ProbeAnswer as JSON. The judging is
on the tool side (validate.py), so it is tested with other answers.

    python -m mlxtasks.runtime.probe --spec '{"groups": ["mlx", "accelerator"], "models": ["/path/to/model"]}'
"""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Callable
from typing import Any

from ..protocol import ProbeAnswer, ProbeSpec
from . import gpu

MLX_LM_API = {
    "mlx_lm": ("load", "stream_generate"),
    "mlx_lm.sample_utils": ("make_sampler",),
    "mlx_lm.models.cache": ("make_prompt_cache",),
}
DEEP_TOKENS = 8


def _cause(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}"


def _with_mlx(ask: Callable[[Any], dict]) -> dict:
    try:
        import mlx.core as mx
    except Exception as exc:  # noqa: BLE001 - a broken install is the answer
        return {"import_error": _cause(exc)}
    return ask(mx)


def _mlx(mx: Any) -> dict:
    a = mx.arange(10)
    return {
        "version": mx.__version__,
        "default_device": str(mx.default_device()),
        "compute": {
            "sum_of_squares": (a * a).sum().item(),
            "matmul": (mx.array([[1.0, 2.0], [3.0, 4.0]]) @ mx.array([[5.0, 6.0], [7.0, 8.0]])).tolist(),
        },
    }


def _accelerator(mx: Any) -> dict:
    """The device MLX uses, and a 1024x1024 matmul on it against numpy's float64."""
    import numpy as np

    rng = np.random.default_rng(0)
    left, right = (rng.standard_normal((1024, 1024), dtype=np.float32) for _ in range(2))
    product = np.array(mx.array(left) @ mx.array(right))
    expected = left.astype(np.float64) @ right.astype(np.float64)
    return {
        "default_device": str(mx.default_device()),
        "metal_available": mx.metal.is_available(),
        "cuda_available": mx.cuda.is_available(),
        "device_info": {k: v for k, v in mx.device_info().items() if isinstance(v, (int, str))},
        "matmul_error": float(np.abs(product - expected).max() / np.abs(expected).max()),
    }


def _mlx_lm() -> dict:
    try:
        modules = {name: importlib.import_module(name) for name in MLX_LM_API}
    except Exception as exc:  # noqa: BLE001
        return {"import_error": _cause(exc)}
    missing = [
        f"{module}.{name}"
        for module, names in MLX_LM_API.items()
        for name in names
        if not hasattr(modules[module], name)
    ]
    return {"version": modules["mlx_lm"].__version__, "missing_api": missing}


def _generate(folder: str) -> dict:
    """Load a model and generate a few tokens: load time and tokens/s from mlx_lm's own counts."""
    try:
        from mlx_lm import load, stream_generate

        start = time.perf_counter()
        model, tokenizer = load(folder)
        load_seconds = time.perf_counter() - start
        last = None
        for last in stream_generate(model, tokenizer, "Hello", max_tokens=DEEP_TOKENS):
            pass
        assert last is not None, "mlx_lm generated nothing"
        return {
            "load_seconds": load_seconds,
            "tokens": last.generation_tokens,
            "tokens_per_second": last.generation_tps,
        }
    except Exception as exc:  # noqa: BLE001 - a model that does not load is this check's answer
        return {"error": _cause(exc)}


QUESTIONS: dict[str, Callable[[], dict]] = {
    "mlx": lambda: _with_mlx(_mlx),
    "accelerator": lambda: _with_mlx(_accelerator),
    "mlx-lm": _mlx_lm,
}


def answer(spec: ProbeSpec) -> ProbeAnswer:
    """Each question in turn, timed; one that raises is answered with its cause, so the others still run."""
    asked = [
        *((group, QUESTIONS[group]) for group in spec.groups),
        *((folder, lambda folder=folder: _generate(folder)) for folder in spec.models),
    ]
    answers, seconds = {}, {}
    for key, ask in asked:
        start = time.perf_counter()
        try:
            answers[key] = ask()
        except Exception as exc:  # noqa: BLE001 - the tool side reports it as this check's crash
            answers[key] = {"crashed": _cause(exc)}
        seconds[key] = time.perf_counter() - start
    return ProbeAnswer(answers, seconds)


def main() -> None:
    gpu.use_kernel_cache()
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True, help="a ProbeSpec as JSON")
    print(answer(ProbeSpec.from_json(parser.parse_args().spec)).to_json())


if __name__ == "__main__":
    main()
