"""Every default in one place, and how config, environment and flags override them.

Order, lowest first: DEFAULTS < Invoke's config files (`~/.invoke.yaml`, `/etc/invoke.yaml`, a
project's `invoke.yaml`, `-f FILE`, all under the key `mlx`) < `INVOKE_MLX_*` environment variables <
task flags. Paths may start with `~`, which means the HOME of the run, read when settings are
resolved, never at import.

Settings come in two parts. The paths and the common settings are checked at once, for every task.
Each feature's own section (catalog, router, bench, serve) is checked only when a task reads it, so
a typo in `mlx.bench` breaks `invoke bench` and never `serve.stop`, `shell.remove` or `uninstall`.
catalog, router and bench are read through lazy properties here, each checked by its own module (imported
on first read, so no import runs in a circle).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import files
from .errors import MlxTasksError
from .protocol import xdg_folder

if TYPE_CHECKING:
    from .bench import BenchSettings
    from .catalog import Model
    from .fit import KV
    from .protocol import KVSettings

CONFIG_KEY = "mlx"
PYTHON_VERSIONS = Path(__file__).parent / "data" / "python-versions"


def _python_range() -> tuple[tuple[int, int], tuple[int, int]]:
    oldest, newest = next(line for line in PYTHON_VERSIONS.read_text().splitlines() if not line.startswith("#")).split()
    (a, b), (c, d) = (map(int, version.split(".")) for version in (oldest, newest))
    return (a, b), (c, d)


MIN_PYTHON, MAX_PYTHON = _python_range()  # (major, minor) bounds for the venv's Python
INSTALLERS = ("auto", "uv", "pip")
SHELL_CHOICES = ("auto", "zsh", "bash", "fish", "all")
BACKENDS = ("auto", "metal", "cpu", "cuda12", "cuda13")

DEFAULTS: dict[str, Any] = {
    "venv": "~/venv-mlx",
    "workspace": "~/workspace",
    "models": "~/workspace/mlx",
    "python": None,
    "installer": "auto",
    "backend": "auto",
    "shell": "auto",
    "packages": ["mlx-lm", "numpy", "transformers", "huggingface-hub", "sentencepiece", "tiktoken"],
    "min_disk_gb": 10.0,
    "warn_disk_gb": 20.0,
    "warn_ram_gb": 16.0,
    "disk_margin_gb": 1.0,  # kept free beyond a model's size when pulling it
    "retry_delay_s": 2.0,  # before the second try of a download; doubled for each later one
    "pull_stall_timeout_s": 60.0,  # models.pull ends when nothing has arrived from the hub for this long
    "default_model": "qwen7b",  # for chat.ask without --model
    "context": 0,  # tokens a chat or server keeps (prompt and reply); 0: the largest that fits, up to the model's own
    "kv_bits": 0,  # the KV cache quantized to 4 or 8 bits, for more context in the same memory; 0: 16-bit (off)
    "kv_group_size": 64,  # values sharing one scale and bias in a quantized KV cache (mlx_lm's default)
    "quantized_kv_start": 5000,  # tokens a cache holds in 16 bits before it is quantized (mlx_lm's default)
    # The feature sections, each checked by its feature: your entries go over its own defaults.
    "catalog": {},  # {alias: {repo, folder, size_gb, ...}}: your models, or overrides of built-in ones
    "bench": {},  # invoke bench: prompt lengths, tokens generated, runs, Ollama's URL, the history file
    "router": {},  # categories: keywords with weights, and models best first
    "serve_port": 8080,  # not 11434, which Ollama owns; the host is only ever a flag (default 127.0.0.1)
    "serve_ollama_port": 0,  # also serve Ollama's clients on this port (11434 is Ollama's); 0: off (serve --ollama: 11434)
    "serve_start_timeout_s": 120.0,  # how long `serve` waits for the model to load and the port to answer
    "serve_keep_alive": "5m",  # how long a model stays loaded after its last request ("1h", seconds; -1: forever)
    "serve_prompt_cache_gb": 2.0,  # per loaded model: KV caches of finished requests that a next one may extend
    "serve_disk_cache_gb": "auto",  # those caches on disk, all models together ("auto": a tenth of the free disk, at most 20 GiB; 0: none)
    "serve_allowed_origins": [],  # web origins whose pages may read the server's answers (CORS); none by default
    "serve_model_map": {"claude-*": "default"},  # names a client sends that are not served (glob) -> a model
    "serve_batch_size": 8,  # streams the server generates together, per model
    "serve_queue_limit": 32,  # requests waiting or generating; more are answered 429
    "serve_prefill_chunk": 2048,  # the most prompt tokens prefilled between two steps of the other streams (each chunk is sized by time, up to this)
    "serve_prompt_caches": 10,  # finished conversations whose KV cache a next request may extend (serve_prompt_cache_gb bounds their bytes)
    "serve_max_body_mb": 4.0,  # the largest request body the server reads
    "serve_log_max_mb": 10.0,  # the server's log is moved to .1 past this size
}
# Under your `mlx.bench` entries (Settings.bench; bench.check_settings checks the merge).
BENCH_DEFAULTS: dict[str, Any] = {
    "prompt_tokens": [128, 1024],
    "generation_tokens": 256,
    "runs": 3,
    "warmup": 1,
    "ollama_url": "http://127.0.0.1:11434",
    "history": None,  # None: $XDG_STATE_HOME/mlxtasks/bench.jsonl (~/.local/state/...)
}
KV_BITS = (0, 4, 8)  # 0: a 16-bit KV cache
KV_GROUP_SIZES = (32, 64, 128)  # what mx.quantize accepts
SECTIONS = ("catalog", "bench", "router", "serve_model_map")  # settings that hold a mapping of their own

CONFIG_FIX = "edit the `mlx:` section of ~/.invoke.yaml (or unset INVOKE_MLX_*)"
ENV_PREFIX = "INVOKE_MLX_"


def config_files(home: Path, environ: Mapping[str, str], with_python: bool = False) -> list[Path]:
    """The files Invoke reads settings from, lowest first: /etc/invoke.*, ~/.invoke.*, the runtime file
    (with_python: the .py ones too, which Invoke imports)."""
    suffixes = ("yaml", "yml", "json", "py") if with_python else ("yaml", "yml", "json")
    found = [Path(f"{prefix}.{suffix}") for prefix in ("/etc/invoke", str(home / ".invoke")) for suffix in suffixes]
    return found + ([Path(environ["INVOKE_RUNTIME_CONFIG"])] if environ.get("INVOKE_RUNTIME_CONFIG") else [])


def check_regular(paths: Iterable[Path]) -> None:
    """Refuse a config file that is there but is not a regular file, before anything opens it."""
    import stat

    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue
        if not stat.S_ISREG(mode):
            raise files.not_regular(path, mode)


def file_problem(paths: Iterable[Path]) -> MlxTasksError | None:
    """The first config file Invoke cannot load (its own error is a traceback, raised before any task
    runs), named with what is wrong in it."""
    import yaml  # PyYAML: only on this error path

    for path in paths:
        try:
            text = files.read_text(path)
        except FileNotFoundError:
            continue
        except MlxTasksError as err:
            return err
        except (OSError, UnicodeDecodeError) as exc:
            return MlxTasksError(
                f"{path} cannot be read: {getattr(exc, 'strerror', None) or exc}.", fix=f"fix or remove {path}"
            )
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else getattr(exc, "lineno", None)
            where = f" at line {line}" if line else ""
            return MlxTasksError(
                f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}{where}.",
                fix=f"fix or remove {path}",
            )
        if data is not None and not isinstance(data, Mapping):
            return MlxTasksError(
                f"{path} holds a {type(data).__name__}, not a mapping of settings.",
                fix=f"write settings as keys, such as 'mlx: {{venv: ~/venv-mlx}}', or remove {path}",
            )
    return None


def from_environment(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings INVOKE_MLX_* variables give, as text ({key: value}, with bench's keys under "bench"),
    and the variable each came from, to name it in an error."""
    values: dict[str, Any] = {}
    names: dict[str, str] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key in DEFAULTS and key not in SECTIONS:
            values[key] = value
        elif key.startswith("bench_"):
            values.setdefault("bench", {})[key[len("bench_") :]] = value
        elif key in SECTIONS:
            raise MlxTasksError(
                f"{name} cannot set {key}, a section that only a config file can hold.",
                fix=f"unset {name}, and set {CONFIG_KEY}.{key} in ~/.invoke.yaml",
            )
        else:
            raise MlxTasksError(
                f"{name} names no setting of mlxtasks.", fix=f"unset {name} (docs/configuration.md lists the settings)"
            )
        names[key.replace("bench_", "bench.", 1) if key.startswith("bench_") else key] = name
    return values, names


@dataclass(frozen=True)
class Settings:
    """The paths and common settings, checked; the feature sections are checked on first use."""

    venv: Path
    workspace: Path
    models: Path
    python: str | None
    installer: str
    backend: str
    shell: str
    min_disk_gb: float
    warn_disk_gb: float
    warn_ram_gb: float
    disk_margin_gb: float
    retry_delay_s: float
    pull_stall_timeout_s: float
    default_model: str
    context: int
    state: Path  # pid files, logs and history: $XDG_STATE_HOME/mlxtasks or ~/.local/state/mlxtasks
    home: Path  # the HOME of this run: the one place it is read
    merged: Mapping[str, Any] = field(repr=False, compare=False)  # defaults < config < env < flags
    labels: Mapping[str, str] = field(repr=False, compare=False)  # how to name a setting in an error

    def model_name(self, name: str) -> str:
        """A model as a command names it: "default" is mlx.default_model."""
        return self.default_model if name == "default" else name

    @property
    def venv_python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def config_dir(self) -> Path:
        return config_dir(self.home)

    def _value(self, key: str) -> tuple[str, Any]:
        return self.labels.get(key, f"Config key '{CONFIG_KEY}.{key}'"), self.merged[key]

    @cached_property
    def catalog(self) -> tuple[Model, ...]:
        from . import catalog

        models = self.merged["catalog"]
        if not isinstance(models, Mapping):
            raise _invalid(self._value("catalog")[0], "a section of models, such as {mymodel: {repo: ...}}", models)
        return catalog.load(models)

    @cached_property
    def bench(self) -> BenchSettings:
        """`mlx.bench` over BENCH_DEFAULTS, with INVOKE_MLX_BENCH_*, checked."""
        from .bench import check_settings

        labels = {key.split(".", 1)[1]: label for key, label in self.labels.items() if key.startswith("bench.")}
        return check_settings(self.merged["bench"], self.home, self.state, labels)

    @cached_property
    def router(self) -> dict:
        from . import router

        rules = self.merged["router"]
        if not isinstance(rules, Mapping):
            raise _invalid(self._value("router")[0], "a section of categories", rules)
        return router.check_rules(_deep_merge(router.DEFAULT_RULES, rules))

    @cached_property
    def packages(self) -> tuple[str, ...]:
        return _requirements(*self._value("packages"))

    @cached_property
    def kv_bits(self) -> int:
        return kv_bits(*self._value("kv_bits"))

    @cached_property
    def kv(self) -> KVSettings:
        """How a quantized KV cache is made (for the models whose kv_bits is set)."""
        from .protocol import KVSettings

        label, value = self._value("kv_group_size")
        size = _whole(label, value, least=1, most=1024)
        if size not in KV_GROUP_SIZES:
            raise _invalid(label, "one of " + ", ".join(map(str, KV_GROUP_SIZES)), value)
        return KVSettings(size, _whole(*self._value("quantized_kv_start"), least=0, most=10**7))

    def kv_bits_for(self, model: Model | None) -> int:
        """A model's kv_bits: --kv-bits, else its catalogue entry's, else mlx.kv_bits (None: a model the
        catalogue does not know)."""
        flag = self.labels.get("kv_bits", "").startswith("--")
        return self.kv_bits if flag or model is None or not model.kv_bits else model.kv_bits

    def kv_for(self, model: Model | None) -> KV:
        """How fit counts a model's KV cache."""
        from .fit import KV

        return KV(self.kv_bits_for(model), self.kv.group_size, self.kv.start)

    @cached_property
    def serve_port(self) -> int:
        return port_number(*self._value("serve_port"))

    @cached_property
    def serve_ollama_port(self) -> int:
        """The second port the server listens on for Ollama's clients; 0: none."""
        label, value = self._value("serve_ollama_port")
        return 0 if value is None or value == 0 or value in ("", "0") else port_number(label, value)

    @cached_property
    def serve_start_timeout_s(self) -> float:
        return _number(*self._value("serve_start_timeout_s"), most=3600)

    @cached_property
    def serve_keep_alive(self) -> float:
        from .protocol import duration

        label, value = self._value("serve_keep_alive")
        try:
            return duration(value)
        except ValueError:
            raise _invalid(label, 'seconds, or a duration such as "5m" or "1h" (-1: forever)', value) from None

    @cached_property
    def serve_prompt_cache_gb(self) -> float:
        return _number(*self._value("serve_prompt_cache_gb"), most=1024)

    @cached_property
    def serve_disk_cache_gb(self) -> float | None:
        """None: "auto" (sized to the free disk when the server starts)."""
        label, value = self._value("serve_disk_cache_gb")
        if value == "auto":
            return None
        try:
            return _number(label, value, most=100_000)
        except MlxTasksError:
            raise _invalid(label, '"auto" or a number from 0 to 100000', value) from None

    @cached_property
    def serve_batch_size(self) -> int:
        return _whole(*self._value("serve_batch_size"), least=1, most=256)

    @cached_property
    def serve_queue_limit(self) -> int:
        return _whole(*self._value("serve_queue_limit"), least=1, most=10_000)

    @cached_property
    def serve_prefill_chunk(self) -> int:
        return _whole(*self._value("serve_prefill_chunk"), least=16, most=1 << 20)

    @cached_property
    def serve_prompt_caches(self) -> int:
        return _whole(*self._value("serve_prompt_caches"), least=0, most=10_000)

    @cached_property
    def serve_max_body_mb(self) -> float:
        return _number(*self._value("serve_max_body_mb"), most=1024)

    @cached_property
    def serve_log_max_mb(self) -> float:
        return _number(*self._value("serve_log_max_mb"), most=100_000)

    @cached_property
    def serve_allowed_origins(self) -> tuple[str, ...]:
        return _str_list(
            *self._value("serve_allowed_origins"), expected="a list of origins such as http://localhost:3000"
        )

    @cached_property
    def serve_model_map(self) -> dict[str, str]:
        """Glob patterns of model names a client may send that are not served -> the model that answers them
        ("default": mlx.default_model)."""
        label, table = self._value("serve_model_map")
        if not isinstance(table, Mapping) or not all(isinstance(v, str) and k and v for k, v in table.items()):
            raise _invalid(label, "a section of name patterns and models, such as {claude-*: default}", table)
        return {str(pattern): self.model_name(name) for pattern, name in table.items()}


def resolve(
    config: Any = None, home: str | Path | None = None, environ: Mapping[str, str] | None = None, **flags: Any
) -> Settings:
    """Merge DEFAULTS, the `mlx` config section, INVOKE_MLX_* variables from environ, and flags (None
    means "not given"); check the common settings now and each feature section when it is read."""
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise MlxTasksError(f"Config key '{CONFIG_KEY}' must be a section of settings, got {config!r}.", fix=CONFIG_FIX)
    config = _plain(config)
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise MlxTasksError(f"Unknown config key '{CONFIG_KEY}.{unknown[0]}'.", fix=CONFIG_FIX)
    from_env, env_names = from_environment(environ or {})
    given = {key: value for key, value in flags.items() if value is not None}
    unknown_flags = sorted(set(given) - set(DEFAULTS))
    if unknown_flags:
        raise ValueError(f"resolve() got unknown settings {unknown_flags}")
    bench = config.get("bench", {})  # INVOKE_MLX_BENCH_* go over its keys; a broken section stays for bench to name
    bench = {**bench, **from_env.pop("bench", {})} if isinstance(bench, Mapping) else bench
    merged = {**DEFAULTS, **config, **from_env, **given, "bench": bench}
    labels = {**env_names, **{key: f"--{key.replace('_', '-')}" for key in given}}
    home = Path(home if home is not None else home_dir())

    def value(key: str) -> tuple[str, Any]:
        """(how to name the setting in an error, its value)."""
        return labels.get(key, f"Config key '{CONFIG_KEY}.{key}'"), merged[key]

    for folder, variable in ((state_dir(home), "XDG_STATE_HOME"), (config_dir(home), "XDG_CONFIG_HOME")):
        problem = files.folder_problem(folder, variable if os.environ.get(variable) else None)
        if problem:
            raise problem
    return Settings(
        venv=user_path(*value("venv"), home),
        workspace=user_path(*value("workspace"), home),
        models=user_path(*value("models"), home),
        python=_optional_str(*value("python")),
        installer=_choice(*value("installer"), INSTALLERS),
        backend=_choice(*value("backend"), BACKENDS),
        shell=_choice(*value("shell"), SHELL_CHOICES),
        min_disk_gb=_number(*value("min_disk_gb")),
        warn_disk_gb=_number(*value("warn_disk_gb")),
        warn_ram_gb=_number(*value("warn_ram_gb")),
        disk_margin_gb=_number(*value("disk_margin_gb")),
        retry_delay_s=_number(*value("retry_delay_s"), most=300),
        pull_stall_timeout_s=_number(*value("pull_stall_timeout_s"), most=3600, above_zero=True),
        default_model=_optional_str(*value("default_model")) or "qwen7b",
        context=int(_number(*value("context"), most=10**7)),
        state=state_dir(home),
        home=home,
        merged=merged,
        labels=labels,
    )


def _plain(value: Any) -> Any:
    """Invoke's DataProxy sections as plain dicts, all the way down."""
    if isinstance(value, Mapping) or (hasattr(value, "keys") and not isinstance(value, (str, bytes))):
        return {key: _plain(value[key]) for key in value.keys()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """base with over's keys on top, sections merged key by key (as Invoke merges its config files)."""
    merged = dict(base)
    for key, value in over.items():
        both = isinstance(value, Mapping) and isinstance(base.get(key), Mapping)
        merged[key] = _deep_merge(base[key], value) if both else value
    return merged


def state_dir(home: Path, env: Mapping[str, str] = os.environ) -> Path:
    """Pid files, logs, chat history and bench results: $XDG_STATE_HOME/mlxtasks, else ~/.local/state/mlxtasks."""
    return xdg_folder("XDG_STATE_HOME", home / ".local" / "state", env) / "mlxtasks"


def config_home(home: Path, env: Mapping[str, str] = os.environ) -> Path:
    """The user's config folder (fish's conf.d, systemd's user units, ours): $XDG_CONFIG_HOME, else ~/.config."""
    return xdg_folder("XDG_CONFIG_HOME", home / ".config", env)


def config_dir(home: Path) -> Path:
    """Where mlxtasks keeps files of its own (the cluster's hostfile): config_home()/mlxtasks."""
    return config_home(home) / "mlxtasks"


def home_dir() -> str:
    """$HOME, the one place it is read (Settings.home carries it to every task)."""
    home = os.environ.get("HOME")
    if not home:
        raise MlxTasksError(
            "HOME is not set, so the default folders cannot be found.", fix="export HOME=/path/to/your/home"
        )
    return home


def fix_for(label: str, expected: str, config_fix: str | None = None) -> str:
    """How to correct a setting, by where it came from: a config key, an INVOKE_MLX_* variable or a flag."""
    if label.startswith("Config"):
        return config_fix or CONFIG_FIX
    if label.startswith(ENV_PREFIX):
        return f"unset {label}, or set it to {expected}"
    return f"pass {expected} to {label}"


def _invalid(label: str, expected: str, value: Any) -> MlxTasksError:
    return MlxTasksError(f"{label} must be {expected}, got {value!r}.", fix=fix_for(label, expected))


def _requirements(label: str, value: Any) -> tuple[str, ...]:
    from packaging.requirements import InvalidRequirement, Requirement

    entries = _str_list(label, value)
    for entry in entries:
        try:
            Requirement(entry)
        except InvalidRequirement:
            raise MlxTasksError(
                f"{label} has an entry that is not a package requirement: {entry!r}.",
                fix=fix_for(label, "package requirements such as numpy<3"),
            ) from None
    return entries


def user_path(label: str, value: Any, home: Path) -> Path:
    """A folder or file path as given in config or a flag: `~` is the run's HOME, relative paths start here."""
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise _invalid(label, "a folder path", value)
    text = str(value)
    if text == "~" or text.startswith("~/"):
        path = home / text[2:]
    else:
        path = Path(text).expanduser()
    return path if path.is_absolute() else Path.cwd() / path


def _optional_str(label: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise _invalid(label, "a path", value)
    return str(value)


def _choice(label: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _invalid(label, "one of " + ", ".join(choices), value)
    return value


def _str_list(label: str, value: Any, expected: str = "a list of package names") -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise _invalid(label, expected, value)
    return tuple(value)


def port_number(label: str, value: Any) -> int:
    """A TCP port from config or a flag; label names it in the error."""
    try:
        number = _number(label, value, most=65535, above_zero=True)
    except MlxTasksError:  # said below in a port's words
        number = None
    if number is None or number != int(number):
        raise _invalid(label, "a port number from 1 to 65535", value)
    return int(number)


def kv_bits(label: str, value: Any) -> int:
    """kv_bits from config, a catalogue entry or a flag: 4 or 8, or 0 (also "off") for a 16-bit KV cache."""
    number = 0 if value in ("off", None) else value
    if isinstance(number, str) and number.strip().isdigit():
        number = int(number)
    if isinstance(number, bool) or number not in KV_BITS:
        raise _invalid(label, "4 or 8 (0 or off: a 16-bit KV cache)", value)
    return int(number)


def _whole(label: str, value: Any, least: int, most: int) -> int:
    number = _number(label, value, most=most)
    if number != int(number) or number < least:
        raise _invalid(label, f"a whole number from {least} to {most}", value)
    return int(number)


def _number(label: str, value: Any, most: float = 1e6, above_zero: bool = False) -> float:
    if isinstance(value, bool):
        raise _invalid(label, "a number", value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _invalid(label, "a number", value) from None
    if not 0 <= number <= most or (above_zero and number == 0):  # also refuses nan
        raise _invalid(label, f"a number {'above 0, up to' if above_zero else 'from 0 to'} {most:g}", value)
    return number
