"""Finding the venv's Python, in mlxtasks/pythons.py and in scripts/lib.sh (which bootstrap.sh runs on a
fresh Mac). Macs are given as facts, or in the shell as stand-in functions; Pythons as stand-in executables."""

import shutil
import subprocess
from pathlib import Path

import pytest

from mlxtasks import config, pythons
from mlxtasks import facts as facts_module
from mlxtasks.facts import HostFacts, PythonInfo

from .support.helpers import ROOT

GIB = 2**30
# A Mac as lib.sh sees it, through the functions it asks: Apple Silicon, Rosetta as given, Command Line Tools as given.
FAKE_MAC = (
    "host_os() {{ echo Darwin; }}; has_command_line_tools() {{ {clt}; }}; "
    'sysctl_value() {{ case "$1" in hw.optional.arm64) echo 1 ;; sysctl.proc_translated) echo {rosetta} ;; esac; }}; '
)


def mac(**changes) -> HostFacts:
    base = dict(
        os="darwin", os_version="15.1", machine="arm64", chip="Apple M4", ram_total=16 * GIB, ram_available=8 * GIB
    )
    return HostFacts(**{**base, **changes})


def linux() -> HostFacts:
    return HostFacts(os="linux", os_version="x", machine="x86_64", chip="x", ram_total=16 * GIB, ram_available=8 * GIB)


def lib_sh(script: str, path: str) -> subprocess.CompletedProcess:
    """Run script after sourcing lib.sh under set -eu, as bootstrap.sh and scripts/test.sh do."""
    return subprocess.run(
        ["/bin/sh", "-c", f'set -eu; root="{ROOT}"; . "$root/scripts/lib.sh"; {script}'],
        env={"PATH": path, "HOME": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_shell_and_python_searches_try_the_same_interpreters_in_the_same_order():
    listed = lib_sh("python_candidates", "/usr/bin:/bin").stdout.split()
    assert listed == [*pythons.PATH_NAMES, *pythons.home_locations("/nonexistent"), *pythons.MAC_LOCATIONS]
    assert "/nonexistent/.local/bin/python3.12" in listed  # where `uv python install 3.12` puts it
    assert listed[0] == "python3.14" and "/opt/homebrew/bin/python3" in listed
    assert "/Library/Frameworks/Python.framework/Versions/3.14/bin/python3" in listed


def test_the_shell_reads_the_supported_range_from_the_file_python_reads():
    done = lib_sh('echo "$min_python $max_python"', "/usr/bin:/bin")
    assert done.stdout.split() == [".".join(map(str, config.MIN_PYTHON)), ".".join(map(str, config.MAX_PYTHON))]
    assert config.MAX_PYTHON == (3, 14)  # numpy 2.4.6, the pin, has no wheels for 3.15


def test_the_search_stops_at_the_first_suitable_python(tmp_path, fake_python, monkeypatch):
    newest = fake_python("3.14.0", name="python3.14")
    later = fake_python("3.12.7", name="python3.12")
    ran = tmp_path / "ran"
    later.write_text(f"#!/bin/sh\ntouch {ran}\n" + later.read_text().split("\n", 1)[1])
    monkeypatch.setenv("PATH", f"{newest.parent}:{later.parent}")
    found, rejected = pythons.find(linux(), None)
    assert found.path == str(newest) and rejected == ()
    assert not ran.exists()


def test_a_python_newer_than_the_pins_support_is_refused(fake_python, monkeypatch):
    too_new = fake_python("3.15.0", name="python3")
    monkeypatch.setenv("PATH", str(too_new.parent))
    found, rejected = pythons.find(linux(), None)
    assert found is None and [r.path for r in rejected] == [str(too_new)]
    assert pythons.problem(rejected[0], linux()) == (
        f"Python 3.15.0 at {too_new} is too new: the pinned packages "
        "(numpy, mlx) have wheels for Python 3.11 to 3.14 only."
    )


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="needs /usr/bin/python3")
def test_a_mac_without_the_command_line_tools_never_runs_its_python3_stub(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin")
    assert "/usr/bin/python3" in pythons.candidates(mac(command_line_tools=True))
    assert "/usr/bin/python3" not in pythons.candidates(mac(command_line_tools=False))
    stub = "  /usr/bin/python3: "
    without = lib_sh(FAKE_MAC.format(clt="false", rosetta=0) + 'find_python || no_python "$rejected"', "/usr/bin")
    assert without.returncode == 1 and stub not in without.stderr
    with_tools = lib_sh(FAKE_MAC.format(clt="true", rosetta=0) + 'find_python || no_python "$rejected"', "/usr/bin")
    assert stub in with_tools.stderr


def test_a_python_uv_installed_in_local_bin_is_found_off_path_by_both_searches(tmp_path, fake_python, monkeypatch):
    uv_python = fake_python("3.12.7", name="python3.12")
    (tmp_path / "home" / ".local" / "bin").mkdir(parents=True)
    (tmp_path / "home" / ".local" / "bin" / "python3.12").symlink_to(uv_python)
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "uname").symlink_to(shutil.which("uname"))  # all lib.sh runs here, and no Python
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PATH", "/nonexistent")
    found, _ = pythons.find(linux(), None)
    assert found.path == str(tmp_path / "home" / ".local" / "bin" / "python3.12")
    done = subprocess.run(
        ["/bin/sh", "-c", f'set -eu; root="{ROOT}"; . "$root/scripts/lib.sh"; find_python && echo "$python"'],
        env={"PATH": str(tmp_path / "tools"), "HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
    )
    assert done.stdout.strip() == found.path


def test_the_shell_passes_over_a_python_that_does_not_run(tmp_path, fake_python):
    # As a pyenv shim does for a version that is installed but not selected: exit 127.
    broken = tmp_path / "shims" / "python3.14"
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\nexit 127\n")
    broken.chmod(0o755)
    fine = fake_python("3.13.1", name="python3.13")
    done = lib_sh('find_python && echo "$python"', f"{broken.parent}:{fine.parent}")
    assert done.stdout.strip() == str(fine)


def test_a_python3_that_does_not_run_is_never_called_bundled_with_an_empty_version():
    done = lib_sh(
        FAKE_MAC.format(clt="true", rosetta=0) + "python_version() { :; }; no_python /usr/bin/python3", "/bin"
    )
    assert done.returncode == 1
    assert "No usable Python found: /usr/bin/python3: it does not run;" in done.stderr
    assert "bundled" not in done.stderr


def test_the_shell_under_rosetta_names_each_rejected_pythons_arch_and_the_native_terminal_fix(fake_python):
    intel = fake_python("3.13.1", arch="x86_64", name="python3.13")
    done = lib_sh(FAKE_MAC.format(clt="true", rosetta=1) + 'find_python || no_python "$rejected"', str(intel.parent))
    assert done.returncode == 1
    assert f"  {intel}: Python 3.13.1 runs as x86_64, not arm64 (x86_64)" in done.stderr
    assert "This terminal runs under Rosetta" in done.stderr and "arch -arm64 sh bootstrap.sh" in done.stderr
    assert "brew install" not in done.stderr


def test_the_shell_refuses_a_python_newer_than_the_pins(fake_python):
    too_new = fake_python("3.15.0", arch="arm64", name="python3")
    done = lib_sh('find_python || no_python "$rejected"', str(too_new.parent))
    assert done.returncode == 1
    assert f"{too_new}: Python 3.15.0 is too new" in done.stderr and "Python 3.11 to 3.14" in done.stderr


def test_an_arm64_python_passes_on_a_mac_in_the_shell(fake_python):
    native = fake_python("3.14.0", arch="arm64", name="python3.14")
    done = lib_sh(FAKE_MAC.format(clt="true", rosetta=0) + 'find_python && echo "$python"', str(native.parent))
    assert done.stdout.strip() == str(native)


def test_python_and_shell_agree_that_rosetta_is_the_terminals_fault():
    universal = PythonInfo("/usr/local/bin/python3.13", (3, 13, 1), "x86_64")
    assert "runs under Rosetta" in pythons.problem(universal, mac(rosetta=True))
    assert pythons.fix_for(mac(rosetta=True)) == pythons.ROSETTA_FIX
    assert "Intel (x86_64) Python" in pythons.problem(universal, mac())
    assert pythons.problem(PythonInfo("/opt/homebrew/bin/python3", (3, 14, 0), "arm64"), mac()) is None


def macho(*cpu_types: int, fat_64: bool = False) -> bytes:
    """The first bytes of a Mach-O binary as they lie on disk: thin (one type) or universal (several)."""
    if len(cpu_types) == 1:
        return b"\xcf\xfa\xed\xfe" + cpu_types[0].to_bytes(4, "little") + bytes(24)
    entry = 32 if fat_64 else 20
    return (
        (b"\xca\xfe\xba\xbf" if fat_64 else b"\xca\xfe\xba\xbe")
        + len(cpu_types).to_bytes(4, "big")
        + b"".join(t.to_bytes(4, "big") + bytes(entry - 4) for t in cpu_types)
    )


ARM64, X86_64 = 0x0100000C, 0x01000007


@pytest.mark.parametrize(
    "head, archs",
    [
        (macho(ARM64), ("arm64",)),
        (macho(X86_64), ("x86_64",)),
        (macho(X86_64, ARM64), ("x86_64", "arm64")),
        (macho(X86_64, ARM64, fat_64=True), ("x86_64", "arm64")),
        (b"\x7fELF" + bytes(60), ()),
    ],
)
def test_a_binarys_architectures_are_read_from_its_mach_o_header(head, archs, tmp_path):
    (tmp_path / "python3").write_bytes(head + b"rest of the binary")
    assert facts_module.binary_archs(tmp_path / "python3") == archs


def test_a_python_on_this_machine_is_asked_where_its_binary_is_and_it_is_not_mach_o():
    import sys

    info = facts_module.python_info(sys.executable)
    assert info.archs == () and info.version == tuple(sys.version_info[:3])


def test_rosetta_is_seen_in_the_flags_of_the_processes_this_one_came_from():
    assert facts_module.any_translated("    4004\n 2024004\n") is True  # the terminal's shell: P_TRANSLATED set
    assert facts_module.any_translated("    4004\n    4104\n") is False
    assert facts_module.any_translated("") is False


def test_a_universal2_python_is_judged_by_the_arch_the_rosetta_terminal_will_run_it_as():
    """The tool process runs natively (a python.org universal2 Python answers arm64 to it), but the terminal that will
    run the venv runs under Rosetta, where that same binary runs as x86_64."""
    universal = PythonInfo(
        "/Library/Frameworks/Python.framework/Versions/3.12/bin/python3", (3, 12, 8), "arm64", archs=("x86_64", "arm64")
    )
    native_only = PythonInfo("/opt/homebrew/bin/python3.12", (3, 12, 8), "arm64", archs=("arm64",))
    terminal = mac(terminal_rosetta=True)
    assert pythons.problem(universal, terminal) == (
        f"This terminal runs under Rosetta, so {universal.path} (built for both architectures) would run the venv as "
        "x86_64; MLX needs Python running natively as arm64."
    )
    assert pythons.fix_for(terminal) == pythons.ROSETTA_FIX and "untick 'Open using Rosetta'" in pythons.ROSETTA_FIX
    assert pythons.problem(native_only, terminal) is None  # an arm64-only binary runs as arm64 from any terminal
    assert pythons.problem(universal, mac()) is None
