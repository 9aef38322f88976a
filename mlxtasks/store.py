"""Installed models: the folders in the models folder that hold a model."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from . import files
from .catalog import ALIAS_PATTERN, KINDS, REPO_PATTERN, Model, embedding_name, find
from .errors import MlxTasksError
from .facts import GB

MANIFEST = "mlxtasks-manifest.json"
SENTENCE_TRANSFORMERS = ("config_sentence_transformers.json", "modules.json")  # an embedding model's own files


def models_path_problem(models_path: Path) -> MlxTasksError | None:
    """Why the models folder cannot be one (a file is where it, or a folder above it, should be); None if it can."""
    problem = files.folder_problem(models_path)
    return problem and MlxTasksError(
        f"The models folder {problem.message}",
        fix=f"{problem.fix}, or keep models elsewhere: --models PATH (mlx.models in ~/.invoke.yaml)",
    )


def check_models_path(models_path: Path) -> Path:
    problem = models_path_problem(models_path)
    if problem:
        raise problem
    return models_path


def model_folders(models_path: Path) -> list[Path]:
    """Every folder in the models folder, complete or not (hidden ones, such as downloads in progress, aside)."""
    try:
        return sorted(p for p in models_path.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def installed_folders(models_path: Path) -> list[str]:
    """Names of the folders holding a model (a config.json), sorted."""
    return [p.name for p in model_folders(models_path) if (p / "config.json").is_file()]


def installed_models(models_path: Path, known: tuple[Model, ...]) -> list[Model]:
    """Every installed model: catalogue entries whose folder holds one, then the ones the catalogue does not know."""
    present = installed_folders(models_path)
    return [m for m in known if m.folder in present] + uncatalogued_models(models_path, known)


def uncatalogued_models(models_path: Path, known: tuple[Model, ...]) -> list[Model]:
    """Installed models the catalogue does not know (pulled by repo id, or put there by hand), named as
    their manifest or their folder says."""
    taken = {m.folder for m in known}
    reserved = {name for m in known for name in (m.alias, *m.also, m.folder, m.repo)}
    return [_uncatalogued(models_path / name, reserved) for name in installed_folders(models_path) if name not in taken]


def _uncatalogued(folder: Path, reserved: set[str]) -> Model:
    """A model named by the alias its manifest records, unless that is a catalogue name, which always
    means the catalogue's own folder; else by its folder's name in lower case."""
    recorded = read_manifest(folder) or {}
    try:
        config = json.loads(files.read_bytes(folder / "config.json"))
        arch = str(config.get("model_type", "unknown"))
    except (OSError, ValueError, AttributeError, MlxTasksError):
        config, arch = {}, "unknown"
    repo = recorded.get("repo") or folder.name
    alias = recorded.get("alias")
    if not alias or alias in reserved or not ALIAS_PATTERN.fullmatch(alias):
        alias = folder.name.lower()
    kind = "embedding" if recorded.get("kind") == "embedding" else folder_kind(folder, config)
    category = "embedding" if kind == "embedding" else "general"
    return Model(alias, repo, folder.name, size_on_disk(folder) / GB, arch, category, repo, kind=kind)


def folder_kind(folder: Path, config: dict) -> str:
    """Whether a model the catalogue does not know (and models.pull did not record) serves embeddings: a folder
    with sentence-transformers' files, a config whose architectures are all bare bodies without a language-model
    head (Qwen3Model, BertModel), or a name that says so (Qwen3-Embedding-0.6B-8bit); else chat."""
    architectures = config.get("architectures") if isinstance(config, dict) else None
    headless = (
        isinstance(architectures, list)
        and bool(architectures)
        and all(isinstance(a, str) and a.endswith("Model") for a in architectures)
    )
    if headless or embedding_name(folder.name) or any((folder / name).is_file() for name in SENTENCE_TRANSFORMERS):
        return "embedding"
    return "chat"


def known_models(models_path: Path, known: tuple[Model, ...]) -> tuple[Model, ...]:
    """The catalogue, then the installed models it does not know."""
    return (*known, *uncatalogued_models(models_path, known))


def find_model(name: str, models_path: Path, known: tuple[Model, ...]) -> Model:
    """A model of the catalogue or the models folder, by alias, other name, folder name or repo id; an
    unknown name gets close matches."""
    return find(name, known_models(models_path, known), "in the catalogue or the models folder")


def local_model(name: str, models_path: Path, known: tuple[Model, ...], where: str = "") -> tuple[Model, Path]:
    """An installed model and its folder (see find_model); a catalogue model that is not downloaded gets the
    command that pulls it."""
    model = find_model(name, check_models_path(models_path), known)
    if model.folder not in installed_folders(models_path):
        raise MlxTasksError(f"{model.alias} is not downloaded{where}.", fix=f"invoke models.pull {model.alias}")
    return model, models_path / model.folder


def removable(name: str, models_path: Path, known: tuple[Model, ...]) -> tuple[Model, Path]:
    """A model (see find_model) and its path in the models folder, refused when nothing is there."""
    model = find_model(name, models_path, known)
    path = models_path / model.folder
    if not path.exists() and not path.is_symlink():
        raise MlxTasksError(f"{model.alias} is not installed (no {path}).", fix="see what is: invoke models.list")
    return model, path


def read_manifest(folder: Path) -> dict | None:
    """What models.pull recorded of a model it put in place; None for a folder it did not pull, or whose
    manifest is damaged (not a mapping, a field of the wrong type)."""
    try:
        recorded = json.loads(files.read_bytes(folder / MANIFEST))
    except (OSError, ValueError, MlxTasksError):
        return None
    if not isinstance(recorded, dict):
        return None
    listed = recorded.get("files", {})
    fields_ok = (
        isinstance(listed, dict)
        and all(isinstance(k, str) and type(v) is int and v >= 0 for k, v in listed.items())
        and all(isinstance(recorded.get(key, ""), str) for key in ("repo", "alias", "revision", "pulled"))
        and recorded.get("kind", "chat") in KINDS
        and (not recorded.get("repo") or REPO_PATTERN.fullmatch(recorded["repo"]))
        and type(recorded.get("size", 0)) is int
    )
    return recorded if fields_ok else None


def remove_model(models_path: Path, folder: str) -> Path:
    """Delete one model's folder; refuses anything that is not a real folder directly in the models folder."""
    path = models_path / folder
    if (
        path.is_symlink()
        or not path.is_dir()
        or os.path.realpath(path.parent) != os.path.realpath(models_path)
        or os.path.realpath(path) != os.path.join(os.path.realpath(models_path), folder)
    ):
        raise MlxTasksError(
            f"{path} is not a model folder inside {models_path}, so it was not deleted.",
            fix="delete it by hand if you are sure",
        )
    shutil.rmtree(path)
    return path


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tiktoken.model", "vocab.json")


def safetensors_problem(path: Path) -> str | None:
    """None if the header parses and the file is as long as the header says; else what is wrong."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if length <= 0 or 8 + length > size:
                return f"{path.name} is truncated (its header does not fit in {size} bytes)"
            header = json.loads(handle.read(length))
    except (OSError, ValueError) as exc:
        return f"{path.name} has an unreadable header ({exc.__class__.__name__})"
    try:
        ends = [int(entry["data_offsets"][1]) for name, entry in header.items() if name != "__metadata__"]
    except (AttributeError, TypeError, KeyError, IndexError, ValueError):
        return f"{path.name} has a damaged header (an entry without its data offsets)"
    expected = 8 + length + max(ends, default=0)
    if size != expected:
        return f"{path.name} is {size} bytes, its header says {expected}"
    return None


def model_problems(folder: Path) -> list[str]:
    """Everything wrong with a model folder, as mlx_lm would meet it, and against the manifest of the download
    that put it there; [] when it is complete. The one verdict of models.list, models.verify, chat and pull."""
    problems = []
    try:
        config = json.loads(files.read_bytes(folder / "config.json"))
    except MlxTasksError:  # a FIFO, say: never read
        problems.append("config.json is not a regular file")
    except (OSError, ValueError):
        problems.append("config.json is missing or does not parse")
    else:
        if not isinstance(config, dict):
            problems.append(f"config.json holds a JSON {type(config).__name__}, not the model's settings")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        problems.append("no tokenizer files (" + ", ".join(TOKENIZER_FILES) + ")")
    shards = sorted(p.name for p in folder.glob("*.safetensors"))
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            named = sorted(set(json.loads(files.read_bytes(index))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, MlxTasksError):
            named = []
            problems.append("model.safetensors.index.json does not parse")
        problems += [f"{name} (named by the index) is missing" for name in named if name not in shards]
    if not shards:
        problems.append("no .safetensors weights")
    problems += filter(None, (safetensors_problem(folder / name) for name in shards))
    return problems + _manifest_problems(folder)


def _manifest_problems(folder: Path) -> list[str]:
    """A manifest that is there but damaged, and every file it lists at another size than it was downloaded."""
    if not os.path.lexists(folder / MANIFEST):
        return []
    recorded = read_manifest(folder)
    if recorded is None:
        return [f"{MANIFEST} (the record of its download) is damaged"]
    return [
        f"{path} is not the {size} bytes that were downloaded"
        for path, size in recorded.get("files", {}).items()
        if not has_size(folder / path, size)
    ]


def has_size(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


def size_on_disk(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
