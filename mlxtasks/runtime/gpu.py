"""What the CUDA backend asks of every runtime entry point.

MLX compiles its CUDA kernels the first time a process needs them (over a minute for a 7B model) and
keeps them in MLX_PTX_CACHE_DIR, by default /tmp/mlx/VERSION/ptx, which a reboot empties. Each runtime
entry point first points it at ~/.cache/mlxtasks/mlx-kernels/VERSION instead (use_kernel_cache), and says
so before a process's first generation, so that minute never looks like a hang.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..protocol import CUDA_COMPILING as COMPILING

_generated = False  # whether this process has generated yet


def kernel_cache(environ=os.environ) -> Path | None:
    """The cache folder MLX will use on Linux; None where MLX compiles nothing at run time (macOS)."""
    if not sys.platform.startswith("linux"):
        return None
    if environ.get("MLX_PTX_CACHE_DIR"):
        return Path(environ["MLX_PTX_CACHE_DIR"])
    from importlib.metadata import PackageNotFoundError, version

    try:
        mlx = version("mlx")
    except PackageNotFoundError:
        return None
    base = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mlxtasks" / "mlx-kernels" / mlx


def use_kernel_cache(environ=os.environ) -> None:
    """Keep compiled kernels where a reboot leaves them (before mlx is imported; a user's own setting wins)."""
    if "MLX_PTX_CACHE_DIR" not in environ and (folder := kernel_cache(environ)):
        environ["MLX_PTX_CACHE_DIR"] = str(folder)


def before_generation(say=lambda text: print(text, file=sys.stderr, flush=True)) -> None:
    """Call before each generation: on CUDA, the process's first one is announced."""
    global _generated
    if not _generated and is_cuda():
        say(COMPILING)
    _generated = True


def is_cuda() -> bool:
    import mlx.core as mx

    return not mx.metal.is_available() and mx.cuda.is_available()
