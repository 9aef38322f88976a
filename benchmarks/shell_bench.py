"""Shell benchmarks: what the block adds to a new terminal, and how long mlx-status takes."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness import INVOKE, Result, new_home, set_up_home, timed, user_env

RUNS = 30
STATUS_RUNS = 10
RC = {"bash": ".bashrc", "zsh": ".zshrc"}
# What conda's `eval "$(conda shell.zsh hook)"` costs in kind: one Python started at every shell start.
PYTHON_HOOK = f"eval \"$({sys.executable} -c 'print()')\"\n"


def _homes(work: Path) -> dict[str, Path]:
    """Three HOMEs: empty rc files, the mlxtasks block, and a conda-style hook for comparison."""
    homes = {name: new_home(work, f"shell-{name}") for name in ("bare", "block", "python_hook")}
    for shell, rc in RC.items():
        (homes["bare"] / rc).write_text("")
        (homes["python_hook"] / rc).write_text(PYTHON_HOOK)
        timed([INVOKE, "shell", "--shell", shell], homes["block"])
    return homes


def _startup_seconds(shell: str, home: Path) -> float:
    took, _ = timed([shell, "-i", "-c", "exit"], home)
    return took


def _processes_started(shell: str, home: Path, trace: Path) -> int:
    """execve calls during `SHELL -i -c exit`, the shell's own included."""
    subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), shell, "-i", "-c", "exit"],
        env=user_env(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return sum(1 for line in trace.read_text().splitlines() if "execve(" in line)


def shell_startup(work: Path) -> Result:
    homes = _homes(work)
    raw, added, spawned, notes = {}, {}, {}, []
    for shell in RC:
        for name, home in homes.items():
            _startup_seconds(shell, home)  # warm-up
        samples: dict[str, list[float]] = {name: [] for name in homes}
        for _ in range(RUNS):  # interleaved, so drift hits every variant alike
            for name, home in homes.items():
                samples[name].append(_startup_seconds(shell, home))
        medians = {name: statistics.median(values) for name, values in samples.items()}
        added[shell] = medians["block"] - medians["bare"]
        processes = {
            name: _processes_started(shell, home, work / f"{shell}-{name}.trace") for name, home in homes.items()
        }
        spawned[shell] = processes["block"] - processes["bare"]
        notes.append(
            f"{shell}: bare {medians['bare'] * 1000:.1f} ms, with the block {medians['block'] * 1000:.1f} ms, "
            f"with a conda-style Python hook {medians['python_hook'] * 1000:.1f} ms "
            f"({processes['python_hook'] - processes['bare']} extra processes)"
        )
        raw.update({f"{shell}_{name}": values for name, values in samples.items()})
    figure = "; ".join(f"{shell} {added[shell] * 1000:+.2f} ms, {spawned[shell]} processes" for shell in RC)
    return Result(
        "Shell start-up added by the block (`SHELL -i -c exit`)",
        f"{figure} (medians of {RUNS})",
        "<= 2 ms added and no process spawned",
        all(v <= 0.002 for v in added.values()) and not any(spawned.values()),
        raw,
        tuple(notes),
    )


def mlx_status(work: Path) -> Result:
    home = set_up_home(work)
    venv = home / "venv-mlx"
    argv = [str(venv / "bin" / "python"), "-m", "mlxtasks.status"]
    env: dict[str, Any] = {"MLX_VENV_PATH": str(venv), "MLX_MODELS_PATH": str(home / "workspace" / "mlx")}
    timed(argv, home, **env)  # warm-up
    samples = [timed(argv, home, **env)[0] for _ in range(STATUS_RUNS)]
    median = statistics.median(samples)
    return Result(
        "`mlx-status` wall time",
        f"{median * 1000:.0f} ms (median of {STATUS_RUNS})",
        "< 300 ms",
        median < 0.3,
        {"mlx_status": samples},
    )


BENCHMARKS = [shell_startup, mlx_status]
