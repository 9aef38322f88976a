"""What the GPU backends ask of every runtime entry point: CUDA's kernel cache, and Metal's working-set warning
kept off stdout.

MLX compiles its CUDA kernels the first time a process needs them (over a minute for a 7B model) and
keeps them in MLX_PTX_CACHE_DIR, by default /tmp/mlx/VERSION/ptx, which a reboot empties. Each runtime
entry point first points it at ~/.cache/mlxtasks/mlx-kernels/VERSION instead (use_kernel_cache), and says
so before a process's first generation, so that minute never looks like a hang.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from ..protocol import CUDA_COMPILING as COMPILING
from ..protocol import xdg_folder

_generated = False  # whether this process has generated yet
_warned = False  # whether this process has said the model is near Metal's working set
# What mlx_lm's wired_limit() prints on stdout when the model is above 90% of Metal's recommended working set.
WORKING_SET_WARNING = re.compile(
    r"\[WARNING\] Generating with a model that requires (\d+) MB which is close to the "
    r"maximum recommended size of (\d+) MB\..*\n?"
)
Item = TypeVar("Item")


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
    return xdg_folder("XDG_CACHE_HOME", Path.home() / ".cache", environ) / "mlxtasks" / "mlx-kernels" / mlx


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


def answer_only(
    generation: Iterator[Item], say=lambda text: print(text, file=sys.stderr, flush=True)
) -> Iterator[Item]:
    """stream_generate's items, with what mlx_lm prints on stdout while making them kept off it, so stdout carries only
    the answer: its working-set warning is said once per process in our words, anything else goes as it was, both
    through say (stderr). Closing this closes the generation (mlx_lm then puts the wired limit back)."""
    global _warned
    try:
        while True:
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                item: Item | io.StringIO = next(generation, printed)  # printed: the generation has ended
            text = printed.getvalue()
            near = WORKING_SET_WARNING.search(text)
            if near:
                text = text[: near.start()] + text[near.end() :]
                if not _warned:
                    say(
                        f"(the model needs {int(near[1]):,} MB, close to the {int(near[2]):,} MB Metal recommends the GPU "
                        "use at most, so answers may be slow; a smaller model fits better: invoke models.list)"
                    )
                _warned = True
            if text.strip():
                say(text.rstrip("\n"))
            if isinstance(item, io.StringIO):
                return
            yield item
    finally:
        close = getattr(generation, "close", None)
        if close:
            close()
