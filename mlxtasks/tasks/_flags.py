"""The words for a flag's value that Invoke cannot read."""

from __future__ import annotations

from typing import Any

from invoke import Argument, Exit

from .. import ui
from ..errors import MlxTasksError


class WholeNumberFlag(Argument):
    """A flag whose default is a whole number. A value that is not one is a sentence naming the flag; Invoke's
    own int() of it is a ValueError traceback, raised while it parses the command line."""

    def set_value(self, value: Any, cast: bool = True) -> None:
        try:
            super().set_value(value, cast)
        except ValueError:
            flag = f"--{(self.name or '').replace('_', '-')}"
            example = f", such as {flag} {self.default}" if self.default else f" to {flag}"
            ui.error(
                MlxTasksError(f"{flag} must be a whole number, got {value!r}.", fix=f"pass a whole number{example}")
            )
            raise Exit(code=1) from None


def whole_number_flags(arguments: list[Argument]) -> list[Argument]:
    """A task's arguments, each whose default is a whole number a WholeNumberFlag (Invoke makes the Argument itself)."""
    for argument in arguments:
        if argument.kind is int:
            argument.__class__ = WholeNumberFlag
    return arguments
