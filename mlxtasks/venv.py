"""The virtual environment: inspect it, then plan what (if anything) to change."""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .config import MIN_PYTHON, Settings, resolve
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
        return VenvState(
            path,
            True,
            True,
            None,
            "its Python no longer runs (the Python it was made from was probably removed or upgraded)",
        )
    if info.version[:2] < MIN_PYTHON:
        return VenvState(
            path, True, True, info, f"it has Python {info.version_text}, older than {'.'.join(map(str, MIN_PYTHON))}"
        )
    activated_as = _activated_as(path)
    if activated_as is None:
        return VenvState(path, True, True, info, "its activate script is missing or does not run in a shell")
    if os.path.realpath(activated_as) != os.path.realpath(path):
        return VenvState(
            path, True, True, info, "it was moved here from another folder, and its scripts still point there"
        )
    return VenvState(path, True, True, info, None)


def option(path: Path) -> str:
    """` --venv PATH` for a fix's command, so it acts on the venv the user named; "" for the default one."""
    return "" if path == resolve().venv else f" --venv {shlex.quote(str(path))}"


def recreate_fix(path: Path) -> str:
    """A new venv is empty: the fix that recreates one also installs MLX into it."""
    given = option(path)
    return f"recreate it: invoke venv --force{given}, then invoke install{given} (or both: invoke setup --yes{given})"


def require(settings: Settings) -> None:
    """Refuse to run MLX from a venv that is missing, not a venv, or without its Python; no subprocess,
    so chat and serve start as fast as before."""
    path, given = settings.venv, option(settings.venv)
    if not path.exists():
        raise MlxTasksError(f"There is no venv at {path}.", fix=f"invoke setup{given}")
    if not (path / "pyvenv.cfg").is_file():
        raise MlxTasksError(
            f"{path} is not a virtual environment, so MLX cannot run from it.",
            fix="name the MLX venv: --venv PATH (or mlx.venv in ~/.invoke.yaml), or make one: invoke setup",
        )
    if not settings.venv_python.exists():
        raise MlxTasksError(
            f"The venv {path} is broken: its Python (bin/python) is missing or was removed.", fix=recreate_fix(path)
        )


def _activated_as(path: Path) -> str | None:
    """The VIRTUAL_ENV that the venv's activate script sets, as bash reads it (so any quoting its creator
    chose is understood); None when there is no script or bash cannot run it."""
    activate = path / "bin" / "activate"
    if not activate.is_file():
        return None
    try:
        done = subprocess.run(
            [
                "bash",
                "--norc",
                "--noprofile",
                "-c",
                'source "$1" >/dev/null 2>&1; printf %s "$VIRTUAL_ENV"',
                "bash",
                str(activate),
            ],
            capture_output=True,
            text=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
            env={"PATH": os.defpath},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout or None


def plan(settings: Settings, state: VenvState, python: PythonInfo | None, installer: Installer, force: bool) -> Step:
    """Keep a healthy venv; create a missing one; replace a broken one only when `force` says so."""
    path = settings.venv
    if state.healthy and state.python and not force:
        return Step("venv", f"{path} is healthy (Python {state.python.version_text})")
    if state.exists and not state.is_venv:
        raise MlxTasksError(
            f"{path} {state.problem}, so it will not be touched.",
            fix="move it away, or choose another venv folder: invoke setup --venv PATH",
        )
    if state.exists and not force:
        raise MlxTasksError(f"The venv {path} is broken: {state.problem}.", fix=recreate_fix(path))
    if python is None:
        raise MlxTasksError("No Python to create the venv with.", fix="invoke preflight")
    if installer.name == "pip" and set(str(path)) & UNQUOTED_BY_VENV:
        raise MlxTasksError(
            f"Python's venv writes an activate script that breaks on the {path} folder's name "
            '(it holds a ", $, ` or \\).',
            fix="let uv make it (invoke setup --installer uv), or choose another folder with --venv",
        )
    create = _create_commands(path, python, installer)
    empty = f"; it starts empty: invoke install{option(path)} fills it"
    if state.exists:
        why = "healthy, recreating as asked" if state.healthy else state.problem
        return Step(
            "venv", f"recreate {path} ({why}) with Python {python.version_text}{empty}", (RemoveVenv(path), *create)
        )
    return Step("venv", f"create {path} with Python {python.version_text} ({installer.name}){empty}", create)


def _create_commands(path: Path, python: PythonInfo, installer: Installer) -> tuple[Command, ...]:
    fix = f"invoke venv{option(path)}"
    if installer.name == "uv":
        # --seed puts pip in the venv too, for users who `mlx-activate` and pip install.
        return (
            Command(
                (installer.uv, "venv", "--seed", "--quiet", "--python", python.path, str(path)),
                failure=f"uv could not create the venv {path}.",
                fix=fix,
            ),
        )
    venv_python = str(path / "bin" / "python")
    return (
        Command((python.path, "-m", "venv", str(path)), failure=f"Python could not create the venv {path}.", fix=fix),
        Command(
            (venv_python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"),
            tries=3,
            failure="Upgrading pip in the new venv failed (is the package index reachable?).",
            fix=fix,
        ),
    )
