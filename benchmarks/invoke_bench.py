"""Invoke benchmarks: what loading the project's tasks costs over a bare tasks.py."""

from __future__ import annotations

import statistics
from pathlib import Path

from harness import INVOKE, ROOT, Result, new_home, timed

RUNS = 10
ONE_TASK = '''from invoke import task


@task
def hello(c):
    """Say hello."""
    print("hello")
'''


def invoke_list(work: Path) -> Result:
    home = new_home(work, "list")
    bare = home.parent / "bare"
    bare.mkdir()
    (bare / "tasks.py").write_text(ONE_TASK)
    folders = {"project_s": ROOT, "one_task_s": bare}
    seconds: dict[str, list[float]] = {key: [] for key in folders}
    for run in range(RUNS + 1):  # run 0 warms up each folder and is not counted
        for key, cwd in folders.items():
            took, _ = timed([INVOKE, "--list"], home, cwd=cwd)
            if run:
                seconds[key].append(took)
    project, one_task = (statistics.median(seconds[key]) for key in folders)
    ratio = project / one_task
    return Result(
        "`invoke --list`, project vs a one-task tasks.py",
        f"{ratio:.2f}x ({project * 1000:.0f} ms vs {one_task * 1000:.0f} ms, medians of {RUNS})",
        "<= 1.5x",
        ratio <= 1.5,
        seconds,
    )


BENCHMARKS = [invoke_list]
