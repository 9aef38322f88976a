import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlxtasks import config, venv
from mlxtasks.errors import MlxTasksError
from mlxtasks.facts import python_info
from mlxtasks.installer import Installer, find_uv
from mlxtasks.steps import Command, RemoveVenv

PYTHON = python_info(sys.executable)


def make_venv(path, python=sys.executable):
    subprocess.run([python, "-m", "venv", "--without-pip", str(path)], check=True)
    return path


def test_a_missing_venv_is_planned_for_creation_with_uv_or_pip(tmp_path):
    s = config.resolve({}, home=tmp_path)
    state = venv.inspect(s.venv)
    assert not state.exists and not state.healthy
    uv_step = venv.plan(s, state, PYTHON, Installer("uv", "/x/uv"), False)
    assert uv_step.actions[0].argv[:3] == ("/x/uv", "venv", "--seed")
    pip_step = venv.plan(s, state, PYTHON, Installer("pip"), False)
    assert [a.argv[1:3] for a in pip_step.actions] == [("-m", "venv"), ("-m", "pip")]


@pytest.mark.slow
def test_a_healthy_venv_is_kept(tmp_path):
    path = make_venv(tmp_path / "venv-mlx")
    state = venv.inspect(path)
    assert state.healthy and state.python.version == PYTHON.version
    step = venv.plan(config.resolve({"venv": str(path)}, home=tmp_path), state, None, Installer("pip"), False)
    assert step.done and "healthy" in step.summary


def test_force_recreates_a_healthy_venv(tmp_path):
    path = make_venv(tmp_path / "venv-mlx")
    step = venv.plan(
        config.resolve({"venv": str(path)}, home=tmp_path), venv.inspect(path), PYTHON, Installer("pip"), True
    )
    assert isinstance(step.actions[0], RemoveVenv) and isinstance(step.actions[1], Command)


def test_a_venv_without_its_python_is_broken(tmp_path):
    path = make_venv(tmp_path / "venv-mlx")
    for name in ("python", "python3"):
        (path / "bin" / name).unlink()
    state = venv.inspect(path)
    assert state.problem == "its Python (bin/python) is missing"


def test_a_venv_whose_python_no_longer_runs_is_broken(tmp_path):
    path = make_venv(tmp_path / "venv-mlx")
    (path / "bin" / "python").unlink()
    (path / "bin" / "python").write_text("#!/bin/sh\nexit 127\n")
    (path / "bin" / "python").chmod(0o755)
    assert "no longer runs" in venv.inspect(path).problem


@pytest.mark.slow
def test_a_moved_venv_is_broken(tmp_path):
    path = make_venv(tmp_path / "old-place")
    moved = tmp_path / "venv-mlx"
    shutil.move(path, moved)
    assert "moved" in venv.inspect(moved).problem


@pytest.mark.slow
@pytest.mark.parametrize("version", ["3.12", "3.13"])
def test_newer_pythons_venvs_are_healthy_where_made_and_broken_when_moved(tmp_path, version):
    """From 3.12 the activate script names the folder twice, first through cygpath."""
    candidates = [
        shutil.which(f"python{version}"),
        *map(str, Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}")),
    ]
    python = next(
        (c for c in candidates if c and subprocess.run([c, "-c", "pass"], capture_output=True).returncode == 0), None
    )
    if not python:
        pytest.skip(f"no Python {version} on this machine")
    path = make_venv(tmp_path / "venv-mlx", python)
    assert "cygpath" in (path / "bin" / "activate").read_text()
    assert venv.inspect(path).problem is None
    shutil.move(path, tmp_path / "elsewhere")
    assert "moved" in venv.inspect(tmp_path / "elsewhere").problem


def test_a_broken_venv_is_not_replaced_without_force(tmp_path):
    path = make_venv(tmp_path / "venv-mlx")
    (path / "bin" / "python").unlink()
    s = config.resolve({"venv": str(path)}, home=tmp_path)
    with pytest.raises(MlxTasksError) as caught:
        venv.plan(s, venv.inspect(path), PYTHON, Installer("pip"), False)
    assert "is broken" in caught.value.message
    assert caught.value.fix == (
        f"recreate it: invoke venv --force --venv {path}, then invoke install --venv {path} "
        f"(or both: invoke setup --yes --venv {path})"
    )  # the folder given, not ~/venv-mlx


def test_a_folder_that_is_not_a_venv_is_never_replaced(tmp_path):
    path = tmp_path / "venv-mlx"
    path.mkdir()
    (path / "precious.txt").write_text("mine")
    s = config.resolve({"venv": str(path)}, home=tmp_path)
    with pytest.raises(MlxTasksError, match="not a virtual environment"):
        venv.plan(s, venv.inspect(path), PYTHON, Installer("pip"), True)


STRANGE = 'it\'s "quoted" (really)'


@pytest.mark.slow
def test_a_venv_uv_made_in_a_folder_with_quotes_and_parentheses_is_healthy_and_stays_so(tmp_path):
    path = tmp_path / STRANGE / "venv-mlx"
    uv = Installer("uv", find_uv())
    subprocess.run([uv.uv, "venv", "--quiet", "--python", sys.executable, str(path)], check=True)
    assert venv.inspect(path).problem is None
    s = config.resolve({"venv": str(path)}, home=tmp_path)
    assert venv.plan(s, venv.inspect(path), PYTHON, uv, False).done
    shutil.move(path, tmp_path / "elsewhere")
    assert "moved" in venv.inspect(tmp_path / "elsewhere").problem


def test_pip_is_not_asked_to_make_a_venv_its_activate_script_would_break(tmp_path):
    s = config.resolve({"venv": str(tmp_path / STRANGE)}, home=tmp_path)
    with pytest.raises(MlxTasksError) as caught:
        venv.plan(s, venv.inspect(s.venv), PYTHON, Installer("pip"), False)
    assert "breaks on the" in caught.value.message and "--installer uv" in caught.value.fix
    assert not s.venv.exists()


def test_a_venv_whose_activate_script_does_not_run_is_broken_not_moved(tmp_path):
    path = make_venv(tmp_path / "venv-mlx")
    (path / "bin" / "activate").write_text('VIRTUAL_ENV="unclosed\n')
    assert venv.inspect(path).problem == "its activate script is missing or does not run in a shell"
