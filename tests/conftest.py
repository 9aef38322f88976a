"""Fixtures and hooks only (helpers that test modules import are in tests/support/helpers.py): a temporary
HOME, one real `sh bootstrap.sh --yes` (venv + MLX packages from the index) per test session, and the
`tools` marker."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from .support.helpers import SYSTEM_TOOLS, copy_checkout, require_tool, run

# Shared by later issues: the tiny generated model, the stand-in hub, code run in the MLX venv.
pytest_plugins = ["tests.support.fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    # A suite started as a background job (`sh scripts/test.sh &` in a script) inherits Ctrl-C ignored, and so would
    # every process it starts: the tests that send a real SIGINT would then see it ignored. A handler here makes
    # each process the tests start get Ctrl-C as a terminal gives it (exec resets a caught signal to its default).
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    config.addinivalue_line(
        "markers",
        "tools(*names): runs these tools (keys of SYSTEM_TOOLS, NPM_TOOLS); "
        "a test parametrized by `shell` needs that shell too",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    names = [name for mark in item.iter_markers("tools") for name in mark.args]
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("shell") in SYSTEM_TOOLS:
        names.append(callspec.params["shell"])
    for name in names:
        require_tool(name)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


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
            'case "$*" in\n'
            f'  *json*) echo \'[[{major}, {minor}, {micro}], "{arch}", "/fake"]\' ;;\n'
            f"  *machine*) echo {arch} ;;\n"
            f"  *) echo {version} ;;\n"
            "esac\n"
        )
        path.chmod(0o755)
        return path

    return make
