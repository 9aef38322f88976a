"""The package set for a backend, what the venv already has, and the one command that fills the gap."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from functools import partial
from importlib.metadata import distribution
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from . import __version__, children
from .config import Settings
from .errors import MlxTasksError
from .facts import BACKEND_DISTRIBUTION
from .installer import Installer
from .installer import choose as choose_installer
from .pythons import supported_range
from .steps import Command, Step
from .venv import recreate_fix

CONSTRAINTS = Path(__file__).parent / "data" / "constraints.txt"
SOURCE_TREE = Path(__file__).resolve().parent.parent

MLX_REQUIREMENT = {"metal": "mlx", "cpu": "mlx[cpu]", "cuda12": "mlx[cuda12]", "cuda13": "mlx[cuda13]"}
# What mlxtasks.runtime.server runs on, besides mlx-lm; uvicorn takes httptools and uvloop when they are there,
# which cut the server's own work per streamed token (docs/performance.md); llguidance constrains structured
# answers (runtime/server/grammar.py).
SERVER_PACKAGES = ("starlette", "uvicorn", "pydantic", "httptools", "uvloop", "llguidance")
CHAT_PACKAGES = ("prompt-toolkit",)  # the chat's line editor (mlxtasks.runtime.editor)

# What uv and pip say when no release fits this platform or Python: the index answered, so retrying is useless.
RESOLUTION_FAILURES = ("No solution found", "ResolutionImpossible", "No matching distribution found")
# ...unless the index did not answer: pip then says "No matching distribution" too.
NETWORK_TROUBLE = (
    "Failed to fetch",
    "Retrying (",
    "NewConnectionError",
    "ConnectionError",
    "Connection refused",
    "timed out",
    "Name or service not known",
    "nodename nor servname",
    "dns error",
)
_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\r")

# Versions, and for mlxtasks where its code comes from (direct_url.json, RECORD), in one run of the venv's Python.
_VERSIONS_PROBE = """
import json, sys
from importlib.metadata import distribution, PackageNotFoundError
found, origin = {}, None
for name in sys.argv[1:]:
    try:
        dist = distribution(name)
    except PackageNotFoundError:
        found[name] = None
        continue
    found[name] = dist.version
    if name == "mlxtasks":
        origin = [dist.read_text("direct_url.json"), dist.read_text("RECORD")]
print(json.dumps({"versions": found, "mlxtasks": origin}))
"""


@dataclass(frozen=True)
class Wanted:
    name: str  # canonical distribution name
    requirement: Requirement | None  # None: checked only (a backend wheel), installed through another


def pins(path: Path = CONSTRAINTS) -> dict[str, Version]:
    result: dict[str, Version] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            result[canonicalize_name(name)] = Version(version)
    return result


def wanted(backend: str, packages: tuple[str, ...]) -> list[Wanted]:
    specs = [MLX_REQUIREMENT[backend], *packages, *SERVER_PACKAGES, *CHAT_PACKAGES]
    result = []
    for spec in specs:  # config.resolve checked each entry
        requirement = Requirement(spec)
        result.append(Wanted(canonicalize_name(requirement.name), requirement))
    result.append(Wanted(BACKEND_DISTRIBUTION[backend], None))
    return result


@dataclass(frozen=True)
class Origin:
    """Where an installed mlxtasks's code comes from."""

    source: Path | None  # the checkout an editable install runs; None when installed from a wheel
    files: frozenset[str] = frozenset()  # a wheel install's "path,hash" lines from RECORD for mlxtasks/
    url: str | None = None  # what it was installed from (direct_url.json); None: the index


def origin(direct_url: str | None, record: str | None) -> Origin:
    info = json.loads(direct_url) if direct_url else {}
    url = info.get("url")
    if info.get("dir_info", {}).get("editable") and str(url).startswith("file:"):
        return Origin(Path(url2pathname(urlparse(str(url)).path)))
    files = frozenset(
        line.rsplit(",", 1)[0]
        for line in (record or "").splitlines()
        if line.startswith("mlxtasks/") and "__pycache__" not in line
    )
    return Origin(None, files, url)


def own_origin() -> Origin:
    """This process's mlxtasks: its source tree when run from a checkout, else its installed files."""
    if (SOURCE_TREE / "pyproject.toml").is_file():
        return Origin(SOURCE_TREE)
    dist = distribution("mlxtasks")
    return origin(dist.read_text("direct_url.json"), dist.read_text("RECORD"))


def inspect(python: Path, names: list[str]) -> tuple[dict[str, str | None], Origin | None]:
    """Installed versions in the venv and, when mlxtasks is among them and installed, its origin: one
    subprocess, no resolver run."""
    done = children.run([str(python), "-c", _VERSIONS_PROBE, *names], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise MlxTasksError(
            f"Could not read the packages installed in {python}.", fix=recreate_fix(python.parent.parent)
        )
    answer = json.loads(done.stdout)
    return answer["versions"], origin(*answer["mlxtasks"]) if answer["mlxtasks"] else None


def installed_versions(python: Path, names: list[str]) -> dict[str, str | None]:
    return inspect(python, names)[0]


def self_problem(version: str | None, found: Origin | None, wanted: Origin) -> str | None:
    """Why the venv's mlxtasks does not run this mlxtasks's code; None when it does."""
    if version is None or found is None:
        return "missing"
    if found.source is None and wanted.source is None:
        if found.files != wanted.files:
            return "its files differ from this mlxtasks's"
    elif found.source is None:
        return f"installed from a wheel, not from the checkout {wanted.source}"
    elif wanted.source is None or found.source.resolve() != wanted.source.resolve():
        gone = "" if (found.source / "mlxtasks").is_dir() else ", which is gone"
        return f"runs the checkout {found.source}{gone}, not {wanted.source or 'this installed mlxtasks'}"
    if version != __version__:
        return f"version {version}, not {__version__}"
    return None


def unsatisfied(items: list[Wanted], installed: dict[str, str | None], pinned: dict[str, Version]) -> list[str]:
    """Names that are missing, or older than the shipped pin, or outside the requirement's own range."""
    result = []
    for item in items:
        text = installed.get(item.name)
        try:
            version = Version(text) if text else None
        except InvalidVersion:
            version = None
        if (
            version is None
            or (item.name in pinned and version < pinned[item.name])
            or (item.requirement is not None and not item.requirement.specifier.contains(version, prereleases=True))
        ):
            result.append(item.name)
    return result


def self_requirement(wanted: Origin) -> list[str]:
    """How the venv gets this mlxtasks: editable from this checkout, else from where this copy came from."""
    if wanted.source is not None:
        return ["--editable", str(wanted.source)]
    return [f"mlxtasks @ {wanted.url}" if wanted.url else f"mlxtasks=={__version__}"]


def plan(settings: Settings, backend: str, installer: Installer, upgrade: bool = False) -> Step:
    items = wanted(backend, settings.packages)
    names = [item.name for item in items]
    # No venv yet (a dry run before the venv step): everything is to be installed.
    versions, found = (
        inspect(settings.venv_python, [*names, "mlxtasks"]) if settings.venv_python.exists() else ({}, None)
    )
    missing = unsatisfied(items, versions, pins())
    own = own_origin()
    stale = self_problem(versions.get("mlxtasks"), found, own)
    if not (missing or stale or upgrade):
        return Step(
            "install",
            f"all {len(names)} packages for the {backend} backend and mlxtasks {__version__} "
            f"({own.source or 'from a wheel'}) are installed",
        )
    specs = [str(item.requirement) for item in items if item.requirement is not None] + self_requirement(own)
    what = ", ".join(missing + ([f"mlxtasks ({stale})"] if stale else [])) or "everything"
    # Installers keep a same-version copy (a moved checkout, a wheel built again): the stale one goes first.
    removal = (
        (
            Command(
                _uninstall_argv(settings.venv_python, installer),
                failure=f"Removing the stale mlxtasks from {settings.venv} failed.",
                fix=recreate_fix(settings.venv),
            ),
        )
        if stale and found
        else ()
    )
    command = Command(
        _install_argv(settings.venv_python, installer, specs, upgrade, mac=backend == "metal"),
        tries=3,
        delay=settings.retry_delay_s,
        failure=f"Installing the MLX packages into {settings.venv} failed after 3 tries.",
        fix="check the network, then: invoke install",
        give_up=partial(hopeless, backend),
    )
    return Step("install", f"{'upgrade' if upgrade else 'install'} {what} ({installer.name})", (*removal, command))


def extras(settings: Settings, names: list[str], name: str, purpose: str, fix: str) -> Step:
    """Install these extra packages into the venv (with the installer setup uses), unless they are there.
    purpose: why, as in "for --plot"; fix: what to do when the install fails for good."""
    missing = [item for item, found in installed_versions(settings.venv_python, names).items() if not found]
    if not missing:
        return Step(name, f"{', '.join(names)} installed in {settings.venv}")
    what = ", ".join(missing)
    command = Command(
        _install_argv(
            settings.venv_python,
            choose_installer(settings.installer),
            missing,
            upgrade=False,
            mac=sys.platform == "darwin",
        ),
        tries=3,
        delay=settings.retry_delay_s,
        failure=f"Installing {what} into {settings.venv} {purpose} failed after 3 tries.",
        fix=fix,
    )
    return Step(name, f"installing {what} into {settings.venv} {purpose} (only once)", (command,))


_UV_CACHE = re.compile(r"Failed to initialize cache at `?([^`\n]+?)`?\s*$", re.M)


def hopeless(backend: str, output: str) -> MlxTasksError | None:
    """The error for an installer's output that no retry can change: uv cannot write its cache (a read-only
    HOME, say), or no release fits this machine (unresolvable); None for anything else."""
    cache = _UV_CACHE.search(_TERMINAL_CODES.sub("", output))
    if cache:
        return MlxTasksError(
            f"uv cannot write its cache at {cache.group(1)} (read-only or not yours), so nothing was installed.",
            fix="give it a writable one (export UV_CACHE_DIR=/tmp/uv-cache), then run the same command again",
        )
    return unresolvable(backend, output)


def unresolvable(backend: str, output: str) -> MlxTasksError | None:
    """The error for an installer's output that says no release fits this machine; None for anything else."""
    text = _TERMINAL_CODES.sub("", output)
    if not any(marker in text for marker in RESOLUTION_FAILURES) or any(marker in text for marker in NETWORK_TROUBLE):
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cause = next((line for line in lines if line.startswith("cause:")), None) or next(
        line for line in reversed(lines) if any(marker in line for marker in RESOLUTION_FAILURES)
    )
    if backend == "metal":
        likely, fix = (
            f"MLX's Mac wheels need macOS 14 or newer and Python {supported_range()}",
            "see which with invoke preflight; then update macOS, or remake the venv with another Python: "
            "invoke venv --force --python /path/to/python3.12",
        )
    else:
        likely, fix = (
            f"the pinned packages need Python {supported_range()} on this platform",
            "see which with invoke preflight; if you changed mlx.packages, check those names and versions",
        )
    return MlxTasksError(
        f"No release of the MLX packages fits this machine ({likely}), so the install was not retried. "
        f"The installer said: {cause}",
        fix=fix,
    )


def _install_argv(python: Path, installer: Installer, specs: list[str], upgrade: bool, mac: bool) -> tuple[str, ...]:
    """On a Mac through `env SYSTEM_VERSION_COMPAT=0`: a Python built with an older SDK reads macOS 26 as 16.0, and
    the installer, asking it, would pass over the wheels made for macOS 26 (mlx's among them)."""
    compat = ["/usr/bin/env", "SYSTEM_VERSION_COMPAT=0"] if mac else []
    if installer.name == "uv":
        base = [installer.uv, "pip", "install", "--python", str(python)]
    else:
        base = [str(python), "-m", "pip", "install", "--progress-bar", "on"]
    pinning = ["--upgrade"] if upgrade else ["--constraint", str(CONSTRAINTS)]
    return tuple(compat + base + pinning + specs)


def _uninstall_argv(python: Path, installer: Installer) -> tuple[str, ...]:
    if installer.name == "uv":
        return (installer.uv, "pip", "uninstall", "--python", str(python), "mlxtasks")
    return (str(python), "-m", "pip", "uninstall", "--yes", "mlxtasks")
