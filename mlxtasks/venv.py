"""The virtual environment: inspect it, then plan what (if anything) to change."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .config import MIN_PYTHON, Settings
from .errors import MlxTasksError
from .facts import PythonInfo, python_info
from .installer import Installer
from .steps import Command, RemoveVenv, Step


# Characters Python's venv copies unescaped into a double-quoted shell string in bin/activate.
UNQUOTED_BY_VENV = set('"$`\\')


@dataclass(frozen=True)
class VenvState:
    path: Path
    exists: bool
    is_venv: bool
    python: PythonInfo | None
    problem: str | None  # None: healthy (or absent)

    @property
    def healthy(self) -> bool:
        return self.exists and self.problem is None


def inspect(path: Path) -> VenvState:
    if not path.exists():
        return VenvState(path, False, False, None, None)
    if not (path / "pyvenv.cfg").is_file():
        return VenvState(path, True, False, None, "it exists but is not a virtual environment")
    interpreter = path / "bin" / "python"
    if not interpreter.exists():
        return VenvState(path, True, True, None, "its Python (bin/python) is missing")
    info = python_info(interpreter)
    if info is None:
        return VenvState(path, True, True, None,
                         "its Python no longer runs (the Python it was made from was probably removed or upgraded)")
    if info.version[:2] < MIN_PYTHON:
        return VenvState(path, True, True, info, f"it has Python {info.version_text}, older than {'.'.join(map(str, MIN_PYTHON))}")
    activated_as = _activated_as(path)
    if activated_as is None:
        return VenvState(path, True, True, info, "its activate script is missing or does not run in a shell")
    if os.path.realpath(activated_as) != os.path.realpath(path):
        return VenvState(path, True, True, info, "it was moved here from another folder, and its scripts still point there")
    return VenvState(path, True, True, info, None)


def _activated_as(path: Path) -> str | None:
    """The VIRTUAL_ENV that the venv's activate script sets, as bash reads it (so any quoting its creator
    chose is understood); None when there is no script or bash cannot run it."""
    activate = path / "bin" / "activate"
    if not activate.is_file():
        return None
    try:
        done = subprocess.run(["bash", "--norc", "--noprofile", "-c", 'source "$1" >/dev/null 2>&1; printf %s "$VIRTUAL_ENV"',
                               "bash", str(activate)], capture_output=True, text=True, timeout=10,
                              stdin=subprocess.DEVNULL, env={"PATH": os.defpath})
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout or None


def plan(settings: Settings, state: VenvState, python: PythonInfo | None, installer: Installer, force: bool) -> Step:
    """Keep a healthy venv; create a missing one; replace a broken one only when `force` says so."""
    path = settings.venv
    if state.healthy and not force:
        return Step("venv", f"{path} is healthy (Python {state.python.version_text})")
    if state.exists and not state.is_venv:
        raise MlxTasksError(f"{path} {state.problem}, so it will not be touched.",
                            fix="move it away, or choose another venv folder: invoke setup --venv PATH")
    if state.exists and not force:
        raise MlxTasksError(f"The venv {path} is broken: {state.problem}.", fix="recreate it: invoke venv --force")
    if python is None:
        raise MlxTasksError("No Python to create the venv with.", fix="invoke preflight")
    if installer.name == "pip" and set(str(path)) & UNQUOTED_BY_VENV:
        raise MlxTasksError(f"Python's venv writes an activate script that breaks on the {path} folder's name "
                            "(it holds a \", $, ` or \\).",
                            fix="let uv make it (invoke setup --installer uv), or choose another folder with --venv")
    create = _create_commands(path, python, installer)
    if state.exists:
        why = "healthy, recreating as asked" if state.healthy else state.problem
        return Step("venv", f"recreate {path} ({why}) with Python {python.version_text}", (RemoveVenv(path), *create))
    return Step("venv", f"create {path} with Python {python.version_text} ({installer.name})", create)


def _create_commands(path: Path, python: PythonInfo, installer: Installer) -> tuple[Command, ...]:
    fix = "invoke venv"
    if installer.name == "uv":
        # --seed puts pip in the venv too, for users who `mlx-activate` and pip install.
        return (Command((installer.uv, "venv", "--seed", "--quiet", "--python", python.path, str(path)),
                        failure=f"uv could not create the venv {path}.", fix=fix),)
    venv_python = str(path / "bin" / "python")
    return (
        Command((python.path, "-m", "venv", str(path)), failure=f"Python could not create the venv {path}.", fix=fix),
        Command((venv_python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"), tries=3,
                failure="Upgrading pip in the new venv failed (is the package index reachable?).", fix=fix),
    )
