"""The `mlxtasks` console script: the same tasks as `invoke`, from any folder."""

import functools
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from invoke import Config, Exit, ParseError, Program
from invoke.env import Environment
from invoke.parser import ParserContext

from . import __version__, config, exits, ui
from .errors import MlxTasksError
from .tasks import ns
from .tasks.agent import split_command_line


class MlxTasksConfig(Config):
    """Invoke's Config, except that INVOKE_MLX_* is left to mlxtasks (config.from_environment), which
    names a bad value in a sentence; Invoke would cast it to the type a config file gave the key and
    stop every task with a traceback (a list such as mlx.packages cannot come from a variable there)."""

    def load_shell_env(self) -> None:
        self.merge()
        ours_left_out = {key: value for key, value in self._config.items() if key != config.CONFIG_KEY}
        # Environment reads only the keys and values it is given, which a dict has as a Config does.
        self._set(_env=Environment(config=ours_left_out, prefix=self._env_prefix).load())  # type: ignore[arg-type]
        self.merge()


class MlxTasksProgram(Program):
    """Invoke's Program, except that a config file it cannot parse (~/.invoke.yaml, the runtime file)
    is named in a sentence with its fix. `invoke` itself reads ~/.invoke.yaml before loading any of
    our code, so there such a file is still Invoke's traceback."""

    def run(self, argv: list[str] | None = None, exit: bool = True) -> None:
        """Invoke's, except that the words for a coding agent (`agent codex exec "Say hi"`) are left to the agent
        task, which takes them from sys.argv as typed; Invoke would refuse them ("No idea what 'exec' is!")."""
        super().run(split_command_line(sys.argv if argv is None else argv)[0], exit)

    def parse_core(self, argv: list[str] | None) -> None:
        """Invoke's, except that Python's own choice about writing bytecode stands. Invoke turns it off so that a
        project's tasks.py leaves no .pyc behind; ours is a package, whose lazily imported modules would
        otherwise be compiled again by every command."""
        python_chose = sys.dont_write_bytecode
        super().parse_core(argv)
        sys.dont_write_bytecode = python_chose

    def parse_tasks(self) -> None:
        """Invoke's, except that a question starting with '-' is told how to get through: Invoke reads it as
        flags ("No idea what '- ' is!", or even the -h in "- hi" as --help)."""
        argv = self.core.unparsed
        try:
            super().parse_tasks()
        except ParseError as err:
            failed = err.context
            if failed is not None and "prompt" in failed.args:
                _refuse_dashed_prompt(
                    failed,
                    argv,
                    lambda word: (
                        word.split("=")[0] not in failed.flags and word.split("=")[0] not in self.initial_context.flags
                    ),
                )
            raise
        for task in self.tasks:  # a word with a space is never an option, unless it is an option's value
            if "prompt" in task.args:
                values = {
                    word
                    for previous, word in zip(argv, argv[1:], strict=False)
                    if previous in task.flags and task.flags[previous].takes_value
                }
                _refuse_dashed_prompt(task, argv, functools.partial(_spaced_not_a_value, values=values))

    def create_config(self) -> None:
        _config_files_checked(super().create_config)

    def update_config(self, merge: bool = True) -> None:
        _config_files_checked(lambda: super(MlxTasksProgram, self).update_config(merge))


def _spaced_not_a_value(word: str, values: set[str]) -> bool:
    """A word with a space before any '=' is never an option, unless it is an option's value."""
    return " " in word.split("=")[0] and word not in values


def _refuse_dashed_prompt(task: ParserContext, argv: list[str], meant_as_question: Callable[[str], bool]) -> None:
    """Stop with the sentence for the first word that starts with '-' and was meant as the task's question."""
    for word in argv:
        if word[:1] == "-" and word not in ("-", "--") and meant_as_question(word):
            ui.error(
                MlxTasksError(
                    f"{word!r} is not an option of {task.name}; a question that starts with '-' has to "
                    "follow --prompt=.",
                    fix=f"--prompt={shlex.quote(word)} in place of {shlex.quote(word)}",
                )
            )
            raise Exit(code=1)


def _config_files_checked(work: Callable) -> None:
    """Run work; if it fails while a config file is unloadable, say which file and why instead. One that is not
    a regular file (a FIFO would hold Invoke's read for ever) is said before work starts."""
    try:
        config.check_regular(config.config_files(Path(config.home_dir()), os.environ, with_python=True))
        work()
    except Exception:
        try:
            problem = config.file_problem(config.config_files(Path(config.home_dir()), os.environ))
        except MlxTasksError as err:
            problem = err
        if problem is None:
            raise
        ui.error(problem)
        raise Exit(code=1) from None


program = MlxTasksProgram(namespace=ns, name="mlxtasks", version=__version__, config_class=MlxTasksConfig)


def main() -> None:
    try:
        program.run()
    finally:
        exits.flush_stdout()  # Invoke's own output too (--list, a task's help)
