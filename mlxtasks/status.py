"""`mlx-status`: the venv, whether it is the active one, versions, backend and installed models.

Fast on purpose (no mlx or mlx_lm import): versions come from package metadata.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from . import rcfile, shellblock
from .config import resolve
from .errors import MlxTasksError
from .facts import BACKEND_DISTRIBUTION
from .store import installed_folders


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _same(a: str | None, b: str | None) -> bool:
    return bool(a and b and os.path.realpath(a) == os.path.realpath(b))


def shell_line(env: dict) -> str:
    """Whether the block is in the rc file of the shell running us (MLX_SHELL, which the block sets,
    else $SHELL; a text search, validate compares it)."""
    shell = env.get("MLX_SHELL")
    if shell not in shellblock.SHELLS:
        try:
            [shell] = shellblock.shells_for("auto", env.get("SHELL"))
        except MlxTasksError:
            return "shell     unknown ($SHELL is not zsh, bash or fish)"
    path = shellblock.rc_target(shell, platform.system().lower(), Path(env.get("HOME", "~")), env).path
    try:
        text = rcfile.read(path)
    except MlxTasksError as err:
        return f"shell     {err.message}"
    if rcfile.START in text:
        return f"shell     block installed in {path}"
    return f"shell     no block in {path}; run: invoke shell.install --shell {shell}"


def lines(venv: str, active: str | None, models_path: str) -> list[str]:
    if _same(active, venv):
        state = "active"
    elif active:
        state = f"not active; another venv is: {active}"
    else:
        state = "not active; run mlx-activate"
    backends = [name for name, dist in BACKEND_DISTRIBUTION.items() if _version(dist)]
    mlx = _version("mlx")
    folders = installed_folders(Path(models_path))
    return [
        f"venv      {venv} ({state})",
        f"python    {platform.python_version()}",
        f"mlx       {mlx or 'not installed; run: invoke install'}"
        + (f" (backend {', '.join(backends)})" if mlx else ""),
        f"mlx-lm    {_version('mlx-lm') or 'not installed; run: invoke install'}",
        f"models    {len(folders)} in {models_path}" + (": " + ", ".join(folders) if folders else ""),
    ]


def main() -> None:
    venv = os.environ.get("MLX_VENV_PATH") or sys.prefix
    models_path = os.environ.get("MLX_MODELS_PATH") or str(resolve({}).models)
    print("\n".join([*lines(venv, os.environ.get("VIRTUAL_ENV"), models_path), shell_line(dict(os.environ))]))


if __name__ == "__main__":
    main()
