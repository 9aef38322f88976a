"""Single steps run alone, as a user runs them: broken venvs, the pip fallback, preflight --json,
and what the output looks like on a terminal and off one."""

import json
import subprocess
import sys

import pexpect
import pytest

from .support.helpers import BIN, ROOT, clean_env, invoke, tree

pytestmark = pytest.mark.e2e


def broken_venv(home):
    path = home / "venv-mlx"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    (path / "bin" / "python").unlink()
    return path


def test_a_broken_venv_without_a_terminal_is_not_touched_and_the_flag_is_named(home):
    path = broken_venv(home)
    before = tree(path)
    done = invoke("venv", home=home)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"[error] The venv {path} is broken: its Python (bin/python) is missing.",
        "  Fix: recreate it: invoke venv --force, then invoke install (or both: invoke setup --yes)",
    ]
    assert tree(path) == before


def test_yes_recreates_a_broken_venv(home):
    path = broken_venv(home)
    done = invoke("venv", "--yes", home=home)
    assert done.returncode == 0, done.stderr
    assert "[changed] venv: recreate" in done.stdout and "bin/python) is missing" in done.stdout
    assert (path / "bin" / "python").exists() and (path / "bin" / "pip").exists()


def test_the_prompt_on_a_terminal_can_refuse(home):
    broken_venv(home)
    child = pexpect.spawn(
        str(BIN / "invoke"), ["venv"], cwd=str(ROOT), env=clean_env(home), encoding="utf-8", timeout=60
    )
    child.expect_exact("Recreate it? [y/N]")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert "is broken" in child.before


def test_the_pip_installer_makes_a_venv_with_an_upgraded_pip(home):
    done = invoke("venv", "--installer", "pip", home=home)
    assert done.returncode == 0, done.stderr
    assert "(pip)" in done.stdout
    pip = subprocess.run(
        [str(home / "venv-mlx" / "bin" / "python"), "-m", "pip", "--version"], capture_output=True, text=True
    )
    assert pip.returncode == 0


def test_preflight_json_has_stable_ids_and_exits_0_here(home):
    done = invoke("preflight", "--json", home=home)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [c["id"] for c in report["checks"]] == [
        "system.os",
        "system.python",
        "system.folders",
        "system.disk",
        "system.ram",
    ]
    assert {c["status"] for c in report["checks"]} <= {"ok", "warning"}


def test_preflight_errors_go_to_stderr_and_exit_1(home, fake_python):
    done = invoke("preflight", "--python", str(fake_python("3.9.6")), home=home)
    assert done.returncode == 1
    assert "[error] Python for the venv: Python 3.9.6" in done.stderr
    assert "[ok] Operating system" in done.stdout
    assert done.stdout.strip().endswith("Found issues in 1 check.")


def test_a_terminal_gets_glyphs_and_colour_but_no_colour_with_no_color(home):
    env = clean_env(home)
    env.pop("NO_COLOR")
    coloured = pexpect.run(f"{BIN / 'invoke'} preflight", cwd=str(ROOT), env=env, encoding="utf-8")
    assert "✓" in coloured and "\x1b[" in coloured and "[ok]" not in coloured
    plain = pexpect.run(f"{BIN / 'invoke'} preflight", cwd=str(ROOT), env={**env, "NO_COLOR": "1"}, encoding="utf-8")
    assert "\x1b[" not in plain and "✓ Operating system" in plain
