from pathlib import Path

import pytest
from packaging.version import Version

from mlxtasks import __version__, config, install
from mlxtasks.installer import Installer

DEFAULT_PACKAGES = config.resolve({}, home="/h").packages


@pytest.mark.parametrize(
    "backend, spec, wheel",
    [
        ("metal", "mlx", "mlx-metal"),
        ("cpu", "mlx[cpu]", "mlx-cpu"),
        ("cuda12", "mlx[cuda12]", "mlx-cuda-12"),
        ("cuda13", "mlx[cuda13]", "mlx-cuda-13"),
    ],
)
def test_package_set_per_backend(backend, spec, wheel):
    items = install.wanted(backend, DEFAULT_PACKAGES)
    specs = [str(i.requirement) for i in items if i.requirement]
    assert specs[0] == spec
    assert specs[1:] == [
        "mlx-lm",
        "numpy",
        "transformers",
        "huggingface-hub",
        "sentencepiece",
        "tiktoken",
        "starlette",
        "uvicorn",
        "pydantic",
        "httptools",
        "uvloop",
        "llguidance",
        "prompt-toolkit",
    ]  # then the server's and the chat's
    assert wheel in [i.name for i in items if i.requirement is None]


def test_every_default_package_and_backend_wheel_is_pinned():
    pinned = install.pins()
    for backend in install.MLX_REQUIREMENT:
        for item in install.wanted(backend, DEFAULT_PACKAGES):
            assert item.name in pinned, item.name
    assert pinned["mlx"] == pinned["mlx-cpu"] == pinned["mlx-metal"] == pinned["mlx-cuda-13"]


SERVER_AND_CHAT = {
    "starlette": "1.10.0",
    "uvicorn": "0.54.0",
    "pydantic": "2.14.4",
    "httptools": "0.9.0",
    "uvloop": "0.23.0",
    "llguidance": "1.9.1",
    "prompt-toolkit": "3.0.53",
}


def test_satisfied_means_present_and_not_older_than_the_pin():
    items = install.wanted("cpu", ("numpy",))
    pins = {"mlx": Version("0.32.4"), "mlx-cpu": Version("0.32.4"), "numpy": Version("2.4.6")}
    installed = {"mlx": "0.32.4", "mlx-cpu": "0.32.4", "numpy": "2.4.6", **SERVER_AND_CHAT}
    assert install.unsatisfied(items, installed, pins) == []
    assert install.unsatisfied(items, {**installed, "numpy": "2.5.0"}, pins) == []  # an --upgrade sticks
    assert install.unsatisfied(items, {**installed, "numpy": "1.26.4"}, pins) == ["numpy"]
    assert install.unsatisfied(items, {**installed, "mlx-cpu": None}, pins) == ["mlx-cpu"]


def test_a_configured_range_is_respected():
    items = install.wanted("cpu", ("numpy<2",))
    assert install.unsatisfied(
        items, {"mlx": "0.32.4", "mlx-cpu": "0.32.4", "numpy": "2.4.6", **SERVER_AND_CHAT}, {}
    ) == ["numpy"]
    assert install.unsatisfied(items, {"mlx": "0.32.4", "mlx-cpu": "0.32.4", "numpy": "1.26.4"}, {}) == [
        "starlette",
        "uvicorn",
        "pydantic",
        "httptools",
        "uvloop",
        "llguidance",
        "prompt-toolkit",
    ]  # the server's and chat's too


def test_a_bad_package_entry_is_a_clear_error_when_the_packages_are_read(tmp_path):
    from mlxtasks.errors import MlxTasksError

    with pytest.raises(MlxTasksError) as caught:
        config.resolve({"packages": ["not a requirement!"]}, home=tmp_path).packages
    assert (
        caught.value.message
        == "Config key 'mlx.packages' has an entry that is not a package requirement: 'not a requirement!'."
    )


def test_install_commands_pin_unless_upgrading(tmp_path):
    python = tmp_path / "bin" / "python"
    uv = install._install_argv(python, Installer("uv", "/x/uv"), ["mlx[cpu]"], upgrade=False, mac=False)
    assert uv[:5] == ("/x/uv", "pip", "install", "--python", str(python))
    assert ("--constraint", str(install.CONSTRAINTS)) == uv[5:7]
    pip = install._install_argv(python, Installer("pip"), ["mlx[cpu]"], upgrade=True, mac=False)
    assert pip[:4] == (str(python), "-m", "pip", "install") and "--upgrade" in pip and "--constraint" not in pip
    # Without a terminal to answer it, pip's uninstall must not ask.
    assert install._uninstall_argv(python, Installer("pip"))[-3:] == ("uninstall", "--yes", "mlxtasks")


def test_plan_for_a_missing_venv_installs_everything_including_mlxtasks(tmp_path):
    s = config.resolve({}, home=tmp_path)
    step = install.plan(s, "cpu", Installer("pip"))
    assert not step.done
    [command] = step.actions  # nothing to uninstall first
    assert command.argv[-2:] == ("--editable", str(install.SOURCE_TREE))  # mlxtasks itself, from this checkout
    assert command.tries == 3


CHECKOUT = install.Origin(install.SOURCE_TREE)
WHEEL = install.origin(
    None,
    "mlxtasks/__init__.py,sha256=a,10\nmlxtasks/__pycache__/x.pyc,,\n"
    "mlxtasks-0.1.0.dist-info/RECORD,,\n../../../bin/mlxtasks,sha256=b,1\n",
)


def test_an_installs_origin_is_its_checkout_when_editable_else_its_own_files():
    editable = '{"url": "file:///home/u/my%20checkout", "dir_info": {"editable": true}}'
    assert install.origin(editable, "mlxtasks/x.py,sha256=c,1\n") == install.Origin(Path("/home/u/my checkout"))
    assert WHEEL == install.Origin(None, frozenset({"mlxtasks/__init__.py,sha256=a"}))
    built = install.origin('{"url": "file:///w/mlxtasks-0.1.0-py3-none-any.whl", "archive_info": {}}', "")
    assert built.source is None and install.self_requirement(built) == [
        "mlxtasks @ file:///w/mlxtasks-0.1.0-py3-none-any.whl"
    ]
    assert install.self_requirement(WHEEL) == [f"mlxtasks=={__version__}"]
    assert install.self_requirement(CHECKOUT) == ["--editable", str(install.SOURCE_TREE)]


def test_the_venvs_mlxtasks_must_run_this_checkout_or_these_files(tmp_path):
    gone = install.Origin(tmp_path / "moved")
    assert install.self_problem(__version__, CHECKOUT, CHECKOUT) is None
    assert install.self_problem(None, None, CHECKOUT) == "missing"
    assert (
        install.self_problem(__version__, gone, CHECKOUT)
        == f"runs the checkout {tmp_path / 'moved'}, which is gone, not {install.SOURCE_TREE}"
    )
    assert "from a wheel, not from the checkout" in install.self_problem(__version__, WHEEL, CHECKOUT)
    assert install.self_problem("0.0.9", CHECKOUT, CHECKOUT) == f"version 0.0.9, not {__version__}"
    assert install.self_problem(__version__, WHEEL, WHEEL) is None
    edited = install.Origin(None, frozenset({"mlxtasks/__init__.py,sha256=z"}))
    assert install.self_problem(__version__, edited, WHEEL) == "its files differ from this mlxtasks's"
    assert install.self_problem(__version__, CHECKOUT, WHEEL).endswith("not this installed mlxtasks")


# What uv 0.13.9 and pip 26.3 printed here, run for real: uv asked for macOS wheels (--python-platform
# aarch64-apple-darwin, whose default is macOS 13) as on a Mac too old for mlx, pip for a version that does not exist.
UV_NO_MAC_WHEEL = """Using Python 3.11.7 environment at: rv
error: No solution found when resolving dependencies
  cause: Because mlx==0.32.4 has no wheels with a matching platform tag (e.g., `macosx_13_0_arm64`) and you require mlx==0.32.4, we can conclude that your requirements are unsatisfiable.

hint: Wheels are available for `mlx` (v0.32.4) on the following platforms: `manylinux_2_35_aarch64`, `macosx_14_0_arm64`
"""
UV_ON_A_TERMINAL = (
    "\x1b[1m\x1b[31merror\x1b[39m\x1b[0m\x1b[1m:\x1b[0m No solution found when resolving dependencies\r\n"
    "  \x1b[1m\x1b[31mcause\x1b[39m\x1b[0m\x1b[1m:\x1b[0m Because mlx==0.32.4 has no wheels with a matching "
    "platform tag (e.g., `\x1b[36mmacosx_13_0_arm64\x1b[39m`) and you require mlx==0.32.4, we can conclude "
    "that your requirements are unsatisfiable.\r\n"
)
PIP_NO_SUCH_VERSION = """ERROR: Could not find a version that satisfies the requirement mlx==0.0.0 (from versions: 0.30.0, 0.32.4)
ERROR: No matching distribution found for mlx==0.0.0
"""
UV_OFFLINE = """error: Failed to fetch: `https://pypi.org/simple/mlx/`
  cause: Request failed after 3 retries
  cause: error sending request for url (https://pypi.org/simple/mlx/)
  cause: dns error
"""
PIP_OFFLINE = """WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection broken by 'NewConnectionError(...)': /simple/mlx/
ERROR: Could not find a version that satisfies the requirement mlx==0.32.4 (from versions: none)
ERROR: No matching distribution found for mlx==0.32.4
"""


@pytest.mark.parametrize("output", [UV_NO_MAC_WHEEL, UV_ON_A_TERMINAL])
def test_a_mac_without_a_matching_wheel_is_told_the_likely_cause_not_the_network(output):
    error = install.unresolvable("metal", output)
    assert error.message.startswith(
        "No release of the MLX packages fits this machine (MLX's Mac wheels need macOS 14 "
        "or newer and Python 3.11 to 3.14), so the install was not retried."
    )
    assert error.message.endswith(
        "cause: Because mlx==0.32.4 has no wheels with a matching platform tag (e.g., "
        "`macosx_13_0_arm64`) and you require mlx==0.32.4, we can conclude that your "
        "requirements are unsatisfiable."
    )
    assert "network" not in error.message + error.fix and "invoke preflight" in error.fix


def test_pips_resolution_failure_is_named_too():
    error = install.unresolvable("cpu", PIP_NO_SUCH_VERSION)
    assert error.message.endswith("The installer said: ERROR: No matching distribution found for mlx==0.0.0")


@pytest.mark.parametrize("output", [UV_OFFLINE, PIP_OFFLINE, "error: connection reset\n", ""])
def test_network_failures_are_left_to_the_retries(output):
    assert install.unresolvable("metal", output) is None


def test_a_macs_installer_runs_with_system_version_compat_off_so_it_reads_macos_26_as_26(tmp_path):
    """A Python built with an older SDK reads macOS 26 as 16.0 unless SYSTEM_VERSION_COMPAT=0 (then pip and uv
    would pass over mlx's wheels for macOS 26). The variable reaches the installer's own process."""
    import subprocess
    import sys

    metal = install.plan(config.resolve({}, home=tmp_path), "metal", Installer("uv", "/x/uv")).actions[-1].argv
    assert metal[:4] == ("/usr/bin/env", "SYSTEM_VERSION_COMPAT=0", "/x/uv", "pip")
    assert (
        install.plan(config.resolve({}, home=tmp_path), "cpu", Installer("uv", "/x/uv")).actions[-1].argv[0] == "/x/uv"
    )
    seen = subprocess.run(
        [*metal[:2], sys.executable, "-c", "import os; print(os.environ['SYSTEM_VERSION_COMPAT'])"],
        capture_output=True,
        text=True,
        env={"SYSTEM_VERSION_COMPAT": "1"},
    )
    assert seen.stdout == "0\n"


def test_the_install_command_gives_up_on_a_resolution_failure(tmp_path):
    command = install.plan(config.resolve({}, home=tmp_path), "metal", Installer("uv", "/x/uv")).actions[0]
    assert command.give_up(UV_NO_MAC_WHEEL) is not None and command.give_up(UV_OFFLINE) is None


@pytest.mark.e2e
def test_uvs_real_answer_for_a_mac_too_old_for_mlx_is_a_resolution_failure(tmp_path):
    import subprocess

    from mlxtasks.installer import find_uv

    uv = find_uv()
    subprocess.run([uv, "venv", "-q", str(tmp_path / "v")], check=True)
    done = subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--python",
            str(tmp_path / "v" / "bin" / "python"),
            "--dry-run",
            "--python-platform",
            "aarch64-apple-darwin",
            "--constraint",
            str(install.CONSTRAINTS),
            "mlx",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "macOS 14" in install.unresolvable("metal", done.stderr + done.stdout).message
