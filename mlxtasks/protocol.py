"""What the tool side and the runtime side (the venv's Python) say to each other: specs in, answers out.

The only module of the tool side that the runtime side imports, so it uses the standard library only.
Each message is a frozen dataclass that goes over the boundary as JSON (a file or a line of stdout).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

M = TypeVar("M", bound="Message")


@dataclasses.dataclass(frozen=True)
class Message:
    """The JSON round trip every spec and answer shares."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls: type[M], data: dict[str, Any]) -> M:
        """Build from decoded JSON; a missing or unknown key is a ValueError, not a silent default."""
        names = {f.name for f in dataclasses.fields(cls)}
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        if not isinstance(data, dict) or not required <= set(data) or not set(data) <= names:
            raise ValueError(f"not a {cls.__name__}: {data!r:.200}")
        hints = typing.get_type_hints(cls)
        return cls(**{name: _decode(hints[name], value) for name, value in data.items()})

    @classmethod
    def from_json(cls: type[M], text: str) -> M:
        return cls.from_dict(json.loads(text))

    @classmethod
    def read(cls: type[M], path: Path) -> M:
        return cls.from_json(Path(path).read_text())


def _decode(kind: Any, value: Any) -> Any:
    """A JSON value as the field's type: nested messages built, lists made tuples where the type says so."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if isinstance(kind, type) and issubclass(kind, Message):
        return kind.from_dict(value)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _decode(next(arg for arg in args if arg is not type(None)), value)
    if origin is tuple and isinstance(value, list):
        return tuple(_decode(args[0], item) for item in value)
    if origin is list and isinstance(value, list):
        return [_decode(args[0], item) for item in value]
    if origin is dict and isinstance(value, dict):
        return {key: _decode(args[1], item) for key, item in value.items()}
    return value


# --- shared constants and pure helpers -------------------------------------------------------------

# Said before a process's first generation on CUDA, so the compile (a minute or more the first time) is no hang.
CUDA_COMPILING = "compiling GPU kernels (first run only)..."
# The text each bench prompt is cut from; a run's own first words keep Ollama from reusing a cached prefix.
FILLER = (
    "Local language models answer questions, write code and summarise documents on the machine in front of "
    "you. Their speed depends on memory bandwidth, on how the weights are quantised and on the length of the "
    "prompt, which is read in one pass before the first new token appears. "
)


def prompt_text(run: int, words: int) -> str:
    """The text a bench prompt is cut from: about `words` tokens or more, its first words naming the run."""
    repeats = words // 30 + 2  # the filler is about 60 tokens in the catalogue's tokenizers
    return f"Run {run}. " + FILLER * repeats


def duration(value: Any) -> float:
    """Seconds from a number or an Ollama-style duration ("5m", "1h30m", "90s", "-1"); negative: forever.
    A ValueError for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"not a duration: {value!r}")
    try:
        return float(value)
    except ValueError:
        pass
    found = re.fullmatch(r"\s*(-?)((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)\s*", str(value))
    if not found:
        raise ValueError(f"not a duration: {value!r}")
    units = {"ms": 0.001, "h": 3600, "m": 60, "s": 1}
    total = sum(float(n) * units[unit] for n, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", found[2]))
    return -total if found[1] else total


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def host_name(header: str) -> str:
    """The name in a Host header: '127.0.0.1:8080' -> '127.0.0.1', '[::1]:8080' -> '::1', 'LocalHost' -> 'localhost'."""
    if header.startswith("["):
        return header[1 : header.find("]")]
    return (header.rsplit(":", 1)[0] if header.count(":") == 1 else header).lower()


# --- the router's choice (pure; chat routes in the runtime when the model is "auto") --------------

FALLBACK_CATEGORY = "general"


@dataclasses.dataclass(frozen=True)
class Choice:
    alias: str
    category: str
    scores: dict[str, float]
    matched: dict[str, list[str]]
    reason: str


def score(prompt: str, rules: Mapping[str, Mapping]) -> tuple[dict[str, float], dict[str, list[str]]]:
    scores, matched = {}, {}
    for category, rule in rules.items():
        found = [
            word for word in rule.get("keywords", {}) if re.search(rf"\b{re.escape(word)}\b", prompt, re.IGNORECASE)
        ]
        matched[category] = found
        scores[category] = float(sum(rule["keywords"][word] for word in found))
    return scores, matched


def route(prompt: str, installed: set[str], rules: Mapping[str, Mapping]) -> Choice:
    """The best installed model for the prompt, and why; never one that is not installed (installed: not empty)."""
    scores, matched = score(prompt, rules)
    best = max(scores.values(), default=0)
    category = next((c for c, s in scores.items() if s == best), FALLBACK_CATEGORY) if best > 0 else FALLBACK_CATEGORY
    wanted = list(rules.get(category, {}).get("models", []))
    candidates = wanted + sorted(installed - set(wanted))  # any installed model rather than none
    alias = next(a for a in candidates if a in installed)
    why = (
        f"{category} (score {best:g}: {', '.join(matched[category])})" if best > 0 else "general (no keywords matched)"
    )
    if wanted and alias != wanted[0]:
        why += f"; the best model for it, {wanted[0]}, is not installed, so {alias}, the next installed one"
    return Choice(alias, category, scores, matched, why)


# --- chat: python -m mlxtasks.runtime.chat --spec FILE --------------------------------------------

# Each sampling setting a flag or /set gives: (type, lowest, highest, the words for its range). temp stops at
# OpenAI's 2; top_p must leave some token to pick; a seed is what every backend takes (32 bits).
SAMPLING_RANGES = {
    "temp": (float, 0.0, 2.0, "a number from 0 to 2"),
    "top_p": (float, 0.0, 1.0, "a number above 0, up to 1"),
    "max_tokens": (int, 1, 10**6, "a whole number from 1 to 1000000"),
    "seed": (int, 0, 2**32 - 1, "a whole number from 0 to 4294967295"),
}


def sampling_value(name: str, value: Any) -> float | int:
    """A sampling setting (a key of SAMPLING_RANGES) as its number; ValueError, whose text is the range, when it
    is not a number of that kind within the range (nan and inf included)."""
    kind, lowest, highest, expected = SAMPLING_RANGES[name]
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(expected) from None
    if not lowest <= number <= highest or (name == "top_p" and number == 0):
        raise ValueError(expected)
    return number


@dataclasses.dataclass(frozen=True)
class Sampling(Message):
    temp: float
    top_p: float
    max_tokens: int


@dataclasses.dataclass(frozen=True)
class ChatModel(Message):
    path: str
    sampling: Sampling
    names: tuple[str, ...] = ()  # the other names it answers to in /model: folder, repo id...
    context: int = 0  # tokens kept, prompt and reply together (0: the model's own limit)
    kv_bits: int = 0  # its KV cache quantized to 4 or 8 bits (0: 16-bit)


@dataclasses.dataclass(frozen=True)
class KVSettings(Message):
    """How a quantized KV cache is made (mlx_lm's kv_group_size and quantized_kv_start)."""

    group_size: int = 64
    start: int = 5000  # tokens a cache holds in 16 bits before it is quantized


@dataclasses.dataclass(frozen=True)
class ChatSpec(Message):
    """A chat session (ask None) or one answer on stdout; prompts travel in this file, never in argv."""

    models: dict[str, ChatModel]  # every installed model, by alias
    alias: str | None  # None: the router picks for the first message
    overrides: dict[str, float]  # sampling given by flags (keys of Sampling); they win over each model's defaults
    rules: dict[str, dict[str, Any]]  # the router's table (router.check_rules)
    system: str | None = None
    seed: int | None = None
    history: str | None = None  # the chat's history file (prompt_toolkit's format)
    ask: str | None = None
    verbose: bool = False
    server: str = ""  # a running server's base URL, asked first ("": load the model here)
    response_format: dict | None = None  # a structured answer, as OpenAI's response_format (None: text)
    kv: KVSettings = KVSettings()  # for the models whose kv_bits is set


# --- bench: python -m mlxtasks.runtime.bench --spec JSON ------------------------------------------


@dataclasses.dataclass(frozen=True)
class BenchModel(Message):
    alias: str
    path: str


@dataclasses.dataclass(frozen=True)
class BenchSpec(Message):
    models: tuple[BenchModel, ...]
    prompt_tokens: tuple[int, ...]
    generation_tokens: int
    runs: int
    warmup: int


@dataclasses.dataclass(frozen=True)
class BenchRun(Message):
    """One timed run's raw numbers; the tool side derives the rates (bench.mlx_run)."""

    prompt_tokens: int
    generation_tokens: int
    first_token_s: float
    generation_s: float
    peak_memory_gb: float


@dataclasses.dataclass(frozen=True)
class BenchLength(Message):
    prompt_tokens: int
    runs: tuple[BenchRun, ...]
    prompts: tuple[str, ...]  # each run's prompt as text, for Ollama's side of --compare


@dataclasses.dataclass(frozen=True)
class BenchResult(Message):
    alias: str
    path: str
    load_s: float
    lengths: tuple[BenchLength, ...]


@dataclasses.dataclass(frozen=True)
class BenchMachine(Message):
    """What only the venv's Python knows; the tool side adds the host's facts."""

    backend: str
    device: str
    device_name: str | None
    mlx: str
    mlx_lm: str
    python: str


@dataclasses.dataclass(frozen=True)
class BenchAnswer(Message):
    date: str
    machine: BenchMachine
    results: tuple[BenchResult, ...]
    failed: dict[str, str]  # alias -> the exception that stopped it there


# --- cluster: python -m mlxtasks.runtime.cluster --spec JSON | --capabilities FOLDER --------------


@dataclasses.dataclass(frozen=True)
class ClusterSpec(Message):
    """One rank's work; the same on every rank, passed in argv by mlx.launch."""

    alias: str
    path: str
    backend: str  # mlx.distributed.init's name for it
    pipeline: bool
    sampling: Sampling
    overrides: dict[str, float]
    system: str | None = None
    seed: int | None = None
    verbose: bool = False
    ask: str | None = None  # None: a chat, rank 0 reading stdin


@dataclasses.dataclass(frozen=True)
class Capabilities(Message):
    """What mlx_lm's sharded_load accepts for a model."""

    model_type: str | None
    tensor: bool
    pipeline: bool


def xdg_folder(variable: str, default: Path, env: Mapping[str, str]) -> Path:
    """An XDG base folder: the variable when it is an absolute path (the XDG spec says to ignore a relative
    one, which would follow the current folder), else the default. The one rule for every XDG variable, on
    both sides."""
    base = env.get(variable, "")
    return Path(base) if base.startswith("/") else default


# --- serve ---


# An embedding model's limits in the server (fit.py counts its memory by them): the tokens of one input (longer
# ones are cut or refused; Qwen3-Embedding's card embeds at up to 8192), and the padded tokens of one forward pass.
EMBED_MAX_TOKENS = 8192
EMBED_BATCH_TOKENS = 8192


@dataclasses.dataclass(frozen=True)
class ServedModel(Message):
    """An installed model the server loads when a request names it."""

    alias: str
    folder: str
    names: list[str]  # what a request may call it besides the alias: its folder name, its repo id, its path
    need: int = 0  # bytes it needs loaded (weights, KV cache at its context, overhead), judged against the budget
    context: int = 0  # tokens a request may use, prompt and reply (0: the model's own limit)
    temperature: float = 0.0  # the catalogue's sampling: a request's defaults
    top_p: float = 1.0
    max_tokens: int = 2048
    kv_token_bytes: int = 0  # the KV cache of one token (0: unknown), for the streams past one context
    kind: str = "chat"  # or "embedding": what requests it answers (catalog.KINDS)
    kv_bits: int = 0  # its KV cache quantized to 4 or 8 bits (0: 16-bit)


@dataclasses.dataclass(frozen=True)
class ServeSpec(Message):
    """What `invoke serve` tells the server (mlxtasks.runtime.server): the model loaded at start (alias ""
    for none) and its defaults, the installed models it may load, where to listen, its limits."""

    alias: str
    model: str  # the model's folder
    names: list[str]  # what a request may call the model besides the alias: its folder name, its repo id
    host: str = "127.0.0.1"
    port: int = 8080
    ollama_port: int = 0  # a second port the same server listens on, for Ollama's clients (0: none)
    allowed_origins: list[str] = dataclasses.field(default_factory=list)  # CORS; none: no page reads answers
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 2048  # a request's default
    max_body_bytes: int = 4 * 1024 * 1024
    queue_limit: int = 32  # requests waiting or generating; more get 429
    batch_size: int = 8  # streams generated together
    prefill_chunk: int = 2048  # the most prompt tokens processed between two steps of the other streams (the engine
    # sizes each chunk by time, up to this)
    prompt_caches: int = 10  # finished conversations whose cache a next request starting the same way reuses
    prompt_cache_bytes: int = 2 << 30  # and the bytes those caches may hold together, per model
    log_file: str = ""  # the log its output goes to: moved to .1 past log_max_bytes, and a new one started
    log_max_bytes: int = 10 * 1024 * 1024
    exit_file: str = ""  # where the server writes why it ended on a fault, for serve.status
    context: int = 0  # tokens a request may use, prompt and reply (0: the model's own limit)
    installed: list[ServedModel] = dataclasses.field(default_factory=list)  # what a request may name
    budget: int = 0  # bytes the loaded models may need together (0: no limit)
    keep_alive: float = 300.0  # seconds a model stays loaded after its last request (negative: forever)
    model_map: dict[str, str] = dataclasses.field(default_factory=dict)  # glob pattern -> a name to answer as
    disk_cache_folder: str = ""  # the prompt cache's disk tier (runtime/server/diskcache.py)
    disk_cache_bytes: int = 0  # and the bytes its files may hold (0: no disk tier)
    disk_cache_write_s: float = 20.0  # a cache is written this long after it was made, unless a longer one replaces it
    kv: KVSettings = KVSettings()  # for the models whose kv_bits is set

    @classmethod
    def starting(cls, first: ServedModel | None, **rest: Any) -> ServeSpec:
        """A spec that loads `first` at start (None: no model)."""
        if first is None:
            return cls(alias="", model="", names=[], **rest)
        return cls(
            alias=first.alias,
            model=first.folder,
            names=first.names,
            context=first.context,
            temperature=first.temperature,
            top_p=first.top_p,
            max_tokens=first.max_tokens,
            **rest,
        )

    def preloaded(self) -> ServedModel | None:
        """The model loaded at start, as an entry of the installed table."""
        if not self.alias:
            return None
        found = next((m for m in self.installed if m.alias == self.alias), None)
        return found or ServedModel(
            self.alias, self.model, self.names, 0, self.context, self.temperature, self.top_p, self.max_tokens
        )


# --- probe ---


@dataclasses.dataclass(frozen=True)
class ProbeSpec(Message):
    """What validate asks the venv's Python (runtime/probe.py): the answers of these check groups (of mlx,
    accelerator, mlx-lm), and a load and a short generation with each model folder (--deep)."""

    groups: list[str]
    models: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class ProbeAnswer(Message):
    """MLX's answers by group name or model folder ({"crashed": cause} where asking raised), judged on the
    tool side, and the seconds each took."""

    answers: dict[str, dict[str, Any]]
    seconds: dict[str, float]


# --- support: python -m mlxtasks.runtime.support ---


@dataclasses.dataclass(frozen=True)
class Support(Message):
    """What the venv's mlx-lm and mlx can run: asked once per pair of versions, cached by the tool side."""

    mlx_lm: str
    mlx: str
    model_types: tuple[str, ...]  # mlx_lm.models' modules, and the names mlx-lm maps onto them
    quant_modes: tuple[str, ...]  # the quantization modes mlx.core.quantize accepts
