"""Run `invoke --list` to see the tasks; they live in mlxtasks/tasks/."""

from mlxtasks.tasks import ns  # noqa: F401
