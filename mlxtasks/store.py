"""Installed models: the folders in the models folder that hold a model."""

from __future__ import annotations

from pathlib import Path


def installed_folders(models_path: Path) -> list[str]:
    """Names of the folders holding a model (a config.json), sorted."""
    try:
        return sorted(p.parent.name for p in models_path.glob("*/config.json"))
    except OSError:
        return []
