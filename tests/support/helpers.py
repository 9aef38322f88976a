"""Helpers test modules import: the checkout, the tool side's interpreter, a new user's environment,
the CLI as a subprocess, and the system tools some tests run. Fixtures live in conftest.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
# The Python running pytest is the tool side's: its folder holds `invoke`, its environment is a venv.
BIN = Path(sys.executable).parent
TOOL_VENV = BIN.parent

# System tools some tests run: (Debian package, Homebrew formula). `.ci/run` installs them all, so
# under CI=true a missing one fails its tests; elsewhere those tests skip, saying how to install it.
SYSTEM_TOOLS = {
    "zsh": ("zsh", "zsh"),
    "fish": ("fish", "fish"),
    "shellcheck": ("shellcheck", "shellcheck"),
    "rsync": ("rsync", "rsync"),
    "ssh": ("openssh-client", "openssh"),
    "systemd-analyze": ("systemd", None),
    "chromium": ("chromium", "--cask chromium"),
}


NPM_TOOLS = {"codex": "@openai/codex@0.171.0"}  # coding agents a test runs for real, pinned at the version tried


def require_tool(name: str) -> None:
    """Skip the running test when the tool `name` (SYSTEM_TOOLS, NPM_TOOLS) is missing, or fail it under CI."""
    if shutil.which(name):
        return
    if name in NPM_TOOLS:
        how = f"npm install -g {NPM_TOOLS[name]}"
    else:
        apt, brew = SYSTEM_TOOLS[name]
        how = f"apt-get install {apt}" + (f" or brew install {brew}" if brew else "")
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is not installed, and under CI it must be: .ci/run installs it ({how}).")
    pytest.skip(f"needs {name}, which is not installed ({how})")


# Apple's /bin/bash (3.2.57, which is also macOS's /bin/sh) built for Linux: in the developers' shared folder beside
# the checkout (../shared/tools, see its README), or where APPLE_BASH points. A user's clone has none.
APPLE_BASH = Path(os.environ.get("APPLE_BASH") or ROOT.parent / "shared" / "tools" / "apple-bash-3.2.57")


def require_apple_bash() -> str:
    """APPLE_BASH's path; the running test skips without it, naming what is missing, or fails under CI."""
    if os.access(APPLE_BASH, os.X_OK):
        return str(APPLE_BASH)
    if os.environ.get("CI") == "true":
        pytest.fail(f"Apple's bash 3.2.57 is not at {APPLE_BASH}, and under CI it must be (../shared/tools).")
    pytest.skip(
        f"needs Apple's bash 3.2.57 at {APPLE_BASH} (../shared/tools/apple-bash-3.2.57 beside the checkout, "
        "or set APPLE_BASH), which a clone does not have"
    )


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment a new user has: HOME in a temporary folder, no venv active, no INVOKE_* config."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            (
                "INVOKE_",
                "VIRTUAL_ENV",
                "MLX_",
                "ZDOTDIR",
                "HF_",
                "XDG_CONFIG_HOME",
                "XDG_CACHE_HOME",
                "XDG_DATA_HOME",
                "XDG_STATE_HOME",
            )
        )
    }
    env.update({"HOME": str(home), "NO_COLOR": "1", "SHELL": "/bin/bash", **extra})
    return env


def run(argv: list[str], home: Path, cwd: Path = ROOT, timeout: int = 900, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv,
        cwd=cwd,
        env=clean_env(home, **env),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )


def invoke(*args: str, home: Path, **kwargs) -> subprocess.CompletedProcess:
    """`invoke ARGS` in the project folder, as a user types it."""
    return run([str(BIN / "invoke"), *args], home, **kwargs)


def copy_checkout(dest: Path) -> Path:
    """What a fresh clone would hold: tracked files plus new files not yet committed."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in listed:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def tree(path: Path) -> list[str]:
    """Every file and folder under path, relative, sorted: to prove nothing was created."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))
