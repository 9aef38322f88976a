"""The `mlxtasks` console script: the same tasks as `invoke`, from any folder."""

from invoke import Program

from . import __version__
from .tasks import ns
from .tasks.executor import SharedOptionsExecutor, config_files_checked


class MlxTasksProgram(Program):
    """Invoke's Program, except that a config file it cannot parse (~/.invoke.yaml, the runtime file)
    is named in a sentence with its fix. `invoke` itself reads ~/.invoke.yaml before loading any of
    our code, so there such a file is still Invoke's traceback."""

    def create_config(self) -> None:
        config_files_checked(super().create_config)

    def update_config(self, merge: bool = True) -> None:
        config_files_checked(lambda: super(MlxTasksProgram, self).update_config(merge))


program = MlxTasksProgram(namespace=ns, name="mlxtasks", version=__version__, executor_class=SharedOptionsExecutor)


def main() -> None:
    program.run()
