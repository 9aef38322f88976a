"""Fixtures shared by every issue's tests: a temporary HOME, the CLI as a subprocess, and one real
`invoke setup` (venv + MLX packages from the index) built once per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Shared by later issues: the tiny generated model, the stand-in hub, code run in the MLX venv.
pytest_plugins = ["tests.support.fixtures"]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# System tools some tests run: (Debian package, Homebrew formula). `.ci/run` installs them all, so
# under CI=true a missing one fails its tests; elsewhere those tests skip, saying how to install it.
SYSTEM_TOOLS = {
    "zsh": ("zsh", "zsh"),
    "fish": ("fish", "fish"),
    "shellcheck": ("shellcheck", "shellcheck"),
    "rsync": ("rsync", "rsync"),
    "ssh": ("openssh-client", "openssh"),
    "systemd-analyze": ("systemd", None),
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tools(*names): runs these system tools (keys of SYSTEM_TOOLS); "
                                       "a test parametrized by `shell` needs that shell too")


def pytest_runtest_setup(item: pytest.Item) -> None:
    names = [name for mark in item.iter_markers("tools") for name in mark.args]
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("shell") in SYSTEM_TOOLS:
        names.append(callspec.params["shell"])
    for name in names:
        require_tool(name)


def require_tool(name: str) -> None:
    """Skip the running test when the system tool `name` is missing, or fail it under CI."""
    if shutil.which(name):
        return
    apt, brew = SYSTEM_TOOLS[name]
    how = f"apt-get install {apt}" + (f" or brew install {brew}" if brew else "")
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is not installed, and under CI it must be: .ci/run installs it ({how}).")
    pytest.skip(f"needs {name}, which is not installed ({how})")


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment a new user has: HOME in a temporary folder, no venv active, no INVOKE_* config."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("INVOKE_", "VIRTUAL_ENV", "MLX_", "ZDOTDIR", "HF_", "XDG_CONFIG_HOME", "XDG_CACHE_HOME",
                                "XDG_DATA_HOME", "XDG_STATE_HOME"))}
    env.update({"HOME": str(home), "NO_COLOR": "1", "SHELL": "/bin/bash", **extra})
    return env


def run(argv: list[str], home: Path, cwd: Path = ROOT, timeout: int = 900, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=clean_env(home, **env), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def invoke(*args: str, home: Path, **kwargs) -> subprocess.CompletedProcess:
    """`invoke ARGS` in the project folder, as a user types it."""
    return run([str(BIN / "invoke"), *args], home, **kwargs)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def copy_checkout(dest: Path) -> Path:
    """What a fresh clone would hold: tracked files plus new files not yet committed."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    for name in listed:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.fixture(scope="session")
def bootstrapped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """The README's first command, `sh bootstrap.sh --yes`, run once per session in a fresh copy of
    the checkout with an empty HOME: (checkout, HOME with ~/venv-mlx holding the real MLX packages,
    the bootstrap's result)."""
    base = tmp_path_factory.mktemp("bootstrap")
    clone = copy_checkout(base / "clone")
    home = base / "home"
    home.mkdir()
    return clone, home, run(["sh", "bootstrap.sh", "--yes"], home, cwd=clone)


@pytest.fixture
def fake_python(tmp_path: Path):
    """Make a stand-in interpreter that claims a version (a Mac's 3.9 cannot exist on this machine)."""

    def make(version: str, arch: str = "x86_64", name: str = "python3") -> Path:
        folder = tmp_path / f"fake-{version}-{arch}"
        folder.mkdir(exist_ok=True)
        path = folder / name
        major, minor, micro = version.split(".")
        path.write_text(
            "#!/bin/sh\n"
            "case \"$*\" in\n"
            f"  *json*) echo '[[{major}, {minor}, {micro}], \"{arch}\", \"/fake\"]' ;;\n"
            f"  *machine*) echo {arch} ;;\n"
            f"  *) echo {version} ;;\n"
            "esac\n"
        )
        path.chmod(0o755)
        return path

    return make


def tree(path: Path) -> list[str]:
    """Every file and folder under path, relative, sorted: to prove nothing was created."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))
