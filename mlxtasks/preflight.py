"""The verdicts on the host's facts (registry phase "host"): can this machine, with this Python, run MLX?
Pure functions of facts; preflight runs them before anything is installed, and validate runs them too."""

from __future__ import annotations

from functools import partial

from .catalog import budget_source, memory_budget, too_big
from .checks import Result, Status
from .config import Settings
from .facts import GB, HostFacts, size_text, version_tuple
from .pythons import INSTALL_PYTHON_FIX, fix_for, problem, supported_range
from .venv import VenvState

MIN_MACOS = (14,)  # mlx publishes macOS wheels for 14 and later only
MIN_GLIBC = (2, 35)
LINUX_MACHINES = ("x86_64", "aarch64")


def check_platform(facts: HostFacts) -> Result:
    result = partial(Result, "system.os", "Operating system")

    if facts.is_mac:
        read = (
            f"macOS {facts.os_version or 'unknown'} (sw_vers), hardware {facts.machine} (sysctl hw.optional.arm64), "
            f"{facts.chip}",
            f"this terminal runs under Rosetta: {'yes' if facts.rosetta or facts.terminal_rosetta else 'no'} "
            f"(sysctl.proc_translated, and the flags of the processes this one was started from)",
        )
        result = partial(result, details=read)
        if facts.machine != "arm64":
            return result(
                Status.ERROR,
                f"This Mac has an Intel ({facts.machine}) processor; MLX needs Apple Silicon (M1 or later).",
                "run mlxtasks on an Apple Silicon Mac, or on Linux",
            )
        if version_tuple(facts.os_version) < MIN_MACOS:
            return result(
                Status.ERROR,
                f"macOS {facts.os_version} is too old: MLX needs macOS 14 (Sonoma) or newer.",
                "update macOS in System Settings > General > Software Update",
            )
        return result(Status.OK, f"macOS {facts.os_version} on {facts.chip}")
    if facts.os == "linux":
        glibc = "glibc " + ".".join(map(str, facts.glibc)) if facts.glibc else "no glibc"
        result = partial(result, details=(f"{facts.os_version}, {facts.machine}, {glibc}, {facts.chip}",))
        if facts.machine not in LINUX_MACHINES:
            return result(
                Status.ERROR,
                f"MLX has no Linux build for {facts.machine}; it needs x86_64 or aarch64.",
                "run mlxtasks on an x86_64 or aarch64 Linux machine",
            )
        if facts.glibc is None or facts.glibc < MIN_GLIBC:
            return result(
                Status.ERROR,
                f"MLX's Linux wheels need glibc 2.35 or newer; this system has {glibc}.",
                "use a newer distribution (Ubuntu 22.04+, Debian 12+, Fedora 36+)",
            )
        return result(Status.OK, f"{facts.os_version} ({facts.machine}, {glibc})")
    return result(
        Status.ERROR,
        f"MLX runs on macOS and Linux, not on {facts.os}.",
        "run mlxtasks on an Apple Silicon Mac or on Linux",
    )


def check_python(facts: HostFacts) -> Result:
    rejected = tuple(
        f"{p.path}: Python {p.version_text} ({p.arch}), {problem(p, facts)}" for p in facts.rejected_pythons
    )
    info = facts.python or next(iter(facts.rejected_pythons), None)
    details = (
        *((f"chosen {info.path}: Python {info.version_text} ({info.arch})",) if info and facts.python else ()),
        *(f"rejected {line}" for line in rejected),
    )
    result = partial(Result, "system.python", "Python for the venv", details=details)

    if info is None:
        return result(Status.ERROR, f"No Python {supported_range()} was found.", INSTALL_PYTHON_FIX)
    why = problem(info, facts)
    if why:
        others = [f"{p.path} ({p.version_text}, {p.arch})" for p in facts.rejected_pythons if p != info]
        also = f" Also rejected: {'; '.join(others)}." if others else ""
        return result(Status.ERROR, why + also, fix_for(facts))
    return result(Status.OK, f"Python {info.version_text} ({info.arch}) at {info.path}")


def check_folders(facts: HostFacts) -> Result:
    result = partial(
        Result,
        "system.folders",
        "Target folders",
        details=tuple(
            f"{path}: {'cannot' if path in facts.unwritable else 'can'} be created and written"
            for path, _ in facts.disk_free
        ),
    )
    if facts.unwritable:
        path = facts.unwritable[0]
        return result(
            Status.ERROR,
            f"Cannot create or write {path}: it or a folder above it is read-only or a file.",
            "fix its permissions, or choose another place: invoke setup --venv PATH --workspace PATH --models PATH",
        )
    return result(Status.OK, "writable")


def check_disk(facts: HostFacts, settings: Settings) -> Result:
    result = partial(
        Result,
        "system.disk",
        "Free disk space",
        details=tuple(f"{size_text(free)} free for {path}" for path, free in facts.disk_free),
    )

    if not facts.disk_free:
        return result(Status.WARNING, "Free disk space was not measured.")
    path, free = min(facts.disk_free, key=lambda item: item[1])
    free_gb = free / GB
    fix = "free some space, or put the models elsewhere: invoke setup --models /path/with/space"
    if free_gb < settings.min_disk_gb:
        return result(
            Status.ERROR,
            f"Only {size_text(free)} free for {path}; setup needs at least {settings.min_disk_gb:g} GB.",
            fix,
        )
    if free_gb < settings.warn_disk_gb:
        return result(
            Status.WARNING,
            f"{size_text(free)} free for {path}; {settings.warn_disk_gb:g} GB leaves room for more than one model.",
            fix,
        )
    return result(Status.OK, f"{size_text(free)} free")


def check_ram(facts: HostFacts, settings: Settings) -> Result:
    result = partial(
        Result,
        "system.ram",
        "Memory",
        details=(
            f"{facts.ram_total / GB:.1f} GB total, {facts.ram_available / GB:.1f} GB available",
            f"{memory_budget(facts) / GB:.1f} GB for a model ({budget_source(facts)}), the budget every command judges fit by",
        ),
    )

    total = facts.ram_total / GB
    if total < settings.warn_ram_gb:
        missing = ", ".join(m.alias for m in too_big(facts, settings.catalog)) or "none of the catalogue models"
        return result(
            Status.WARNING,
            f"{total:.0f} GB of RAM; {settings.warn_ram_gb:g} GB is recommended. Too big for this machine: {missing}.",
        )
    return result(Status.OK, f"{total:.0f} GB of RAM")


def gather(settings: Settings, state: VenvState) -> HostFacts:
    """This machine's facts, with the Python the venv is (or will be) made from and those rejected."""
    from dataclasses import replace

    from . import pythons
    from .facts import probe
    from .installer import find_uv

    facts = probe([settings.venv, settings.workspace, settings.models])
    python, rejected = pythons.for_venv(settings.python, state.python if state.healthy else None, facts, find_uv())
    return replace(facts, python=python, rejected_pythons=rejected)
