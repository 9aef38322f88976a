"""An Executor whose pre-tasks inherit the options they share with the task that asked for them.

Invoke calls pre-tasks with no arguments, so `invoke setup --yes --python X` would not reach
`venv.create`. Here every pre-task gets the caller's value for each parameter it also has.
It also refuses, in a sentence, an INVOKE_MLX_* variable of the wrong type and a config file that
Invoke cannot merge, where Invoke itself would print a traceback before any task runs.
"""

import inspect
import os
from pathlib import Path
from typing import Callable

from invoke import Call, Executor, Exit, Task

from .. import config, ui
from ..errors import MlxTasksError


class SharedOptionsExecutor(Executor):
    def execute(self, *tasks):
        problem = config.env_problem(os.environ)
        if problem:
            ui.error(problem)
            raise Exit(code=1)
        return config_files_checked(lambda: super(SharedOptionsExecutor, self).execute(*tasks))

    def expand_calls(self, calls):
        expanded = []
        for call in calls:
            if isinstance(call, Task):
                call = Call(call)
            expanded.extend(self.expand_calls([_inherit(pre, call.kwargs) for pre in call.pre]))
            expanded.append(call)
            expanded.extend(self.expand_calls(call.post))
        return expanded


def config_files_checked(work: Callable):
    """Run work; if it fails while a config file is unloadable or unmergeable, say which file and why
    instead. Such a file fails Invoke's config loading, which comes before any task runs."""
    try:
        return work()
    except Exception:
        try:
            problem = config.file_problem(config.config_files(Path(os.path.expanduser("~")), os.environ))
        except MlxTasksError as err:
            problem = err
        if problem is None:
            raise
        ui.error(problem)
        raise Exit(code=1) from None


def _inherit(pre, kwargs):
    call = pre if isinstance(pre, Call) else Call(pre)
    accepted = inspect.signature(call.task.body).parameters
    shared = {name: value for name, value in kwargs.items() if name in accepted}
    return Call(call.task, called_as=call.called_as, args=call.args, kwargs={**shared, **call.kwargs})
