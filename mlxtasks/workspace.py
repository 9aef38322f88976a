"""The workspace and models folders."""

from __future__ import annotations

from .config import Settings
from .steps import MakeDir, Step


def plan(settings: Settings) -> Step:
    folders = dict.fromkeys([settings.workspace, settings.models])
    missing = tuple(MakeDir(path) for path in folders if not path.is_dir())
    if not missing:
        return Step("workspace", f"{settings.workspace} and {settings.models} exist")
    return Step("workspace", "create " + ", ".join(str(a.path) for a in missing), missing)
