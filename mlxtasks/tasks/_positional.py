"""What Invoke's parser does not do for positional arguments, and every task here needs: `TASK --help` (or -h)
is the task's help even where a positional is still to come (Invoke would hand "--help" to the task, and
`chat.ask --help` asked the model), and a positional whose parameter has a default may be left out
(`models.verify [MODEL]`), which Invoke does not allow. Both act on the parser's own copy of a task's words."""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any

from invoke import Task
from invoke.parser import Argument
from invoke.parser.parser import ParseMachine

HELP_WORDS = ("--help", "-h")
LEFT_OUT = "may_be_left_out"  # set on the arguments of our tasks: a positional with a default may be left out


class _HelpAsked(str):
    """The value of every positional of a task whose command line asked for its help in a positional's place;
    `--prompt=--help` stays a plain string, a question."""

    def __deepcopy__(self, memo: dict) -> _HelpAsked:
        return self  # Invoke copies the calls it runs


HELP_ASKED = _HelpAsked(HELP_WORDS[0])


def get_arguments(task: Task, ignore_unknown_help: bool | None = None) -> list[Argument]:
    """Task.get_arguments, noting which positionals may be left out: those whose parameter has a default; no
    parameter's short flag -h (Invoke gives it to the first whose other letters are taken: --schema); and
    the same each time (Invoke's takes each help text out of the task as it goes, so a second parser, as a
    task's help needs, had none)."""
    help_texts = dict(task.help)
    arguments = Task.get_arguments(task, ignore_unknown_help)
    task.help = help_texts
    parameters = task.argspec(task.body).parameters
    for argument in arguments:
        argument.names = tuple(name for name in argument.names if name != "h")  # -h asks for help, as --help does
        default = parameters[argument.attr_name or argument.name or ""].default
        setattr(argument, LEFT_OUT, argument.positional and default is not inspect.Parameter.empty)
    return arguments


def asked_for_help(task: Task, kwargs: dict[str, Any]) -> bool:
    return any(isinstance(kwargs.get(name), _HelpAsked) for name in task.positional)


def _see_positional_arg(machine: ParseMachine, value: str, invokes=ParseMachine.see_positional_arg) -> None:
    ours = all(hasattr(argument, LEFT_OUT) for argument in machine.context.positional_args)
    if value not in HELP_WORDS or not ours:  # a task of another collection, mounted beside ours, as Invoke has it
        return invokes(machine, value)
    for argument in machine.context.positional_args:  # all of them, so that the parse succeeds
        argument.set_value(HELP_ASKED, cast=False)


def _complete_context(machine: ParseMachine, invokes=ParseMachine.complete_context) -> None:
    if machine.context:
        machine.context.positional_args = [
            argument
            for argument in machine.context.positional_args
            if argument.value is not None or not getattr(argument, LEFT_OUT, False)
        ]
    invokes(machine)


setattr(ParseMachine, "see_positional_arg", _see_positional_arg)  # noqa: B010 (mypy: a method replaced on purpose)
setattr(ParseMachine, "complete_context", _complete_context)  # noqa: B010


def print_help(task: Task) -> None:
    """What `invoke --help TASK` prints, for this task of the whole collection."""
    from invoke import Program
    from invoke.parser import Parser

    from . import ns

    name = next(name for name in ns.task_names if ns[name].body is task.body)  # invoke copies the tasks
    program = Program(namespace=ns, binary=os.path.basename(sys.argv[0]) or "invoke")
    program.collection = ns
    program.parser = Parser(contexts=ns.to_contexts())
    program.print_task_help(name)
