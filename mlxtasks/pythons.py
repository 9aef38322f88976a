"""Finding a Python good enough for the venv (>= 3.11, native arch)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .config import MIN_PYTHON
from .errors import MlxTasksError
from .facts import PythonInfo, python_info

PATH_NAMES = ("python3.13", "python3.12", "python3.11", "python3")
# Homebrew (Apple Silicon, then Intel prefix), then python.org's framework builds.
MAC_LOCATIONS = tuple(
    f"{prefix}/python3.{minor}" for minor in (13, 12, 11) for prefix in ("/opt/homebrew/bin", "/usr/local/bin")
) + tuple(f"/Library/Frameworks/Python.framework/Versions/3.{minor}/bin/python3" for minor in (13, 12, 11))

INSTALL_PYTHON_FIX = (
    "install Python 3.12 (brew install python@3.12, or uv python install 3.12, or python.org), "
    "then run: invoke setup --python /path/to/python3.12"
)


def suitable(info: PythonInfo | None, machine: str) -> bool:
    """Recent enough and, on an arm64 Mac, not an x86_64 build running under Rosetta."""
    if info is None or info.version[:2] < MIN_PYTHON:
        return False
    return not (machine == "arm64" and info.arch == "x86_64")


def explicit(path: str) -> PythonInfo:
    """The interpreter the user named with --python; it must exist and run."""
    resolved = shutil.which(path) if os.sep not in path else path
    if not resolved or not Path(resolved).exists():
        raise MlxTasksError(f"The Python '{path}' given with --python does not exist.", fix=INSTALL_PYTHON_FIX)
    info = python_info(resolved)
    if info is None:
        raise MlxTasksError(f"The Python '{path}' given with --python does not run.", fix=INSTALL_PYTHON_FIX)
    return info


def candidates() -> list[str]:
    """Interpreters on PATH, then Homebrew's and python.org's; most preferred first, no duplicates."""
    found = [shutil.which(name) for name in PATH_NAMES] + list(MAC_LOCATIONS)
    return list(dict.fromkeys(path for path in found if path and Path(path).exists()))


def find(machine: str, uv: str | None) -> PythonInfo | None:
    """The first suitable Python (a uv-managed one last), or the first unsuitable one to report on."""
    infos = [info for info in map(python_info, candidates()) if info]
    for info in infos:
        if suitable(info, machine):
            return info
    managed_path = _uv_managed(uv) if uv else None
    managed = python_info(managed_path) if managed_path else None
    if suitable(managed, machine):
        return managed
    return infos[0] if infos else None


def _uv_managed(uv: str) -> str | None:
    try:
        # --no-cache: looking must not write uv's cache into HOME (a dry run creates nothing).
        done = subprocess.run([uv, "--no-cache", "python", "find", "--no-project", f">={MIN_PYTHON[0]}.{MIN_PYTHON[1]}"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def for_venv(explicit_path: str | None, venv_python: PythonInfo | None, machine: str, uv: str | None) -> PythonInfo | None:
    """--python if given, else the healthy venv's own, else the first suitable one found."""
    if explicit_path:
        return explicit(explicit_path)
    return venv_python or find(machine, uv)
