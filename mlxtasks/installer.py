"""Which installer to use: uv (shipped as a dependency) unless it cannot run, then pip."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from . import children
from .errors import MlxTasksError


@dataclass(frozen=True)
class Installer:
    name: str  # "uv" or "pip"
    uv: str = ""  # path of the uv binary when name == "uv"


def find_uv() -> str | None:
    """The uv binary that runs: the `uv` package's own first, then one on PATH."""
    found: list[str | None] = []
    try:
        from uv import find_uv_bin

        found.append(find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    found.append(shutil.which("uv"))
    for path in filter(None, found):
        try:
            if children.run([path, "--version"], capture_output=True, timeout=30).returncode == 0:
                return path
        except (OSError, subprocess.SubprocessError):
            continue
    return None


def choose(name: str) -> Installer:
    """auto: uv when it runs, else pip. uv: uv or a clear error. pip: pip."""
    if name == "pip":
        return Installer("pip")
    uv = find_uv()
    if uv:
        return Installer("uv", uv)
    if name == "uv":
        raise MlxTasksError(
            "The installer 'uv' was asked for, but uv is not installed or does not run.",
            fix="pip install uv, or use pip: invoke setup --installer pip",
        )
    return Installer("pip")
