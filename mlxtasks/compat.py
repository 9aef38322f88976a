"""Can the venv's mlx-lm run a model? Its config.json judged against what the venv supports, before any
weight is downloaded. What the venv supports is asked once per mlx-lm and mlx version (runtime/support.py)
and kept in the state folder."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import Settings
from .errors import MlxTasksError
from .protocol import Support

# Hub pipeline tags of models that generate text (image-text-to-text: multimodal ones mlx-lm runs as text).
GENERATIVE = ("text-generation", "image-text-to-text", "conversational")
UPGRADE = "invoke install --upgrade"
PICK_ANOTHER = "pick a text model from the catalogue: invoke models.list"


def versions(venv: Path) -> tuple[str, str] | None:
    """(mlx-lm, mlx) as installed in the venv, read from their metadata folders; None when either is missing."""
    found = {}
    for meta in venv.glob("lib/python*/site-packages/*.dist-info"):
        name, _, version = meta.name[: -len(".dist-info")].partition("-")
        if name in ("mlx_lm", "mlx"):
            found[name] = version
    return (found["mlx_lm"], found["mlx"]) if len(found) == 2 else None


def support(s: Settings) -> Support | None:
    """What the venv runs (cached per version); None without a venv with mlx-lm, or when it cannot answer."""
    installed = versions(s.venv)
    if installed is None:
        return None
    cache = s.state / "support" / f"mlx_lm-{installed[0]}-mlx-{installed[1]}.json"
    try:
        return Support.read(cache)
    except (OSError, ValueError):
        pass
    try:
        done = subprocess.run(
            [str(s.venv_python), "-m", "mlxtasks.runtime.support"],
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        answer = Support.from_json(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return None  # a venv that cannot answer is validate's to explain
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(answer.to_json())
    return answer


def problem(repo: str, config: Mapping[str, Any], known: Support, pipeline: str = "") -> MlxTasksError | None:
    """Why mlx-lm cannot run this model (one sentence and its fix), or None when it can."""
    model_type = config.get("model_type")
    if pipeline and pipeline not in GENERATIVE:
        return MlxTasksError(
            f"{repo} is a {pipeline} model, not one that writes text, so mlx-lm cannot chat with it.", fix=PICK_ANOTHER
        )
    if not isinstance(model_type, str) or not model_type:
        return MlxTasksError(f"{repo}'s config.json names no model_type, so mlx-lm cannot load it.", fix=PICK_ANOTHER)
    if model_type not in known.model_types:
        if "vision_config" in config or "vision" in model_type or "_vl" in model_type:
            return MlxTasksError(
                f"{repo} is a vision model ({model_type}): mlx-lm cannot run it.",
                fix="for images use mlx-vlm (pip install mlx-vlm in the venv); for chat, " + PICK_ANOTHER,
            )
        return MlxTasksError(
            f"{repo} is a {model_type} model, and the venv's mlx-lm {known.mlx_lm} has no module for that model type.",
            fix=f"{UPGRADE} (a newer mlx-lm may have it), or {PICK_ANOTHER}",
        )
    quantization = config.get("quantization") or config.get("quantization_config") or {}
    mode = quantization.get("mode", "affine") if isinstance(quantization, Mapping) else "affine"
    if mode not in known.quant_modes:
        return MlxTasksError(
            f"{repo} is quantized in the {mode} mode, which needs a newer mlx than the venv's {known.mlx}.", fix=UPGRADE
        )
    return None
