"""Platform facts as plain data, gathered once by `probe()`.

Everything that decides a platform branch takes a `HostFacts`, so a Mac's path is tested by
building a Mac's facts, not by pretending a Mac ran.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import children

GB = 10**9  # the one unit printed for RAM, disk and model sizes alike, so every command shows the same figure
GIB = 2**30  # RAM comes in powers of two: for hardware thresholds only, never for printing
SYSCTL = "/usr/sbin/sysctl"  # by full path: cron's and launchd's PATH lack /usr/sbin

# The wheel each backend brings (mlx's extras); checked so a cpu venv is not taken for a cuda one.
BACKEND_DISTRIBUTION = {"metal": "mlx-metal", "cpu": "mlx-cpu", "cuda12": "mlx-cuda-12", "cuda13": "mlx-cuda-13"}
# Minimum NVIDIA driver for each CUDA wheel of MLX, newest first.
CUDA_DRIVER_MINIMUM = (("cuda13", (580,)), ("cuda12", (550,)))

_PYTHON_PROBE = (
    "import json, os, platform, sys; print(json.dumps([list(sys.version_info[:3]), platform.machine(), sys.prefix, "
    "os.path.realpath(sys.executable)]))"
)
# Mach-O: a thin binary's magic (64-bit, as the bytes lie on disk) and a universal ("fat") one's, with the CPU types.
MACHO_64 = b"\xcf\xfa\xed\xfe"
FAT_MAGICS = {b"\xca\xfe\xba\xbe": 20, b"\xca\xfe\xba\xbf": 32}  # fat_arch and fat_arch_64: bytes per entry
CPU_TYPES = {0x01000007: "x86_64", 0x0100000C: "arm64"}
P_TRANSLATED = 0x00020000  # in a process's p_flag (ps -o flags): it runs under Rosetta


@dataclass(frozen=True)
class PythonInfo:
    path: str
    version: tuple[int, ...]
    arch: str  # what it ran as when asked, from this process
    prefix: str = ""
    archs: tuple[str, ...] = ()  # a Mac binary's slices: both for a universal2 build; () where not Mach-O

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))


@dataclass(frozen=True)
class HostFacts:
    os: str  # "darwin", "linux", ...
    os_version: str
    machine: str  # the hardware's arch: arm64 on any Apple Silicon Mac, even under Rosetta
    chip: str
    ram_total: int
    ram_available: int
    disk_free: tuple[tuple[str, int], ...] = ()
    unwritable: tuple[str, ...] = ()  # target paths that cannot be created
    glibc: tuple[int, ...] | None = None
    nvidia_driver: tuple[int, ...] | None = None
    python: PythonInfo | None = None
    rejected_pythons: tuple[PythonInfo, ...] = ()  # found but unsuitable, in search order
    rosetta: bool = False  # this process runs translated (sysctl.proc_translated = 1)
    terminal_rosetta: bool = False  # a process this one was started from runs translated (the terminal's shell)
    wired_limit_mb: int = 0  # iogpu.wired_limit_mb; 0: not set, macOS's default share applies
    working_set: int = 0  # MLX's max_recommended_working_set_size as validate last read it on this RAM; 0: unknown
    command_line_tools: bool = True  # on a Mac, `xcode-select -p` succeeds (else /usr/bin/python3 is a stub)

    @property
    def is_mac(self) -> bool:
        return self.os == "darwin"


def version_tuple(text: str) -> tuple[int, ...]:
    """'580.65.06' -> (580, 65, 6); '2.35-0ubuntu3' -> (2, 35); () when there is no number."""
    match = re.match(r"\s*(\d+(?:\.\d+)*)", text)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def backend_for(facts: HostFacts, configured: str = "auto") -> str:
    """The MLX backend this host implies: metal, cuda13, cuda12 or cpu (or what config names)."""
    if configured != "auto":
        return configured
    if facts.is_mac:
        return "metal"
    if facts.os == "linux" and facts.nvidia_driver:
        for backend, minimum in CUDA_DRIVER_MINIMUM:
            if facts.nvidia_driver >= minimum:
                return backend
    return "cpu"


def python_info(path: str | os.PathLike) -> PythonInfo | None:
    """Ask an interpreter for its version and arch; None when it does not run."""
    try:
        done = children.run([str(path), "-c", _PYTHON_PROBE], capture_output=True, text=True, timeout=30)
        version, arch, prefix, *executable = json.loads(done.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return PythonInfo(
        path=str(path),
        version=tuple(version),
        arch=arch,
        prefix=prefix,
        archs=binary_archs(Path(executable[0] if executable else path)),
    )


def binary_archs(path: Path) -> tuple[str, ...]:
    """The architectures a Mach-O binary holds (arm64 and x86_64 for a universal2 Python); () for anything else."""
    try:
        with open(path, "rb") as binary:
            head = binary.read(8 + 32 * 4)
    except OSError:
        return ()
    if head[:4] == MACHO_64:
        return tuple(filter(None, [CPU_TYPES.get(int.from_bytes(head[4:8], "little"))]))
    entry = FAT_MAGICS.get(head[:4])
    if not entry:
        return ()
    count = min(int.from_bytes(head[4:8], "big"), 4)
    types = (int.from_bytes(head[8 + i * entry : 12 + i * entry], "big") for i in range(count))
    return tuple(CPU_TYPES[t] for t in types if t in CPU_TYPES)


def any_translated(ps_flags: str) -> bool:
    """Whether any process in `ps -o flags=`'s output (one hex p_flag a line) runs under Rosetta."""
    return any(int(word, 16) & P_TRANSLATED for word in ps_flags.split() if re.fullmatch(r"[0-9a-fA-F]+", word))


def size_text(size: float) -> str:
    """Bytes as GB, or as MB below 1 GB (so 20 MB free never shows as "0.0 GB")."""
    return f"{size / GB:.1f} GB" if size >= GB else f"{size / 10**6:.0f} MB"


def free_disk(path: Path) -> int:
    """Free bytes on the filesystem that would hold `path` (its nearest existing folder)."""
    return shutil.disk_usage(nearest_existing(path)).free


def nearest_existing(path: Path) -> Path:
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def can_create(path: Path) -> bool:
    """Whether `path` exists as a writable folder or could be made; tried for real, as root ignores modes."""
    base = nearest_existing(path)
    if not base.is_dir():
        return False
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".mlxtasks-probe-", dir=base))
    except OSError:
        return False
    return True


def probe(paths: Iterable[Path] = (), python: PythonInfo | None = None) -> HostFacts:
    """Read this machine's facts. `paths` are the folders setup will write to."""
    import psutil  # imported here: only probing needs it, not `invoke --list`

    paths = list(paths)

    system = platform.system().lower()
    memory = psutil.virtual_memory()
    return HostFacts(
        os=system,
        os_version=_os_version(system),
        machine=_hardware_machine(system),
        chip=_chip(system),
        ram_total=memory.total,
        ram_available=memory.available,
        disk_free=tuple((str(p), free_disk(p)) for p in paths),
        unwritable=tuple(str(p) for p in paths if not can_create(p)),
        glibc=_glibc(system),
        nvidia_driver=_nvidia_driver(),
        python=python,
        rosetta=system == "darwin" and _sysctl("sysctl.proc_translated") == "1",
        terminal_rosetta=system == "darwin" and _terminal_translated(),
        wired_limit_mb=_wired_limit_mb(system),
        working_set=remembered_working_set(working_set_path(), memory.total) if system == "darwin" else 0,
        command_line_tools=system != "darwin" or _command_output(["xcode-select", "-p"]) is not None,
    )


def working_set_path(state: Path | None = None) -> Path:
    """Where validate keeps MLX's working-set limit (in the state folder, this user's by default), so
    commands that do not import MLX judge fit by it too."""
    from .config import home_dir, state_dir

    return (state or state_dir(Path(home_dir()))) / "working-set.json"


def remember_working_set(path: Path, ram_total: int, working_set: int) -> None:
    """Keep MLX's figure with the RAM it was read on (a figure from other RAM is not this Mac's)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"ram_total": ram_total, "working_set": int(working_set)}))
        temporary.replace(path)
    except OSError:
        pass  # a state folder we cannot write: the next command falls back to macOS's default share


def remembered_working_set(path: Path, ram_total: int) -> int:
    """The figure remember_working_set kept for this RAM; 0 when there is none."""
    try:
        kept = json.loads(path.read_text())
        if kept["ram_total"] == ram_total and isinstance(kept["working_set"], int) and kept["working_set"] > 0:
            return kept["working_set"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return 0


def _command_output(argv: list[str]) -> str | None:
    try:
        done = children.run(argv, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _sysctl(name: str) -> str | None:
    return _command_output([SYSCTL, "-n", name])


def _terminal_translated() -> bool:
    """Whether a process this one descends from (the terminal's shell) runs under Rosetta: a universal2 Python
    started from it runs as x86_64, even where this process, started natively, sees it run as arm64."""
    import psutil

    try:
        ancestors = [str(p.pid) for p in psutil.Process().parents() if p.pid > 1]
    except psutil.Error:
        return False
    flags = _command_output(["/bin/ps", "-o", "flags=", "-p", ",".join(ancestors)]) if ancestors else None
    return any_translated(flags or "")


def _wired_limit_mb(system: str) -> int:
    value = _sysctl("iogpu.wired_limit_mb") if system == "darwin" else None
    return int(value) if value and value.isdigit() else 0


def _os_version(system: str) -> str:
    if system == "darwin":
        # sw_vers, not platform.mac_ver(): a Python built with an older SDK reads macOS 26 as 16.0.
        return _command_output(["/usr/bin/sw_vers", "-productVersion"]) or platform.mac_ver()[0]
    if system == "linux":
        try:
            return platform.freedesktop_os_release().get("PRETTY_NAME", platform.release())
        except OSError:
            return platform.release()
    return platform.release()


def _hardware_machine(system: str) -> str:
    # Under Rosetta, platform.machine() says x86_64 on an arm64 Mac; the kernel knows better.
    if system == "darwin" and _sysctl("hw.optional.arm64") == "1":
        return "arm64"
    return platform.machine()


def _chip(system: str) -> str:
    if system == "darwin":
        return _sysctl("machdep.cpu.brand_string") or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _glibc(system: str) -> tuple[int, ...] | None:
    if system != "linux":
        return None
    name, version = platform.libc_ver()
    return version_tuple(version) if name == "glibc" and version else None


def _nvidia_driver() -> tuple[int, ...] | None:
    if not shutil.which("nvidia-smi"):
        return None
    out = _command_output(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    return version_tuple(out.splitlines()[0]) if out else None
