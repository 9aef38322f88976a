"""The `mlxtasks` console script: the same tasks as `invoke`, from any folder."""

import os
import sys
from pathlib import Path
from typing import Callable

from invoke import Config, Exit, Program
from invoke.env import Environment

from . import __version__, config, ui
from .errors import MlxTasksError
from .tasks import ns


class MlxTasksConfig(Config):
    """Invoke's Config, except that INVOKE_MLX_* is left to mlxtasks (config.from_environment), which
    names a bad value in a sentence; Invoke would cast it to the type a config file gave the key and
    stop every task with a traceback (a list such as mlx.packages cannot come from a variable there)."""

    def load_shell_env(self) -> None:
        self.merge()
        ours_left_out = {key: value for key, value in self._config.items() if key != config.CONFIG_KEY}
        self._set(_env=Environment(config=ours_left_out, prefix=self._env_prefix).load())
        self.merge()


class MlxTasksProgram(Program):
    """Invoke's Program, except that a config file it cannot parse (~/.invoke.yaml, the runtime file)
    is named in a sentence with its fix. `invoke` itself reads ~/.invoke.yaml before loading any of
    our code, so there such a file is still Invoke's traceback."""

    def parse_core(self, argv: list[str] | None) -> None:
        """Invoke's, except that Python's own choice about writing bytecode stands. Invoke turns it off so that a
        project's tasks.py leaves no .pyc behind; ours is a package, whose lazily imported modules would
        otherwise be compiled again by every command."""
        python_chose = sys.dont_write_bytecode
        super().parse_core(argv)
        sys.dont_write_bytecode = python_chose

    def create_config(self) -> None:
        _config_files_checked(super().create_config)

    def update_config(self, merge: bool = True) -> None:
        _config_files_checked(lambda: super(MlxTasksProgram, self).update_config(merge))


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
    program.run()
