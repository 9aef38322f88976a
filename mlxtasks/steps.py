"""What a setup step found and what it would do: inspected first, acted on by the task layer."""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import MlxTasksError


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    tries: int = 1  # > 1 retries with backoff (network steps)
    delay: float = 2.0  # seconds before the second try; doubled for each later one
    failure: str = ""  # the sentence shown when the last try fails
    fix: str = ""
    # Reads a failed try's output; an error it returns is raised at once: no retry can help (a resolution failure).
    give_up: Callable[[str], MlxTasksError | None] | None = None

    @property
    def text(self) -> str:
        return shlex.join(self.argv)


@dataclass(frozen=True)
class MakeDir:
    path: Path


@dataclass(frozen=True)
class RemoveVenv:
    path: Path  # only ever a folder that inspect() found to be a venv


Action = Command | MakeDir | RemoveVenv


@dataclass(frozen=True)
class Step:
    name: str
    summary: str  # what was found ("already fine: ...") or what will change
    actions: tuple[Action, ...] = ()

    @property
    def done(self) -> bool:
        """Nothing to do: the step is already in the state it wants."""
        return not self.actions


@dataclass(frozen=True)
class Outcome:
    """What a step task did, as it returns it: setup builds its closing summary from these."""

    kind: str  # "done" (already fine), "changed", "dry" (would change) or "skipped"
    name: str
    summary: str


def summary(outcomes: list[Outcome], dry: bool) -> list[str]:
    """setup's closing lines, from what its steps returned."""
    if dry:
        return ["Dry run: nothing was changed."]
    changed = [f"{o.name}: {o.summary}" for o in outcomes if o.kind == "changed"]
    fine = [o.name for o in outcomes if o.kind == "done"]
    skipped = [f"{o.name} ({o.summary})" for o in outcomes if o.kind == "skipped"]
    return [
        "Changed: " + ("; ".join(changed) if changed else "nothing, everything was already set up."),
        *(["Already fine: " + ", ".join(fine) + "."] if fine else []),
        *(["Skipped: " + ", ".join(skipped) + "."] if skipped else []),
        "Next: open a new terminal (or source your rc file), then: mlx-status",
    ]


def perform_locally(action: MakeDir | RemoveVenv) -> None:
    """Create a folder, or delete a venv (only a real folder with pyvenv.cfg, never through a link)."""
    if isinstance(action, MakeDir):
        try:
            action.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MlxTasksError(
                f"Cannot create {action.path}: {exc.strerror}.",
                fix="fix its permissions, or choose another folder with --workspace/--models",
            ) from None
    elif isinstance(action, RemoveVenv):
        if action.path.is_symlink():  # rmtree refuses a link; what it points to is the user's to delete
            raise MlxTasksError(
                f"{action.path} is a link to {os.path.realpath(action.path)}, so it was not deleted.",
                fix=f"delete the link (rm {shlex.quote(str(action.path))}) or the venv it points to by hand",
            )
        if not (action.path / "pyvenv.cfg").is_file():
            raise MlxTasksError(
                f"Refusing to delete {action.path}: it is not a virtual environment.", fix="remove it by hand"
            )
        shutil.rmtree(action.path)
    else:
        raise TypeError(f"unknown action {action!r}")


def describe(action: Action) -> str:
    if isinstance(action, Command):
        return f"run {action.text}"
    if isinstance(action, MakeDir):
        return f"create folder {action.path}"
    return f"delete the venv {action.path}"
