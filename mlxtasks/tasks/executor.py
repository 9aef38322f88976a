"""An Executor whose pre-tasks inherit the options they share with the task that asked for them.

Invoke calls pre-tasks with no arguments, so `invoke setup --yes --python X` would not reach
`venv.create`. Here every pre-task gets the caller's value for each parameter it also has.
It also refuses an INVOKE_MLX_* variable of the wrong type in a sentence, before Invoke trips on it.
"""

import inspect
import os

from invoke import Call, Executor, Exit, Task

from .. import config, ui


class SharedOptionsExecutor(Executor):
    def execute(self, *tasks):
        problem = config.env_problem(os.environ)
        if problem:
            ui.error(problem)
            raise Exit(code=1)
        return super().execute(*tasks)

    def expand_calls(self, calls):
        expanded = []
        for call in calls:
            if isinstance(call, Task):
                call = Call(call)
            expanded.extend(self.expand_calls([_inherit(pre, call.kwargs) for pre in call.pre]))
            expanded.append(call)
            expanded.extend(self.expand_calls(call.post))
        return expanded


def _inherit(pre, kwargs):
    call = pre if isinstance(pre, Call) else Call(pre)
    accepted = inspect.signature(call.task.body).parameters
    shared = {name: value for name, value in kwargs.items() if name in accepted}
    return Call(call.task, called_as=call.called_as, args=call.args, kwargs={**shared, **call.kwargs})
