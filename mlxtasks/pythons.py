"""Finding a Python good enough for the venv (3.11 to 3.14, native arch). Searched in the same order
as scripts/lib.sh's python_candidates; tests/test_pythons.py holds the two to one list."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from . import children
from .config import MAX_PYTHON, MIN_PYTHON
from .errors import MlxTasksError
from .facts import HostFacts, PythonInfo, python_info

MAC_SYSTEM_PYTHON = "/usr/bin/python3"
_MINORS = tuple(range(MAX_PYTHON[1], MIN_PYTHON[1] - 1, -1))  # newest first
PATH_NAMES = (*(f"python3.{minor}" for minor in _MINORS), "python3")
# Where `uv python install` puts its pythons (in the home folder), often not yet on PATH.
HOME_NAMES = tuple(f".local/bin/python3.{minor}" for minor in _MINORS)
# Homebrew (Apple Silicon, then Intel prefix; /opt/homebrew/bin is often not yet on PATH), then python.org's.
MAC_LOCATIONS = (
    *(f"{prefix}/python3.{minor}" for prefix in ("/opt/homebrew/bin", "/usr/local/bin") for minor in _MINORS),
    "/opt/homebrew/bin/python3",
    *(f"/Library/Frameworks/Python.framework/Versions/3.{minor}/bin/python3" for minor in _MINORS),
)

INSTALL_PYTHON_FIX = (
    "install Python 3.12 (brew install python@3.12, or uv python install 3.12, or python.org), "
    "then run: invoke setup --python /path/to/python3.12"
)
ROSETTA_FIX = (
    "open a terminal that does not run under Rosetta (Finder: Applications > Utilities > Terminal, "
    "Get Info, untick 'Open using Rosetta'), or run the command through: arch -arm64"
)


def supported_range() -> str:
    return f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} to {MAX_PYTHON[0]}.{MAX_PYTHON[1]}"


def problem(info: PythonInfo, facts: HostFacts) -> str | None:
    """Why this Python cannot make the venv, in one sentence; None when it can."""
    if info.version[:2] < MIN_PYTHON:
        if facts.is_mac and info.path == MAC_SYSTEM_PYTHON:
            return f"macOS's bundled Python is {info.version_text}; mlx-lm and transformers need Python {supported_range()}."
        return f"Python {info.version_text} at {info.path} is too old; mlx-lm and transformers need Python {supported_range()}."
    if info.version[:2] > MAX_PYTHON:
        return (
            f"Python {info.version_text} at {info.path} is too new: the pinned packages (numpy, mlx) have wheels "
            f"for Python {supported_range()} only."
        )
    if facts.machine == "arm64" and info.arch == "x86_64":
        if facts.rosetta:
            return (
                f"This terminal runs under Rosetta, so {info.path} runs as x86_64; "
                "MLX needs Python running natively as arm64."
            )
        return f"{info.path} is an Intel (x86_64) Python; MLX needs a native arm64 Python."
    if facts.machine == "arm64" and facts.terminal_rosetta and "x86_64" in info.archs:
        # A universal2 Python: arm64 from this process, x86_64 from the terminal that will run the venv.
        return (
            f"This terminal runs under Rosetta, so {info.path} (built for both architectures) would run the venv "
            "as x86_64; MLX needs Python running natively as arm64."
        )
    return None


def fix_for(facts: HostFacts) -> str:
    return ROSETTA_FIX if facts.rosetta or facts.terminal_rosetta else INSTALL_PYTHON_FIX


def explicit(path: str) -> PythonInfo:
    """The interpreter the user named with --python; it must exist and run."""
    resolved = shutil.which(path) if os.sep not in path else path
    if not resolved or not Path(resolved).exists():
        raise MlxTasksError(f"The Python '{path}' given with --python does not exist.", fix=INSTALL_PYTHON_FIX)
    info = python_info(resolved)
    if info is None:
        raise MlxTasksError(f"The Python '{path}' given with --python does not run.", fix=INSTALL_PYTHON_FIX)
    return info


def home_locations(home: str) -> list[str]:
    return [f"{home}/{name}" for name in HOME_NAMES]


def candidates(facts: HostFacts) -> list[str]:
    """Interpreters on PATH, then uv's in ~/.local/bin, then Homebrew's and python.org's; most preferred first,
    no duplicates. Without the Command Line Tools a Mac's /usr/bin/python3 only opens an install dialog: skipped."""
    found = (
        [shutil.which(name) for name in PATH_NAMES] + home_locations(os.environ.get("HOME", "")) + list(MAC_LOCATIONS)
    )
    skip = MAC_SYSTEM_PYTHON if facts.is_mac and not facts.command_line_tools else None
    return list(dict.fromkeys(path for path in found if path and path != skip and Path(path).exists()))


def find(facts: HostFacts, uv: str | None) -> tuple[PythonInfo | None, tuple[PythonInfo, ...]]:
    """The first suitable Python (a uv-managed one last), and those rejected before it."""
    rejected: list[PythonInfo] = []
    for path in candidates(facts):
        info = python_info(path)
        if info is None:
            continue
        if problem(info, facts) is None:
            return info, tuple(rejected)
        rejected.append(info)
    managed_path = _uv_managed(uv) if uv else None
    managed = python_info(managed_path) if managed_path else None
    if managed and problem(managed, facts) is None:
        return managed, tuple(rejected)
    return None, tuple(rejected + [managed] if managed else rejected)


def _uv_managed(uv: str) -> str | None:
    try:
        # --no-cache: looking must not write uv's cache into HOME (a dry run creates nothing).
        done = children.run(
            [
                uv,
                "--no-cache",
                "python",
                "find",
                "--no-project",
                f">={MIN_PYTHON[0]}.{MIN_PYTHON[1]},<{MAX_PYTHON[0]}.{MAX_PYTHON[1] + 1}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def for_venv(
    explicit_path: str | None, venv_python: PythonInfo | None, facts: HostFacts, uv: str | None
) -> tuple[PythonInfo | None, tuple[PythonInfo, ...]]:
    """--python if given, else the healthy venv's own, else the first suitable one found; and the rejected."""
    if explicit_path:
        return explicit(explicit_path), ()
    return (venv_python, ()) if venv_python else find(facts, uv)
