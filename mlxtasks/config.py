"""Every default in one place, and how config and flags override them.

Order, lowest first: DEFAULTS < Invoke config (`invoke.yaml`, `~/.invoke.yaml`, `INVOKE_MLX_*`
environment variables, all under the key `mlx`) < task flags. Paths may start with `~`, which
means the HOME of the run, read when settings are resolved, never at import.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from . import bench, catalog, router
from .catalog import Model
from .errors import MlxTasksError

CONFIG_KEY = "mlx"
PYTHON_VERSIONS = Path(__file__).parent / "data" / "python-versions"


def _python_range() -> tuple[tuple[int, int], tuple[int, int]]:
    oldest, newest = next(line for line in PYTHON_VERSIONS.read_text().splitlines() if not line.startswith("#")).split()
    return tuple(map(int, oldest.split("."))), tuple(map(int, newest.split(".")))


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
    "min_disk_gb": 10.0,  # floats, so INVOKE_MLX_* may give fractions
    "warn_disk_gb": 20.0,
    "warn_ram_gb": 16.0,
    "disk_margin_gb": 1.0,  # kept free beyond a model's size when pulling it
    "retry_delay_s": 2.0,  # before the second try of a download; doubled for each later one
    "pull_stall_timeout_s": 60.0,  # models.pull ends when nothing has arrived from the hub for this long
    "catalog": {},  # {alias: {repo, folder, size_gb, ...}}: your models, or overrides of built-in ones
    "default_model": "qwen7b",  # for chat.ask without --model
    "bench": bench.DEFAULTS,  # invoke bench: prompt lengths, tokens generated, runs, Ollama's URL, the history file
    "router": router.DEFAULT_RULES,  # categories: keywords with weights, and models best first
    "serve_port": 8080,  # not 11434, which Ollama owns; the host is only ever a flag (default 127.0.0.1)
    "serve_start_timeout_s": 120.0,  # how long `serve` waits for the model to load and the port to answer
    "serve_allowed_origins": [],  # web origins whose pages may read the server's answers (CORS); none by default
}

CONFIG_FIX = "edit the `mlx:` section of invoke.yaml or ~/.invoke.yaml (or unset INVOKE_MLX_*)"
ENV_PREFIX = "INVOKE_"


def config_files(home: Path, environ: Mapping[str, str]) -> list[Path]:
    """The files Invoke reads settings from, lowest first: /etc/invoke.*, ~/.invoke.*, the runtime file."""
    files = [Path(f"{prefix}.{suffix}") for prefix in ("/etc/invoke", str(home / ".invoke"))
             for suffix in ("yaml", "yml", "json")]
    return files + ([Path(environ["INVOKE_RUNTIME_CONFIG"])] if environ.get("INVOKE_RUNTIME_CONFIG") else [])


def file_problem(paths: Iterable[Path]) -> MlxTasksError | None:
    """The first config file Invoke cannot load or merge with these defaults (its own error is a
    traceback, raised before any task runs), named with what is wrong in it."""
    import yaml  # PyYAML: only on this error path

    for path in paths:
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            return MlxTasksError(f"{path} cannot be read: {getattr(exc, 'strerror', None) or exc}.", fix=f"fix or remove {path}")
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else getattr(exc, "lineno", None)
            where = f" at line {line}" if line else ""
            return MlxTasksError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}{where}.",
                                 fix=f"fix or remove {path}")
        if data is None:
            continue
        if not isinstance(data, Mapping):
            return MlxTasksError(f"{path} holds a {type(data).__name__}, not a mapping of settings.",
                                 fix=f"write settings as keys, such as 'mlx: {{venv: ~/venv-mlx}}', or remove {path}")
        if CONFIG_KEY in data:
            found = _shape_mismatch(data[CONFIG_KEY], DEFAULTS, CONFIG_KEY)
            if found:
                key, value = found
                what = (f"sets {key} to {value!r}, but {key} is a section of settings" if value is None or not
                        isinstance(value, Mapping) else f"gives {key} a section of keys, but it takes one value")
                return MlxTasksError(f"{path} {what}.", fix=f"correct or remove {key} in {path} (see docs/configuration.md)")
    return None


def _shape_mismatch(value: Any, default: Any, key: str) -> tuple[str, Any] | None:
    """The first (key, value) where a mapping meets a non-mapping, which Invoke's merge cannot combine."""
    if isinstance(default, Mapping) != isinstance(value, Mapping):
        return key, value
    if isinstance(default, Mapping):
        for name, inner in value.items():
            if name in default:
                found = _shape_mismatch(inner, default[name], f"{key}.{name}")
                if found:
                    return found
    return None


def env_problem(environ: Mapping[str, str]) -> MlxTasksError | None:
    """The first INVOKE_MLX_* variable Invoke could not turn into its setting's type (its own error is a
    traceback, raised before any task runs). Values of the right type are checked later, like config files."""
    for path, default in _leaves({CONFIG_KEY: DEFAULTS}):
        name = ENV_PREFIX + "_".join(path).upper()
        if name not in environ or isinstance(default, (bool, str)) or default is None:
            continue
        key = ".".join(path)
        if isinstance(default, (list, tuple)):
            return MlxTasksError(f"{name} cannot set {key}, which is a list.", fix=f"unset {name}, and set {key} in ~/.invoke.yaml")
        try:
            type(default)(environ[name])
        except ValueError:
            kind = "a whole number" if isinstance(default, int) else "a number"
            return MlxTasksError(f"{name} must be {kind}, not {environ[name]!r}.", fix=f"unset {name}, or give it {kind}")
    return None


def _leaves(tree: Mapping[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _leaves(value, (*path, key))
        else:
            yield (*path, key), value


@dataclass(frozen=True)
class Settings:
    venv: Path
    workspace: Path
    models: Path
    python: str | None
    installer: str
    backend: str
    shell: str
    packages: tuple[str, ...]
    min_disk_gb: float
    warn_disk_gb: float
    warn_ram_gb: float
    disk_margin_gb: float
    retry_delay_s: float
    pull_stall_timeout_s: float
    catalog: tuple[Model, ...]
    default_model: str
    router: dict
    serve_port: int
    serve_start_timeout_s: float
    serve_allowed_origins: tuple[str, ...]
    state: Path  # pid files, logs and history: $XDG_STATE_HOME/mlxtasks or ~/.local/state/mlxtasks
    bench: bench.BenchSettings
    home: Path  # the HOME of this run: the one place it is read

    @property
    def venv_python(self) -> Path:
        return self.venv / "bin" / "python"


def resolve(config: Mapping[str, Any] | None = None, home: str | Path | None = None, **flags: Any) -> Settings:
    """Merge DEFAULTS, the `mlx` config section and flags (None means "not given")."""
    config = dict(config or {})
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise MlxTasksError(f"Unknown config key '{CONFIG_KEY}.{unknown[0]}'.", fix=CONFIG_FIX)
    given = {key: value for key, value in flags.items() if value is not None}
    unknown_flags = sorted(set(given) - set(DEFAULTS))
    if unknown_flags:
        raise ValueError(f"resolve() got unknown settings {unknown_flags}")
    merged = {**DEFAULTS, **config, **given}
    home = Path(home if home is not None else _home())

    def value(key: str) -> tuple[str, Any]:
        """(how to name the setting in an error, its value)."""
        label = f"--{key.replace('_', '-')}" if key in given else f"Config key '{CONFIG_KEY}.{key}'"
        return label, merged[key]

    return Settings(
        venv=_path(*value("venv"), home),
        workspace=_path(*value("workspace"), home),
        models=_path(*value("models"), home),
        python=_optional_str(*value("python")),
        installer=_choice(*value("installer"), INSTALLERS),
        backend=_choice(*value("backend"), BACKENDS),
        shell=_choice(*value("shell"), SHELL_CHOICES),
        packages=_str_list(*value("packages")),
        min_disk_gb=_number(*value("min_disk_gb")),
        warn_disk_gb=_number(*value("warn_disk_gb")),
        warn_ram_gb=_number(*value("warn_ram_gb")),
        disk_margin_gb=_number(*value("disk_margin_gb")),
        retry_delay_s=_number(*value("retry_delay_s"), most=300),
        pull_stall_timeout_s=_number(*value("pull_stall_timeout_s"), most=3600),
        catalog=catalog.load(merged["catalog"]),
        default_model=_optional_str(*value("default_model")) or "qwen7b",
        router=router.check_rules(merged["router"]),
        serve_port=port_number(*value("serve_port")),
        serve_start_timeout_s=_number(*value("serve_start_timeout_s"), most=3600),
        serve_allowed_origins=_str_list(*value("serve_allowed_origins"), expected="a list of origins such as http://localhost:3000"),
        state=state_dir(home),
        bench=bench.check_settings(merged["bench"], home, state_dir(home)),
        home=home,
    )


def state_dir(home: Path) -> Path:
    """Pid files, logs, chat history and bench results: $XDG_STATE_HOME/mlxtasks, else ~/.local/state/mlxtasks."""
    return Path(os.environ.get("XDG_STATE_HOME") or home / ".local" / "state") / "mlxtasks"


def config_dir(home: str | Path | None = None) -> Path:
    """Where mlxtasks keeps files of its own (the cluster's hostfile): $XDG_CONFIG_HOME/mlxtasks when that
    is an absolute path, else ~/.config/mlxtasks."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    if os.path.isabs(base):
        return Path(base) / "mlxtasks"
    return Path(home if home is not None else _home()) / ".config" / "mlxtasks"


def _home() -> str:
    home = os.environ.get("HOME")
    if not home:
        raise MlxTasksError("HOME is not set, so the default folders cannot be found.", fix="export HOME=/path/to/your/home")
    return home


def _invalid(label: str, expected: str, value: Any) -> MlxTasksError:
    fix = CONFIG_FIX if label.startswith("Config") else f"pass {expected} to {label}"
    return MlxTasksError(f"{label} must be {expected}, got {value!r}.", fix=fix)


def _path(label: str, value: Any, home: Path) -> Path:
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
    number = _number(label, value)
    if number != int(number) or not 1 <= number <= 65535:
        raise _invalid(label, "a port number from 1 to 65535", value)
    return int(number)


def _number(label: str, value: Any, most: float = 1e6) -> float:
    if isinstance(value, bool):
        raise _invalid(label, "a number", value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _invalid(label, "a number", value) from None
    if not 0 <= number <= most:  # also refuses nan
        raise _invalid(label, f"a number from 0 to {most:g}", value)
    return number
