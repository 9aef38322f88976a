"""The model catalogue: built-in entries (repo ids and sizes checked in Nov 2026), entries from
config (`mlx.catalog`), lookup by alias, and whether a model fits a machine's memory."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from .errors import MlxTasksError
from .facts import GB, GIB, HostFacts

ALIAS_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]*")
FOLDER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
REPO_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
CATEGORIES = ("code", "reasoning", "math", "general")
# The shell block's own commands are mlx-NAME; an alias of that name (or chat-NAME) would replace one.
SHELL_COMMANDS = ("activate", "deactivate", "status", "models", "validate", "pull", "serve", "serve-stop", "chat", "ask")
# Weights plus KV cache and activations for a few thousand tokens of context.
FIT_HEADROOM = 1.1


@dataclass(frozen=True)
class Model:
    alias: str
    repo: str
    folder: str
    size_gb: float  # the weights on disk
    arch: str
    category: str
    description: str
    also: tuple[str, ...] = ()
    temperature: float = 0.7
    top_p: float = 0.9
    max_tokens: int = 2048
    ollama: str = ""  # the same model's tag in Ollama's library, for `invoke bench --compare ollama`

    @property
    def ram_gb(self) -> float:
        """Memory the model needs to run: its weights and room for a few thousand tokens."""
        return self.size_gb * FIT_HEADROOM


BUILTIN = (
    Model("qwen7b", "mlx-community/Qwen2.5-Coder-7B-Instruct-4bit", "qwen25-coder-7b", 4.28, "qwen2", "code",
          "Qwen2.5 Coder 7B: fast everyday coding help", ("qwen25-coder-7b",), 0.7, 0.8, 2048, "qwen2.5-coder:7b"),
    Model("qwen32b", "mlx-community/Qwen2.5-Coder-32B-Instruct-4bit", "qwen25-coder-32b", 18.43, "qwen2", "code",
          "Qwen2.5 Coder 32B: stronger code, needs a 32 GB Mac", ("qwen25-coder-32b",), 0.7, 0.8, 2048,
          "qwen2.5-coder:32b"),
    Model("deepseek", "mlx-community/DeepSeek-R1-Distill-Llama-8B-4bit", "deepseek-r1-8b", 4.5, "llama", "reasoning",
          "DeepSeek R1 distilled into Llama 8B: thinks step by step before answering", ("deepseek-r1-8b",),
          0.6, 0.95, 4096, "deepseek-r1:8b-llama-distill-q4_K_M"),
    Model("phi4", "mlx-community/phi-4-4bit", "phi4-14b", 8.25, "phi3", "math",
          "Phi-4 14B: maths and code", ("phi4-14b",), 0.6, 0.95, 2048, "phi4:14b"),
    Model("mistral7b", "mlx-community/Mistral-7B-Instruct-v0.3-4bit", "mistral-7b", 4.08, "mistral", "general",
          "Mistral 7B Instruct v0.3: general chat", ("mistral-7b",), 0.7, 0.95, 2048, "mistral:7b"),
)

_TYPES = {f.name: f.type for f in fields(Model)}


def load(configured: Mapping[str, Any] | None, builtin: tuple[Model, ...] = BUILTIN) -> tuple[Model, ...]:
    """The built-in entries with config's overrides applied and its new entries added, all validated.
    configured: {alias: {repo, folder, size_gb, ...}} from `mlx.catalog`."""
    models = {m.alias: m for m in builtin}
    for alias, entry in (configured or {}).items():
        key = f"mlx.catalog.{alias}"
        if not isinstance(alias, str) or not ALIAS_PATTERN.fullmatch(alias):
            raise _bad(key, "an alias of lower-case letters, digits, '.', '_' and '-'", alias)
        if alias in SHELL_COMMANDS or alias.startswith("chat-"):
            raise MlxTasksError(f"The alias '{alias}' in '{key}' would replace the shell command mlx-{alias}.",
                                fix="choose another alias in the `mlx.catalog` section of ~/.invoke.yaml")
        if not isinstance(entry, Mapping):
            raise _bad(key, "a mapping of fields (repo, folder, size_gb, ...)", entry)
        unknown = sorted(set(entry) - set(_TYPES) - {"alias"})
        if unknown:
            raise MlxTasksError(f"Unknown config key '{key}.{unknown[0]}'.", fix=_FIX)
        values = {name: _field(f"{key}.{name}", name, value) for name, value in entry.items() if name != "alias"}
        if alias in models:
            models[alias] = replace(models[alias], **values)
        else:
            missing = [name for name in ("repo", "size_gb") if name not in values]
            if missing:
                raise MlxTasksError(f"Config key '{key}' needs '{missing[0]}' for a new model.", fix=_FIX)
            values.setdefault("folder", values["repo"].rsplit("/", 1)[-1])
            values = {"arch": "unknown", "category": "general", "description": values["repo"], **values}
            models[alias] = Model(alias=alias, **values)
        _check_model(models[alias], key)
    return tuple(models.values())


_FIX = "edit the `mlx.catalog` section of invoke.yaml or ~/.invoke.yaml"


def _bad(key: str, expected: str, value: Any) -> MlxTasksError:
    return MlxTasksError(f"Config key '{key}' must be {expected}, got {value!r}.", fix=_FIX)


def _field(key: str, name: str, value: Any) -> Any:
    kind = _TYPES[name]
    if kind == "str":
        if not isinstance(value, str) or not value:
            raise _bad(key, "text", value)
        return value
    if kind == "tuple[str, ...]":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise _bad(key, "a list of aliases", value)
        return tuple(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise _bad(key, "a positive number", value)
    return int(value) if kind == "int" else float(value)


def _check_model(model: Model, key: str) -> None:
    if not REPO_PATTERN.fullmatch(model.repo):
        raise _bad(f"{key}.repo", "a hub repo id like org/name", model.repo)
    if not FOLDER_PATTERN.fullmatch(model.folder) or model.folder in (".", ".."):
        raise _bad(f"{key}.folder", "a plain folder name inside the models folder", model.folder)
    for alias in model.also:
        if not ALIAS_PATTERN.fullmatch(alias):
            raise _bad(f"{key}.also", "aliases of lower-case letters, digits, '.', '_' and '-'", alias)
    if model.category not in CATEGORIES:
        raise _bad(f"{key}.category", "one of " + ", ".join(CATEGORIES), model.category)


def lookup(name: str, models: tuple[Model, ...]) -> Model | None:
    """A model by alias, `also` name, folder name or repo id."""
    return next((model for model in models if name in (model.alias, *model.also, model.folder, model.repo)), None)


def find(name: str, models: tuple[Model, ...], place: str = "in the catalogue") -> Model:
    """Like lookup, but an unknown name gets close matches and the list command."""
    model = lookup(name, models)
    if model:
        return model
    names = [m.alias for m in models] + [a for m in models for a in m.also]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise MlxTasksError(f"There is no model called {name!r} {place}.{hint}", fix="see the catalogue: invoke models.list")


def from_repo(repo: str, size_gb: float) -> Model:
    """An ad-hoc entry for `models.pull ORG/NAME`: folder named after the repo."""
    if not REPO_PATTERN.fullmatch(repo):
        raise MlxTasksError(f"{repo!r} is not a hub repo id (org/name).",
                            fix="use a catalogue alias (invoke models.list) or a repo id such as mlx-community/phi-4-4bit")
    return Model(repo.split("/")[1].lower(), repo, repo.split("/")[1], size_gb, "unknown", "general", repo)


def memory_budget(facts: HostFacts) -> int:
    """Bytes a model may use, the one budget every command judges fit by: on a Mac, what the GPU may
    wire (iogpu.wired_limit_mb when set, else macOS's default share of RAM); elsewhere available RAM."""
    if facts.is_mac:
        if facts.wired_limit_mb:
            return facts.wired_limit_mb * 2**20  # MiB
        # macOS lets the GPU wire about 2/3 of RAM up to 36 GB, about 3/4 above.
        fraction = 2 / 3 if facts.ram_total <= 36 * GIB else 3 / 4
        return int(facts.ram_total * fraction)
    return facts.ram_available


def budget_source(facts: HostFacts) -> str:
    """Where memory_budget's figure comes from, in words."""
    if not facts.is_mac:
        return "available RAM"
    if facts.wired_limit_mb:
        return f"iogpu.wired_limit_mb={facts.wired_limit_mb}"
    return "macOS's default GPU share of RAM"


def fits_in(model: Model, budget: int) -> bool:
    return model.ram_gb * GB <= budget


def fits(model: Model, facts: HostFacts) -> bool:
    return fits_in(model, memory_budget(facts))


def by_folder(folder: str, models: tuple[Model, ...] = BUILTIN) -> Model | None:
    return next((m for m in models if m.folder == folder), None)


def too_big(facts: HostFacts, models: tuple[Model, ...] = BUILTIN) -> list[Model]:
    return [m for m in models if not fits(m, facts)]
