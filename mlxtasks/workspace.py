"""The workspace and models folders."""

from __future__ import annotations

from . import files
from .config import Settings
from .errors import MlxTasksError
from .steps import MakeDir, Step


def plan(settings: Settings) -> Step:
    for label, folder in (("The workspace folder", settings.workspace), ("The models folder", settings.models)):
        problem = files.folder_problem(folder)
        if problem:  # said before any [changed] line
            raise MlxTasksError(
                f"{label} {problem.message}", fix=f"{problem.fix}, or choose another with --workspace/--models"
            )
    folders = dict.fromkeys([settings.workspace, settings.models])
    missing = tuple(MakeDir(path) for path in folders if not path.is_dir())
    if not missing:
        return Step("workspace", f"{settings.workspace} and {settings.models} exist")
    return Step("workspace", "create " + ", ".join(str(a.path) for a in missing), missing)
