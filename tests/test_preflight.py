from dataclasses import replace

import psutil
import pytest

from mlxtasks import config, registry
from mlxtasks.checks import Status, run_checks, summary_line
from mlxtasks.facts import GB, HostFacts, PythonInfo

from .support.helpers import invoke

GIB = 2**30
NATIVE_312 = PythonInfo("/opt/homebrew/bin/python3.12", (3, 12, 7), "arm64")


def mac(**changes) -> HostFacts:
    base = dict(
        os="darwin",
        os_version="14.5",
        machine="arm64",
        chip="Apple M2 Pro",
        ram_total=32 * GIB,
        ram_available=20 * GIB,
        disk_free=(("/Users/me/venv-mlx", 200 * GB),),
        python=NATIVE_312,
    )
    return HostFacts(**{**base, **changes})


def linux(**changes) -> HostFacts:
    base = dict(
        os="linux",
        os_version="Ubuntu 24.04",
        machine="x86_64",
        chip="EPYC",
        ram_total=64 * GIB,
        ram_available=60 * GIB,
        disk_free=(("/home/me/venv-mlx", 200 * GB),),
        glibc=(2, 39),
        python=PythonInfo("/usr/bin/python3.12", (3, 12, 3), "x86_64"),
    )
    return HostFacts(**{**base, **changes})


def results(facts, checks=None):
    """preflight's verdicts on these facts, by their ids without the group: system.disk -> disk."""
    found = registry.run(registry.Inputs(config.resolve({}, home="/h"), host=facts), checks or registry.for_preflight())
    return {r.id.removeprefix("system."): r for r in found}


def test_a_healthy_mac_passes_every_check():
    found = results(mac())
    assert all(r.status is Status.OK for r in found.values()), found
    assert "Apple M2 Pro" in found["os"].message


def test_an_intel_mac_is_refused():
    r = results(mac(machine="x86_64", python=PythonInfo("/usr/local/bin/python3.12", (3, 12, 1), "x86_64")))["os"]
    assert r.status is Status.ERROR and "Apple Silicon" in r.message


@pytest.mark.parametrize("version", ["12.7.4", "13.5", "13.7.2"])
def test_macos_older_than_14_is_refused_with_the_update_fix(version):
    r = results(mac(os_version=version))["os"]
    assert r.status is Status.ERROR
    assert r.message == f"macOS {version} is too old: MLX needs macOS 14 (Sonoma) or newer."
    assert "Software Update" in r.fix


@pytest.mark.parametrize("version", ["14.0", "15.7", "26.1"])
def test_macos_14_and_later_pass(version):
    assert results(mac(os_version=version))["os"].status is Status.OK


def test_an_intel_python_on_an_arm64_mac_is_refused():
    r = results(mac(python=PythonInfo("/usr/local/bin/python3.12", (3, 12, 1), "x86_64")))["python"]
    assert r.status is Status.ERROR
    assert r.message == "/usr/local/bin/python3.12 is an Intel (x86_64) Python; MLX needs a native arm64 Python."
    assert "--python" in r.fix


def test_under_rosetta_the_terminal_is_blamed_and_each_rejected_python_shows_its_arch():
    universal = PythonInfo("/Library/Frameworks/Python.framework/Versions/3.13/bin/python3", (3, 13, 1), "x86_64")
    brew = PythonInfo("/opt/homebrew/bin/python3.12", (3, 12, 7), "x86_64")
    r = results(mac(python=None, rejected_pythons=(universal, brew), rosetta=True))["python"]
    assert r.status is Status.ERROR
    assert r.message.startswith(f"This terminal runs under Rosetta, so {universal.path} runs as x86_64;")
    assert r.message.endswith(f"Also rejected: {brew.path} (3.12.7, x86_64).")
    assert "Open using Rosetta" in r.fix and "arch -arm64" in r.fix
    assert r.details == tuple(
        f"rejected {p.path}: Python {p.version_text} (x86_64), This terminal runs under Rosetta, so "
        f"{p.path} runs as x86_64; MLX needs Python running natively as arm64."
        for p in (universal, brew)
    )


def test_the_macos_system_python_39_gets_its_own_sentence_and_the_fix():
    r = results(mac(python=PythonInfo("/usr/bin/python3", (3, 9, 6), "arm64")))["python"]
    assert r.status is Status.ERROR
    assert r.message == "macOS's bundled Python is 3.9.6; mlx-lm and transformers need Python 3.11 to 3.14."
    assert "brew install python@3.12" in r.fix and "invoke setup --python" in r.fix


@pytest.mark.parametrize(
    "version, status",
    [
        ((3, 10, 12), Status.ERROR),
        ((3, 11, 0), Status.OK),
        ((3, 13, 1), Status.OK),
        ((3, 14, 0), Status.OK),
        ((3, 15, 0), Status.ERROR),
    ],
)
def test_python_version_threshold(version, status):
    assert results(linux(python=PythonInfo("/usr/bin/python3", version, "x86_64")))["python"].status is status


def test_no_python_at_all():
    r = results(linux(python=None))["python"]
    assert r.status is Status.ERROR and "No Python 3.11" in r.message


@pytest.mark.parametrize("glibc, status", [((2, 31), Status.ERROR), ((2, 35), Status.OK), (None, Status.ERROR)])
def test_linux_needs_glibc_235(glibc, status):
    r = results(linux(glibc=glibc))["os"]
    assert r.status is status
    if status is Status.ERROR:
        assert "glibc 2.35" in r.message


def test_linux_aarch64_is_fine_and_other_arches_are_not():
    assert results(linux(machine="aarch64"))["os"].status is Status.OK
    assert results(linux(machine="riscv64"))["os"].status is Status.ERROR
    assert results(linux(os="windows"))["os"].status is Status.ERROR


@pytest.mark.parametrize(
    "free_gb, status", [(9.9, Status.ERROR), (10.5, Status.WARNING), (19.9, Status.WARNING), (20.1, Status.OK)]
)
def test_disk_thresholds(free_gb, status):
    r = results(mac(disk_free=(("/big", 500 * GB), ("/small", int(free_gb * GB)))))["disk"]
    assert r.status is status
    if status is not Status.OK:
        assert "/small" in r.message and r.fix


def test_low_ram_warns_and_names_the_models_that_will_not_fit():
    r = results(mac(ram_total=8 * GIB))["ram"]
    assert r.status is Status.WARNING
    assert "qwen32b" in r.message and "phi4" in r.message
    assert "qwen7b" not in r.message.split("Too big for this machine:")[1]


def test_a_16gb_mac_is_not_warned_about_ram_but_32b_models_do_not_fit_its_gpu():
    from mlxtasks.catalog import too_big

    assert results(mac(ram_total=16 * GIB))["ram"].status is Status.OK
    too_big_for_16 = [m.alias for m in too_big(mac(ram_total=16 * GIB))]
    assert too_big_for_16[0] == "qwen32b" and "qwen7b" not in too_big_for_16
    assert "qwen32b" not in [m.alias for m in too_big(mac(ram_total=32 * GIB))]


def test_an_unwritable_target_is_an_error():
    r = results(linux(unwritable=("/sys/venv-mlx",)))["folders"]
    assert r.status is Status.ERROR and "/sys/venv-mlx" in r.message


def test_a_crashing_check_is_reported_as_crashed_not_raised():
    def broken():
        raise RuntimeError("boom")

    found = run_checks([("x", "X", broken)])
    assert found[0].status is Status.CRASHED and "boom" in found[0].message
    assert summary_line(found) == "Found issues in 1 check."


def test_verbose_shows_what_each_check_read_on_a_healthy_mac():
    found = results(mac(wired_limit_mb=20000))
    assert all(r.status is Status.OK and r.details for r in found.values()), found
    assert found["folders"].details == ("/Users/me/venv-mlx: can be created and written",)
    assert found["os"].details == (
        "macOS 14.5 (sw_vers), hardware arm64 (sysctl hw.optional.arm64), Apple M2 Pro",
        "this terminal runs under Rosetta: no (sysctl.proc_translated, and the flags of "
        "the processes this one was started from)",
    )
    assert found["python"].details == ("chosen /opt/homebrew/bin/python3.12: Python 3.12.7 (arm64)",)
    assert found["ram"].details[1] == (
        "21.0 GB for a model (iogpu.wired_limit_mb=20000), the budget every command judges fit by"
    )


def test_ram_is_the_same_figure_in_preflight_validate_and_bench():
    from mlxtasks import bench

    facts = mac(ram_total=24 * GIB)
    assert results(facts)["ram"].message == "26 GB of RAM"
    machine = {
        "chip": "M4",
        "ram_gb": round(facts.ram_total / GB, 1),
        "os": "darwin",
        "os_version": "15.1",
        "backend": "metal",
        "mlx": "0.32.4",
        "mlx_lm": "0.32.2",
    }
    assert "26 GB RAM" in bench.machine_line(machine)


@pytest.mark.parametrize(
    "facts",
    [
        mac(disk_free=(("/small", 5 * GB),)),
        mac(disk_free=(("/small", 15 * GB),)),
        mac(python=PythonInfo("/usr/local/bin/python3.12", (3, 12, 1), "x86_64"), rosetta=True),
        mac(ram_total=8 * GIB),
        linux(glibc=(2, 31)),
    ],
)
def test_preflight_and_validate_give_one_verdict_per_fact(facts):
    """Below min_disk_gb was an error in preflight and a warning in validate; an x86_64 Python under
    Rosetta had three sentences. Now each fact has one check, which both run."""
    validated = results(facts, registry.for_validate(only="system"))
    verdicts = {key: replace(r, seconds=0) for key, r in results(facts).items()}
    assert {key: replace(r, seconds=0) for key, r in validated.items()} == verdicts
    assert list(validated) == ["os", "python", "folders", "disk", "ram"]


def test_free_disk_below_min_disk_gb_is_an_error_in_validate_too():
    assert results(mac(disk_free=(("/small", 5 * GB),)), registry.for_validate())["disk"].status is Status.ERROR


@pytest.mark.slow  # the probe's own limit: 30 s
def test_a_python_that_hangs_is_given_up_with_every_process_it_started(home, tmp_path):
    started = tmp_path / "started"
    hanging = tmp_path / "python3"
    hanging.write_text(f"#!/bin/sh\nsleep 600 &\necho $! > {started}\nwait\n")
    hanging.chmod(0o755)
    done = invoke("preflight", "--python", str(hanging), home=home, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    sleeper = int(started.read_text())
    _, alive = psutil.wait_procs([psutil.Process(sleeper)], timeout=10) if psutil.pid_exists(sleeper) else ([], [])
    assert not alive
