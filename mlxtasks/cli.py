"""The `mlxtasks` console script: the same tasks as `invoke`, from any folder."""

from invoke import Program

from . import __version__
from .tasks import ns
from .tasks.executor import SharedOptionsExecutor

program = Program(namespace=ns, name="mlxtasks", version=__version__, executor_class=SharedOptionsExecutor)


def main() -> None:
    program.run()
