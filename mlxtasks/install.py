"""The package set for a backend, what the venv already has, and the one command that fills the gap."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from . import __version__
from .config import Settings
from .errors import MlxTasksError
from .facts import BACKEND_DISTRIBUTION
from .installer import Installer
from .pythons import supported_range
from .steps import Command, Step
from .venv import recreate_fix

CONSTRAINTS = Path(__file__).parent / "data" / "constraints.txt"
SOURCE_TREE = Path(__file__).resolve().parent.parent

MLX_REQUIREMENT = {"metal": "mlx", "cpu": "mlx[cpu]", "cuda12": "mlx[cuda12]", "cuda13": "mlx[cuda13]"}
SERVER_PACKAGES = ("starlette", "uvicorn", "pydantic")  # what mlxtasks.runtime.server runs on, besides mlx-lm

# What uv and pip say when no release fits this platform or Python: the index answered, so retrying is useless.
RESOLUTION_FAILURES = ("No solution found", "ResolutionImpossible", "No matching distribution found")
# ...unless the index did not answer: pip then says "No matching distribution" too.
NETWORK_TROUBLE = ("Failed to fetch", "Retrying (", "NewConnectionError", "ConnectionError", "Connection refused",
                   "timed out", "Name or service not known", "nodename nor servname", "dns error")
_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\r")

_VERSIONS_PROBE = """
import json, sys
from importlib.metadata import version, PackageNotFoundError
found = {}
for name in sys.argv[1:]:
    try:
        found[name] = version(name)
    except PackageNotFoundError:
        found[name] = None
print(json.dumps(found))
"""


@dataclass(frozen=True)
class Wanted:
    name: str  # canonical distribution name
    requirement: Requirement | None  # None: checked only (a backend wheel), installed through another


def pins(path: Path = CONSTRAINTS) -> dict[str, Version]:
    result = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            result[canonicalize_name(name)] = Version(version)
    return result


def wanted(backend: str, packages: tuple[str, ...]) -> list[Wanted]:
    specs = [MLX_REQUIREMENT[backend], *packages, *SERVER_PACKAGES]
    result = []
    for spec in specs:
        try:
            requirement = Requirement(spec)
        except InvalidRequirement:
            raise MlxTasksError(f"Config key 'mlx.packages' has an entry that is not a package requirement: {spec!r}.",
                                fix="edit the `mlx:` section of invoke.yaml or ~/.invoke.yaml") from None
        result.append(Wanted(canonicalize_name(requirement.name), requirement))
    result.append(Wanted(BACKEND_DISTRIBUTION[backend], None))
    return result


def installed_versions(python: Path, names: list[str]) -> dict[str, str | None]:
    """Installed versions in the venv, read in one subprocess (no resolver run)."""
    done = subprocess.run([str(python), "-c", _VERSIONS_PROBE, *names], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise MlxTasksError(f"Could not read the packages installed in {python}.",
                            fix=recreate_fix(python.parent.parent))
    return json.loads(done.stdout)


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


def self_requirement() -> str:
    """Where the venv gets mlxtasks from: this source tree when run from one, else the index."""
    if (SOURCE_TREE / "pyproject.toml").is_file():
        return str(SOURCE_TREE)
    return f"mlxtasks=={__version__}"


def plan(settings: Settings, backend: str, installer: Installer, upgrade: bool = False) -> Step:
    items = wanted(backend, settings.packages)
    names = [item.name for item in items]
    # No venv yet (a dry run before the venv step): everything is to be installed.
    installed = installed_versions(settings.venv_python, [*names, "mlxtasks"]) if settings.venv_python.exists() else {}
    missing = unsatisfied(items, installed, pins())
    stale_self = installed.get("mlxtasks") != __version__
    if not (missing or stale_self or upgrade):
        return Step("install", f"all {len(names)} packages for the {backend} backend and mlxtasks {__version__} are installed")
    specs = [str(item.requirement) for item in items if item.requirement is not None] + [self_requirement()]
    what = ", ".join(missing + (["mlxtasks"] if stale_self else [])) or "everything"
    command = Command(
        _install_argv(settings.venv_python, installer, specs, upgrade),
        tries=3,
        delay=settings.retry_delay_s,
        failure=f"Installing the MLX packages into {settings.venv} failed after 3 tries.",
        fix="check the network, then: invoke install",
        give_up=partial(unresolvable, backend),
    )
    return Step("install", f"{'upgrade' if upgrade else 'install'} {what} ({installer.name})", (command,))


def unresolvable(backend: str, output: str) -> MlxTasksError | None:
    """The error for an installer's output that says no release fits this machine; None for anything else."""
    text = _TERMINAL_CODES.sub("", output)
    if not any(marker in text for marker in RESOLUTION_FAILURES) or any(marker in text for marker in NETWORK_TROUBLE):
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cause = next((line for line in lines if line.startswith("cause:")), None) or next(
        line for line in reversed(lines) if any(marker in line for marker in RESOLUTION_FAILURES))
    if backend == "metal":
        likely, fix = (f"MLX's Mac wheels need macOS 14 or newer and Python {supported_range()}",
                       "see which with invoke preflight; then update macOS, or remake the venv with another Python: "
                       "invoke venv --force --python /path/to/python3.12")
    else:
        likely, fix = (f"the pinned packages need Python {supported_range()} on this platform",
                       "see which with invoke preflight; if you changed mlx.packages, check those names and versions")
    return MlxTasksError(f"No release of the MLX packages fits this machine ({likely}), so the install was not retried. "
                         f"The installer said: {cause}", fix=fix)


def _install_argv(python: Path, installer: Installer, specs: list[str], upgrade: bool) -> tuple[str, ...]:
    if installer.name == "uv":
        base = [installer.uv, "pip", "install", "--python", str(python)]
    else:
        base = [str(python), "-m", "pip", "install", "--progress-bar", "on"]
    pinning = ["--upgrade"] if upgrade else ["--constraint", str(CONSTRAINTS)]
    return tuple(base + pinning + specs)
