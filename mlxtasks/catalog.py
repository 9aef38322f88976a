"""The model catalogue: built-in entries (repo ids, sizes and model types checked against the hub's pages,
each entry naming its source), entries from config (`mlx.catalog`), lookup by alias, and whether a model
fits a machine's memory (fit.py: weights, KV cache at the context, overhead)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from . import fit
from .errors import MlxTasksError
from .facts import GB, GIB, HostFacts

ALIAS_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]*")
FOLDER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
REPO_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
CATEGORIES = ("code", "reasoning", "math", "general", "embedding")
KINDS = ("chat", "embedding")  # what a model serves: chat and completions, or embeddings
# The shell block's own commands are mlx-NAME; an alias of that name (or chat-NAME) would replace one.
SHELL_COMMANDS = (
    "activate",
    "deactivate",
    "status",
    "models",
    "validate",
    "pull",
    "search",
    "serve",
    "serve-stop",
    "ps",
    "chat",
    "ask",
)
# A model of unknown shape: weights plus room for a few thousand tokens (bench judges installed folders by it).
FIT_HEADROOM = fit.UNKNOWN_HEADROOM
SEED_SOURCE = "seed catalogue: shared/design/SEED-FACTS.md (checked Nov 2026)"


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
    source: str = ""  # where the repo id, size and model type were checked
    # From the repo's config.json: the KV cache's shape and the model's own context limit (0: unknown).
    context: int = 0
    layers: int = 0
    kv_heads: int = 0
    head_dim: int = 0
    window: int = 0  # sliding-window layers' span, and how many layers attend to the whole context
    full_layers: int = 0
    active: float = 1.0  # share of the weights read per token (mixture of experts)
    thinking: str = ""  # how it shows its reasoning: "think-tags" (<think>...</think>), "harmony" (gpt-oss's channels)
    tools: str = ""  # its tool-call format: "hermes" (<tool_call> JSON), "qwen3-coder" (XML), "harmony", "llama3-json"
    kind: str = "chat"  # one of KINDS
    kv_bits: int = 0  # its KV cache quantized to 4 or 8 bits (0: as mlx.kv_bits says)

    @property
    def shape(self) -> fit.Shape:
        return fit.Shape(
            self.layers,
            self.kv_heads,
            self.head_dim,
            self.context,
            self.window,
            self.full_layers,
            self.active,
            self.kind == "embedding",
            fit.KV(self.kv_bits),
        )

    def ram_bytes(self, context: int = 0) -> int:
        """Memory to run at `context` tokens (0: fit.MIN_CONTEXT): weights, KV cache and overhead."""
        return fit.need(int(self.size_gb * GB), self.shape, context)

    @property
    def ram_gb(self) -> float:
        return self.ram_bytes() / GB


HF = "https://huggingface.co/"
BUILTIN = (
    # The seed's five, unchanged (sampling, folders and aliases as the seed had them).
    Model(
        "qwen7b",
        "mlx-community/Qwen2.5-Coder-7B-Instruct-4bit",
        "qwen25-coder-7b",
        4.28,
        "qwen2",
        "code",
        "Qwen2.5 Coder 7B: fast everyday coding help",
        ("qwen25-coder-7b",),
        0.7,
        0.8,
        2048,
        "qwen2.5-coder:7b",
        SEED_SOURCE,
        32768,
        28,
        4,
        128,
        tools="hermes",
    ),
    Model(
        "qwen32b",
        "mlx-community/Qwen2.5-Coder-32B-Instruct-4bit",
        "qwen25-coder-32b",
        18.43,
        "qwen2",
        "code",
        "Qwen2.5 Coder 32B: stronger code, needs a 32 GB Mac",
        ("qwen25-coder-32b",),
        0.7,
        0.8,
        2048,
        "qwen2.5-coder:32b",
        SEED_SOURCE,
        32768,
        64,
        8,
        128,
        tools="hermes",
    ),
    Model(
        "deepseek",
        "mlx-community/DeepSeek-R1-Distill-Llama-8B-4bit",
        "deepseek-r1-8b",
        4.5,
        "llama",
        "reasoning",
        "DeepSeek R1 distilled into Llama 8B: thinks step by step before answering",
        ("deepseek-r1-8b",),
        0.6,
        0.95,
        4096,
        "deepseek-r1:8b-llama-distill-q4_K_M",
        SEED_SOURCE,
        131072,
        32,
        8,
        128,
        thinking="think-tags",
    ),
    Model(
        "phi4",
        "mlx-community/phi-4-4bit",
        "phi4-14b",
        8.25,
        "phi3",
        "math",
        "Phi-4 14B: maths and code",
        ("phi4-14b",),
        0.6,
        0.95,
        2048,
        "phi4:14b",
        SEED_SOURCE,
        16384,
        40,
        10,
        128,
    ),
    Model(
        "mistral7b",
        "mlx-community/Mistral-7B-Instruct-v0.3-4bit",
        "mistral-7b",
        4.08,
        "mistral",
        "general",
        "Mistral 7B Instruct v0.3: general chat",
        ("mistral-7b",),
        0.7,
        0.95,
        2048,
        "mistral:7b",
        SEED_SOURCE,
        32768,
        32,
        8,
        128,
    ),
    # Current models (checked Nov 2026). Sampling: each model card's recommended settings.
    Model(
        "qwen3-8b",
        "Qwen/Qwen3-8B-MLX-4bit",
        "qwen3-8b",
        4.37,
        "qwen3",
        "reasoning",
        "Qwen3 8B: thinks before answering (hybrid thinking), a 16 GB Mac's reasoning model",
        (),
        0.6,
        0.95,
        8192,
        "qwen3:8b",
        HF + "Qwen/Qwen3-8B-MLX-4bit/tree/main (4.37 GB, qwen3; Qwen's own MLX 4-bit conversion)",
        40960,
        36,
        8,
        128,
        thinking="think-tags",
        tools="hermes",
    ),
    Model(
        "llama3.1-8b",
        "mlx-community/Meta-Llama-3.1-8B-Instruct-4bit",
        "llama31-8b",
        4.52,
        "llama",
        "general",
        "Llama 3.1 8B Instruct: general chat, long context",
        (),
        0.6,
        0.9,
        2048,
        "llama3.1:8b",
        HF + "mlx-community/Meta-Llama-3.1-8B-Instruct-4bit/tree/main (model.safetensors 4.52 GB, llama)",
        131072,
        32,
        8,
        128,
        tools="llama3-json",
    ),
    Model(
        "qwen3-coder-30b",
        "mlx-community/Qwen3-Coder-30B-A3B-Instruct-4bit",
        "qwen3-coder-30b-a3b",
        17.17,
        "qwen3_moe",
        "code",
        "Qwen3 Coder 30B-A3B: mixture of experts, fast strong coding on a 32 GB Mac",
        (),
        0.7,
        0.8,
        4096,
        "qwen3-coder:30b",
        HF + "mlx-community/Qwen3-Coder-30B-A3B-Instruct-4bit (qwen3_moe, 4-bit); size: the 4-bit mlx-lm shards "
        "of the same Qwen3-30B-A3B architecture, " + HF + "jerryzhao173985/Qwen3-30B-A3B-python-coder-mlx/tree/main "
        "(5.32 + 5.36 + 5.27 + 1.22 GB)",
        262144,
        48,
        4,
        128,
        active=0.11,
        tools="qwen3-coder",
    ),
    Model(
        "qwen3-30b",
        "mlx-community/Qwen3-30B-A3B-Instruct-2507-4bit",
        "qwen3-30b-a3b-2507",
        17.17,
        "qwen3_moe",
        "general",
        "Qwen3 30B-A3B Instruct 2507: mixture of experts, quick general chat on a 32 GB Mac",
        (),
        0.7,
        0.8,
        4096,
        "qwen3:30b",
        HF + "models?other=base_model:quantized:Qwen/Qwen3-30B-A3B-Instruct-2507 (lists this repo, 31B, qwen3_moe); "
        "size as qwen3-coder-30b's, 17.17 GB (same architecture and 4-bit conversion)",
        262144,
        48,
        4,
        128,
        active=0.11,
        tools="hermes",
    ),
    Model(
        "gemma3-27b",
        "mlx-community/gemma-3-text-27b-it-4bit",
        "gemma-3-text-27b",
        15.99,
        "gemma3",
        "general",
        "Gemma 3 27B (text only): strong general chat and writing on a 32 GB Mac",
        (),
        1.0,
        0.95,
        2048,
        "gemma3:27b",
        HF + "mlx-community/gemma-3-text-27b-it-4bit/tree/main (5.37 + 5.35 + 5.27 GB, gemma3)",
        131072,
        62,
        16,
        128,
        window=1024,
        full_layers=10,
    ),
    Model(
        "gpt-oss-20b",
        "lmstudio-community/gpt-oss-20b-MLX-8bit",
        "gpt-oss-20b",
        22.3,
        "gpt_oss",
        "reasoning",
        "gpt-oss 20B: OpenAI's open reasoning model, mixture of experts; a 48 GB Mac",
        (),
        1.0,
        1.0,
        8192,
        "gpt-oss:20b",
        HF + "lmstudio-community/gpt-oss-20b-MLX-8bit/tree/main (22.3 GB, gpt_oss)",
        131072,
        24,
        8,
        64,
        window=128,
        full_layers=12,
        active=0.17,
        thinking="harmony",
        tools="harmony",
    ),
    Model(
        "llama3.3-70b",
        "mlx-community/Llama-3.3-70B-Instruct-4bit",
        "llama33-70b",
        39.7,
        "llama",
        "general",
        "Llama 3.3 70B Instruct: the strongest general chat here, a 64 GB Mac",
        (),
        0.6,
        0.9,
        2048,
        "llama3.3:70b",
        HF + "mlx-community/Llama-3.3-70B-Instruct-4bit/tree/3df27d412901cefff938f760352d9a248d67e345 (8 shards: "
        "5.27 + 6 x 5.29 GB + the last; llama); total as Meta-Llama-3-70B-Instruct-4bit's, the same architecture",
        131072,
        80,
        8,
        128,
        tools="llama3-json",
    ),
    # Embedding models (kind "embedding"): served at /v1/embeddings and /api/embed, never for chat.
    Model(
        "qwen3-embed-0.6b",
        "mlx-community/Qwen3-Embedding-0.6B-8bit",
        "qwen3-embedding-0.6b-8bit",
        0.62,
        "qwen3",
        "embedding",
        "Qwen3 Embedding 0.6B: multilingual text and code embeddings (1024 dimensions, or fewer)",
        (),
        ollama="qwen3-embedding:0.6b",
        source=HF + "mlx-community/Qwen3-Embedding-0.6B-8bit (converted with mlx-embeddings from "
        "Qwen/Qwen3-Embedding-0.6B: model.* weights, tied embeddings, so mlx_lm's qwen3 loads it); size: the same "
        "conversion's 0.62 GB (617 MB), "
        + HF
        + "majentik/Qwen3-Embedding-0.6B-MLX-8bit; shape: Qwen/Qwen3-Embedding-0.6B's "
        "card (28 layers, 8 KV heads, head_dim 128, 32K context)",
        context=32768,
        layers=28,
        kv_heads=8,
        head_dim=128,
        kind="embedding",
    ),
)
# The memory tiers the catalogue covers, as the Mac each one means.
TIERS = {"16 GB": 16, "24-32 GB": 32, "48 GB and up": 64}

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
            raise MlxTasksError(
                f"The alias '{alias}' in '{key}' would replace the shell command mlx-{alias}.",
                fix="choose another alias in the `mlx.catalog` section of ~/.invoke.yaml",
            )
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
    if model.kv_bits not in (0, 4, 8):
        raise _bad(f"{key}.kv_bits", "4 or 8 (a quantized KV cache)", model.kv_bits)
    if model.category not in CATEGORIES:
        raise _bad(f"{key}.category", "one of " + ", ".join(CATEGORIES), model.category)
    if model.kind not in KINDS:
        raise _bad(f"{key}.kind", "one of " + ", ".join(KINDS), model.kind)


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
    raise MlxTasksError(
        f"There is no model called {name!r} {place}.{hint}", fix="see the catalogue: invoke models.list"
    )


def from_repo(repo: str, size_gb: float) -> Model:
    """An ad-hoc entry for `models.pull ORG/NAME`: folder named after the repo; an embedding model when its name
    says so (see embedding_name)."""
    if not REPO_PATTERN.fullmatch(repo):
        raise MlxTasksError(
            f"{repo!r} is not a hub repo id (org/name).",
            fix="use a catalogue alias (invoke models.list) or a repo id such as mlx-community/phi-4-4bit",
        )
    name = repo.split("/")[1]
    kind = "embedding" if embedding_name(name) else "chat"
    return Model(
        name.lower(), repo, name, size_gb, "unknown", "embedding" if kind == "embedding" else "general", repo, kind=kind
    )


def embedding_name(name: str) -> bool:
    """A repo or folder named as an embedding model (Qwen3-Embedding-0.6B-8bit, bge-m3-embed, e5-embeddings)."""
    return "embed" in name.lower()


def memory_budget(facts: HostFacts) -> int:
    """Bytes a model may use, the one budget every command judges fit by: on a Mac, what Metal lets the GPU
    wire (iogpu.wired_limit_mb when set, else MLX's max_recommended_working_set_size as validate read it,
    else macOS's default share of RAM); elsewhere available RAM."""
    if facts.is_mac:
        if facts.wired_limit_mb:
            return facts.wired_limit_mb * 2**20  # MiB
        if facts.working_set:
            return facts.working_set
        # Neither read: macOS lets the GPU wire about 2/3 of RAM up to 36 GB, about 3/4 above.
        fraction = 2 / 3 if facts.ram_total <= 36 * GIB else 3 / 4
        return int(facts.ram_total * fraction)
    return facts.ram_available


def budget_source(facts: HostFacts) -> str:
    """Where memory_budget's figure comes from, in words."""
    if not facts.is_mac:
        return "available RAM"
    if facts.wired_limit_mb:
        return f"iogpu.wired_limit_mb={facts.wired_limit_mb}"
    if facts.working_set:
        return "Metal's recommended working set, as MLX reports it"
    return "macOS's default GPU share of RAM; invoke validate reads Metal's own figure"


def fits_in(model: Model, budget: int, context: int = 0) -> bool:
    return model.ram_bytes(context) <= budget


def fits(model: Model, facts: HostFacts, context: int = 0) -> bool:
    return fits_in(model, memory_budget(facts), context)


def by_folder(folder: str, models: tuple[Model, ...] = BUILTIN) -> Model | None:
    return next((m for m in models if m.folder == folder), None)


def too_big(facts: HostFacts, models: tuple[Model, ...] = BUILTIN) -> list[Model]:
    return [m for m in models if not fits(m, facts)]
