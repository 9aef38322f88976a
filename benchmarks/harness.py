"""What every benchmark module shares: the result type, a new user's environment, and timing a command."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INVOKE = str(Path(sys.executable).parent / "invoke")  # the checkout's invoke, beside the Python running the suite


@dataclass(frozen=True)
class Result:
    name: str
    figure: str
    target: str
    held: bool
    raw: Mapping[str, float | list[float]]  # seconds, by what was timed
    notes: tuple[str, ...] = ()


def new_home(work: Path, name: str) -> Path:
    """An empty HOME under the suite's temporary folder."""
    home = work / name / "home"
    home.mkdir(parents=True)
    return home


def user_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment a new user has (PIP_* and the rest kept as they are): this HOME, no venv active, no INVOKE_* config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INVOKE_", "VIRTUAL_ENV", "MLX_"))}
    env.update(HOME=str(home), NO_COLOR="1", **extra)
    return env


def timed(argv: list[str], home: Path, cwd: Path = ROOT, **env: str) -> tuple[float, str]:
    """Run a command to its end: its wall-clock seconds and its output. A failed command stops the suite."""
    start = time.perf_counter()
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=user_env(home, **env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"`{' '.join(argv)}` failed (exit {done.returncode}):\n{done.stdout[-4000:]}")
    return seconds, done.stdout


@functools.cache
def set_up_home(work: Path) -> Path:
    """A HOME where `invoke setup --yes` has run (uv's usual cache), shared by the benchmarks that need one."""
    home = new_home(work, "set-up")
    timed([INVOKE, "setup", "--yes"], home)
    return home


@functools.cache
def tiny_model(work: Path) -> Path:
    """The tests' generated tiny qwen2 4-bit model, made once in the set-up venv."""
    model = work / "tiny-model"
    subprocess.run(
        [str(venv_python(work)), str(ROOT / "tests" / "support" / "tiny_model.py"), str(model)],
        check=True,
        capture_output=True,
    )
    return model


@functools.cache
def real_model(work: Path) -> Path:
    """The tests' real SmolLM2-135M-Instruct (tests/support/smollm2.py): from its cache, or made in the set-up venv."""
    out = subprocess.run(
        [sys.executable, "-m", "tests.support.smollm2", str(venv_python(work))],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return Path(out.stdout.strip())


def venv_python(work: Path) -> Path:
    return set_up_home(work) / "venv-mlx" / "bin" / "python"


def measure_in_venv(work: Path, code: str, *args: object) -> dict:
    """Run CODE in the set-up venv's Python with the tiny model's folder and ARGS; its JSON output."""
    out = subprocess.run(
        [str(venv_python(work)), "-c", code, str(tiny_model(work)), *map(str, args)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout)
