"""Setup benchmarks: a fresh `invoke setup` (uv) against the seed's pip flow, and a re-run on a set-up HOME."""

from __future__ import annotations

import functools
import statistics
from pathlib import Path

from harness import INVOKE, Result, new_home, timed

from mlxtasks import config, facts, install, installer, pythons

RERUNS = 5
FRESH_RUNS = 3


@functools.cache
def _uv_setup(work: Path, run: int) -> tuple[Path, float, float, list[str]]:
    """A fresh setup with no uv cache, timed in two parts: the steps up to the shell block, then the
    validator (which costs any flow the same `import mlx_lm`). The HOME, both times, and ~/.cache's contents."""
    home = new_home(work, f"uv-{run}")
    steps, _ = timed([INVOKE, "preflight", "venv", "--yes", "install", "workspace", "shell"], home, UV_NO_CACHE="1")
    validator, _ = timed([INVOKE, "validate"], home)
    return home, steps, steps + validator, sorted(path.name for path in (home / ".cache").glob("*"))


def _pip_setup(work: Path, python: str, packages: list[str], run: int) -> tuple[dict[str, float], list[str]]:
    """The seed's flow in a fresh HOME: venv, upgrade pip, install with the constraints. Seconds by step, and notes."""
    home = new_home(work, f"pip-{run}")
    venv = home / "venv-mlx"
    pip = str(venv / "bin" / "pip")
    steps = {
        "pip_venv_s": [python, "-m", "venv", str(venv)],
        "pip_upgrade_s": [pip, "install", "--no-cache-dir", "--upgrade", "pip"],
        "pip_install_s": [pip, "install", "--no-cache-dir", "-c", str(install.CONSTRAINTS), *packages],
    }
    seconds, output = {}, ""
    for key, argv in steps.items():
        seconds[key], out = timed(argv, home)
        output += out
    _, pip_config = timed([pip, "config", "list"], home)
    lines = output.splitlines()
    looking = sorted({line.strip() for line in lines if line.startswith("Looking in")})
    local = [line.split()[1] for line in lines if line.startswith("Processing /")]
    notes = [
        "pip ran with this machine's pip config as a user has it: " + ("; ".join(pip_config.splitlines()) or "none"),
        "pip said: " + ("; ".join(looking) or "nothing about extra indexes or links"),
        f"pip installed {len(local)} file(s) from local folders" + (f": {', '.join(local)}" if local else ""),
    ]
    return seconds, notes


def fresh_setup(work: Path) -> Result:
    host = facts.probe()
    python = pythons.find(host, installer.find_uv())[0]
    if python is None:
        raise SystemExit("no Python here can make the venv (see `invoke preflight`)")
    packages = [install.MLX_REQUIREMENT[facts.backend_for(host)], *config.DEFAULTS["packages"]]
    uv_runs, pip_runs = [], []
    for run in range(FRESH_RUNS):  # interleaved: a slow spell of the package index hits both sides
        uv_runs.append(_uv_setup(work, run)[1])
        pip_steps, pip_notes = _pip_setup(work, python.path, packages, run)
        pip_runs.append(sum(pip_steps.values()))
    uv_seconds, pip_seconds = statistics.median(uv_runs), statistics.median(pip_runs)
    uv_cache = _uv_setup(work, 0)[3]
    share = uv_seconds / pip_seconds
    return Result(
        "Fresh setup, uv vs the seed's pip flow (no caches)",
        f"uv {uv_seconds:.1f} s = {share:.0%} of pip {pip_seconds:.1f} s (medians of {FRESH_RUNS})",
        "uv <= 25% of pip",
        share <= 0.25,
        {"uv_s": uv_runs, "pip_s": pip_runs},
        (
            f"Both sides used {python.path} (Python {python.version_text}) and installed {' '.join(packages)} "
            f"with {install.CONSTRAINTS.name}; the uv side is setup's steps but the validator (`invoke preflight venv "
            "--yes install workspace shell`, UV_NO_CACHE=1), which also runs preflight, builds mlxtasks from this "
            "checkout and makes the workspace and the shell block. The validator (about 2 s here, mostly importing "
            "mlx_lm) would cost the seed's flow the same; the re-run below is compared with the whole setup.",
            "uv left "
            + (f"a cache in its HOME: ~/.cache/{', ~/.cache/'.join(uv_cache)}" if uv_cache else "no cache in its HOME"),
            *pip_notes,
        ),
    )


def rerun_setup(work: Path) -> Result:
    home, _, fresh, _ = _uv_setup(work, 0)  # the whole setup, validator included
    runs = [timed([INVOKE, "setup", "--yes"], home) for _ in range(RERUNS)]
    seconds = [run_seconds for run_seconds, _ in runs]
    median = statistics.median(seconds)
    changed = sum("Changed: nothing" not in output for _, output in runs)
    return Result(
        "Re-run of `invoke setup --yes` on a set-up HOME",
        f"{median:.2f} s (median of {RERUNS}) = {median / fresh:.1%} of the fresh uv setup",
        f"<= 10% of the fresh uv setup ({0.1 * fresh:.1f} s) and < 3 s",
        median <= 0.1 * fresh and median < 3,
        {"rerun_s": seconds, "fresh_uv_s": fresh},
        (f"{changed} of the re-runs changed something" if changed else "every re-run changed nothing",),
    )


BENCHMARKS = [fresh_setup, rerun_setup]
