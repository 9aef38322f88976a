"""What every task module shares: settings from the context, error reporting, and acting on a Step."""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import invoke
from invoke import Context, Exit, Task

from .. import config, exits, files, ui
from ..errors import MlxTasksError
from ..steps import Action, Command, Outcome, Step, describe, perform_locally
from ..venv import require as require_venv  # noqa: F401 - for the tasks that run MLX
from . import _positional
from ._flags import whole_number_flags

PATH_HELP = {
    "venv": "venv folder (default ~/venv-mlx)",
    "workspace": "workspace folder (default ~/workspace)",
    "models": "models folder (default ~/workspace/mlx)",
}


def settings(c: Context, **flags: Any) -> config.Settings:
    """The settings of this run: Invoke's config files (the `mlx` key), INVOKE_MLX_* and the task's flags."""
    return config.resolve(c.config.get(config.CONFIG_KEY), environ=os.environ, **flags)


def is_dry(c: Context, dry_run: bool) -> bool:
    return bool(dry_run or c.config.run.dry)


class MlxTask(Task):
    """The boundary of every task: expected failures print their sentence and fix on stderr and exit 1, Ctrl-C
    exits 130 (and a stdout that cannot be written ends the command as exits.start says), and `TASK --help`
    shows the task's help even where the task takes a positional argument."""

    def arg_opts(self, name: str, default: Any, taken_names: set[str]) -> dict[str, Any]:
        # -v means --verbose on every task that has it and nothing else anywhere (never --venv).
        return super().arg_opts(name, default, taken_names if name == "verbose" else taken_names | {"v"})

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list:
        return whole_number_flags(_positional.get_arguments(self, ignore_unknown_help))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            exits.ready()
            if _positional.asked_for_help(self, kwargs):
                return _positional.print_help(self)
            with files.said():  # a full disk, a read-only mount or folder, a file where a folder should be
                result = super().__call__(*args, **kwargs)
            sys.stdout.flush()  # a reader that left or a full disk is met now (see exits.start), not in exit's flush
            return result
        except MlxTasksError as err:
            ui.error(err)
            raise Exit(code=1) from None
        except KeyboardInterrupt:  # every step is safe to repeat, and a pull keeps its finished files
            ui.error(MlxTasksError("Interrupted; run the same command again to resume."))
            raise Exit(code=130) from None


task = functools.partial(invoke.task, klass=MlxTask)


def converge(c: Context, step: Step, recheck: Callable[[], Step], dry: bool) -> list[Outcome]:
    """Act on an inspected step if needed (or only say what would happen), then inspect again."""
    if step.done:
        return [record("done", step.name, step.summary)]
    if dry:
        return [record("dry", step.name, step.summary, [describe(action) for action in step.actions])]
    ui.step("changed", step.name, f"{step.summary}...")
    for action in step.actions:
        perform(c, action)
    after = recheck()
    if not after.done:
        raise MlxTasksError(
            f"The {step.name} step ran but is still not done: {after.summary}.", fix=f"invoke {step.name}"
        )
    return [Outcome("changed", step.name, step.summary)]  # its line was printed before acting


def record(kind: str, name: str, summary: str, details: Iterable[str] = ()) -> Outcome:
    """Print a step's line; the Outcome it returns is what setup's summary is built from."""
    ui.step(kind, name, summary, details)
    return Outcome(kind, name, summary)


def perform(c: Context, action: Action) -> None:
    """A command through Invoke's c.run (so MockContext sees it); folder actions in the core."""
    if isinstance(action, Command):
        _run_with_retries(c, action)
    else:
        perform_locally(action)


def _run_with_retries(c: Context, command: Command) -> None:
    # On a terminal, a pty lets the installer draw its progress bars (and merges its stderr into stdout).
    pty = sys.stdout.isatty()
    for attempt in range(command.tries):
        if attempt:
            time.sleep(command.delay * 2 ** (attempt - 1))
        result = c.run(command.text, warn=True, pty=pty, in_stream=False)
        if result.ok:
            return
        hopeless = command.give_up(result.stderr + result.stdout) if command.give_up else None
        if hopeless:
            raise hopeless
    output = (result.stderr or result.stdout).splitlines()
    last_line = next((line.strip() for line in reversed(output) if line.strip()), "")
    detail = f" Last error: {last_line}" if last_line else ""
    raise MlxTasksError(f"{command.failure}{detail}", fix=command.fix)
