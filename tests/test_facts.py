import sys

import pytest

from mlxtasks.facts import HostFacts, PythonInfo, backend_for, probe, python_info, version_tuple

GIB = 2**30


def facts(**changes) -> HostFacts:
    base = dict(
        os="linux",
        os_version="Debian 12",
        machine="x86_64",
        chip="cpu",
        ram_total=32 * GIB,
        ram_available=30 * GIB,
        glibc=(2, 36),
    )
    return HostFacts(**{**base, **changes})


@pytest.mark.parametrize(
    "changes, backend",
    [
        (dict(os="darwin", machine="arm64", glibc=None), "metal"),
        (dict(), "cpu"),
        (dict(machine="aarch64"), "cpu"),
        (dict(nvidia_driver=(535, 104)), "cpu"),
        (dict(nvidia_driver=(550, 54, 14)), "cuda12"),
        (dict(nvidia_driver=(575, 1)), "cuda12"),
        (dict(nvidia_driver=(580,)), "cuda13"),
        (dict(nvidia_driver=(590, 12)), "cuda13"),
    ],
)
def test_backend_follows_the_platform(changes, backend):
    assert backend_for(facts(**changes)) == backend


def test_configured_backend_wins():
    assert backend_for(facts(nvidia_driver=(580,)), "cpu") == "cpu"


def test_version_tuple_reads_driver_and_glibc_versions():
    assert version_tuple("580.65.06") == (580, 65, 6)
    assert version_tuple("2.35-0ubuntu3") == (2, 35)
    assert version_tuple("none") == ()


def test_python_info_runs_the_interpreter():
    info = python_info(sys.executable)
    assert info.version == tuple(sys.version_info[:3])
    assert python_info("/nonexistent/python") is None


def test_probe_reads_this_machine(tmp_path):
    found = probe([tmp_path / "not" / "yet"], python=PythonInfo("py", (3, 11, 0), "x86_64"))
    assert found.os == "linux"
    assert found.glibc >= (2, 17)
    assert found.ram_total >= found.ram_available > 0
    assert found.disk_free[0][1] > 0
    assert found.unwritable == ()
    assert list(tmp_path.iterdir()) == []  # probing creates nothing


def test_probe_sees_a_folder_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert probe([blocker / "venv"]).unwritable == (str(blocker / "venv"),)


def test_the_mac_readings_use_full_paths_and_read_the_wired_limit(monkeypatch):
    """Only the reading is given here, as a Mac would answer; cron's and launchd's PATH lack /usr/sbin."""
    from mlxtasks import facts as module

    answers = {
        ("/usr/sbin/sysctl", "-n", "iogpu.wired_limit_mb"): "24576",
        ("/usr/sbin/sysctl", "-n", "hw.optional.arm64"): "1",
        ("/usr/bin/sw_vers", "-productVersion"): "26.1",
    }
    monkeypatch.setattr(module, "_command_output", lambda argv: answers.get(tuple(argv)))
    assert module._wired_limit_mb("darwin") == 24576
    assert module._hardware_machine("darwin") == "arm64"
    assert module._os_version("darwin") == "26.1"  # platform.mac_ver() says 16.0 in Pythons built with an older SDK
    answers[("/usr/sbin/sysctl", "-n", "iogpu.wired_limit_mb")] = "0"
    assert module._wired_limit_mb("darwin") == 0


def test_probe_on_linux_reads_no_mac_settings():
    found = probe()
    assert (found.rosetta, found.wired_limit_mb, found.command_line_tools) == (False, 0, True)
