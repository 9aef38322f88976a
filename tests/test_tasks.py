"""The task layer: setup's pre-task wiring, option inheritance, retries, and output style."""

import subprocess
import sys

import pytest
from invoke import Collection, Context, MockContext, Program, Result

from mlxtasks.errors import MlxTasksError
from mlxtasks.locks import setup_lock
from mlxtasks.steps import Command, Outcome, summary
from mlxtasks.tasks import _common, ns, venv
from mlxtasks.tasks.setup import setup

from .support.helpers import BIN, ROOT, clean_env, invoke, run

SETUP_STEPS = {"venv", "install", "workspace", "validate", "warmup"}


@pytest.mark.slow
def test_mounted_in_another_collection_a_dry_setup_reaches_every_step_and_runs_nothing(tmp_path, monkeypatch):
    """A task library is mounted as Collection(mlx=ns); setup's options reach its steps as arguments, so a
    MockContext, which fails on any command, sees none, and HOME stays empty."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SHELL", "/bin/bash")
    mounted = Collection(mlx=ns)["mlx.setup"]
    outcomes = mounted(MockContext(), dry_run=True, yes=True)
    assert {o.name for o in outcomes} == SETUP_STEPS | {"shell (bash)"}
    assert {o.kind for o in outcomes} <= {"dry", "done"}
    assert [o.name for o in outcomes if o.kind == "dry"][:2] == ["venv", "install"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_program_that_mounts_the_collection_passes_dry_run_to_every_step(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SHELL", "/bin/bash")
    Program(namespace=Collection(mlx=ns)).run(["outer", "mlx.setup", "--dry-run", "--yes"], exit=False)
    out = capsys.readouterr().out
    for name in ("venv", "install", "shell (bash)", "validate"):
        assert f"[would] {name}:" in out
    assert out.endswith("Dry run: nothing was changed.\n")
    assert list(tmp_path.iterdir()) == []


def test_a_broken_catalogue_stops_setup_before_its_first_step(tmp_path, monkeypatch, capsys):
    from invoke import Config, Exit

    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(Exit):
        setup(MockContext(config=Config(overrides={"mlx": {"catalog": ["qwen7b"]}})), dry_run=True)
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("[error] Config key 'mlx.catalog' must be a section of models")


@pytest.mark.slow
def test_the_documented_tasks_py_of_another_project_mounts_a_dry_setup_that_changes_nothing(tmp_path):
    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    home.mkdir()
    code = (ROOT / "docs" / "configuration.md").read_text().split("```python\n", 1)[1].split("```", 1)[0]
    (project / "tasks.py").write_text(code)
    listed = run([str(BIN / "invoke"), "--list"], home, cwd=project)
    assert "mlx.setup" in listed.stdout and "mlx.models.pull" in listed.stdout, listed.stderr
    done = run([str(BIN / "invoke"), "mlx.setup", "--dry-run", "--yes"], home, cwd=project, SHELL="/bin/bash")
    assert done.returncode == 0 and done.stdout.endswith("Dry run: nothing was changed.\n"), done.stderr
    assert list(home.iterdir()) == []


def test_setup_lists_a_skipped_step_as_skipped_not_as_fine():
    lines = summary(
        [Outcome("done", "venv", "ready"), Outcome("skipped", "warmup", "not run (--no-warmup)")], dry=False
    )
    assert lines[1:3] == ["Already fine: venv.", "Skipped: warmup (not run (--no-warmup))."]
    assert summary([Outcome("changed", "venv", "created")], dry=True) == ["Dry run: nothing was changed."]


def test_a_failing_network_step_is_retried_then_reported():
    failure = Result(exited=1, stderr="error: connection reset\n")
    c = MockContext(run={"uv pip install x": [failure, failure, failure]})
    command = Command(
        ("uv", "pip", "install", "x"),
        tries=3,
        delay=0,
        failure="Installing failed after 3 tries.",
        fix="invoke install",
    )
    with pytest.raises(MlxTasksError) as caught:
        _common.perform(c, command)
    assert caught.value.message == "Installing failed after 3 tries. Last error: error: connection reset"
    assert c.run.call_count == 3


def test_a_failure_that_no_retry_can_fix_is_raised_after_one_try():
    c = MockContext(run={"uv pip install x": [Result(exited=1, stderr="error: No solution found"), Result()]})
    hopeless = MlxTasksError("No release fits.", fix="invoke preflight")
    command = Command(
        ("uv", "pip", "install", "x"),
        tries=3,
        delay=0,
        give_up=lambda output: hopeless if "No solution" in output else None,
    )
    with pytest.raises(MlxTasksError) as caught:
        _common.perform(c, command)
    assert caught.value is hopeless and c.run.call_count == 1


def test_a_step_that_succeeds_on_a_later_try_is_fine():
    c = MockContext(run={"uv pip install x": [Result(exited=1, stderr="503"), Result()]})
    _common.perform(c, Command(("uv", "pip", "install", "x"), tries=3, delay=0))
    assert c.run.call_count == 2


def test_a_task_failure_prints_one_sentence_and_the_fix_and_exits_1(tmp_path, monkeypatch, capsys):
    from invoke import Exit

    monkeypatch.setenv("HOME", str(tmp_path))
    c = Context()
    with pytest.raises(Exit) as caught:
        venv.create(c, installer="conda")
    assert caught.value.code == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "[error] --installer must be one of auto, uv, pip, got 'conda'.",
        "  Fix: pass one of auto, uv, pip to --installer",
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    """`invoke validate --list | head -1`: the pipe closes before the task has printed everything."""
    child = subprocess.Popen(
        [str(BIN / "invoke"), "validate", "--list"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(tmp_path),
    )
    child.stdout.close()  # the reader is gone before the first line is written
    assert child.wait(timeout=60) == 141  # as a shell says of a command SIGPIPE ended (`yes | head`): not a success
    assert child.stderr.read() == b""


@pytest.mark.slow
@pytest.mark.parametrize("dont_write", ["", "1"])
def test_the_mlxtasks_program_leaves_the_bytecode_of_what_a_task_imports_unless_python_is_told_not_to(
    tmp_path, dont_write
):
    """Invoke turns bytecode off for every run; a one-shot would then compile the modules it imports each time."""
    pycache = tmp_path / "pyc"
    env = {k: v for k, v in clean_env(tmp_path).items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(
        [str(BIN / "mlxtasks"), "models.list", "--models", str(tmp_path / "none")],
        capture_output=True,
        env={**env, "PYTHONPYCACHEPREFIX": str(pycache), **({"PYTHONDONTWRITEBYTECODE": "1"} if dont_write else {})},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    written = {p.name.split(".")[0] for p in pycache.rglob("*.pyc") if "mlxtasks" in p.parts}
    assert ("inventory" in written) == (not dont_write)  # imported by the task, after Invoke's start


def all_tasks(collection: Collection):
    yield from collection.tasks.values()
    for child in collection.collections.values():
        yield from all_tasks(child)


def test_minus_v_means_verbose_on_every_task_and_nothing_else():
    meanings = {arg.name for t in all_tasks(ns) for arg in t.get_arguments() if "v" in arg.names}
    assert meanings == {"verbose"}
    assert "v" not in next(arg for arg in setup.get_arguments() if arg.name == "venv").names


@pytest.mark.slow
def test_setup_refuses_a_wrong_option_before_any_step_runs(home):
    done = invoke("setup", "--installer", "conda", "--yes", home=home, timeout=120)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "[error] --installer must be one of auto, uv, pip, got 'conda'.",
        "  Fix: pass one of auto, uv, pip to --installer",
    ]
    assert done.stdout == "" and list(home.iterdir()) == []


HOLD_SETUP_LOCK = """
import sys, time
from pathlib import Path
from mlxtasks.locks import hold_until_exit
hold_until_exit(Path(sys.argv[1]), "invoke setup")
print("held", flush=True)
sys.stdin.read()
"""


@pytest.mark.slow
def test_a_second_setup_at_once_is_refused_until_the_first_ends(home):
    lock = setup_lock(home / "venv-mlx")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_SETUP_LOCK, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "held\n"
        done = invoke("setup", "--yes", home=home, timeout=120)
        assert done.returncode == 1 and done.stdout == "" and list(home.iterdir()) == []
        assert done.stderr.splitlines() == [
            f"[error] Another invoke setup is running (pid {holder.pid}).",
            "  Fix: wait for it to finish, then run invoke setup again",
        ]
    finally:
        holder.communicate(timeout=30)
    after = subprocess.run(
        [sys.executable, "-c", HOLD_SETUP_LOCK, str(lock)], input="", capture_output=True, text=True, timeout=30
    )
    assert after.stdout == "held\n", after.stderr


@pytest.mark.slow
def test_validate_after_another_task_in_the_same_run_still_runs_every_group(home):
    """No state passes between tasks: `invoke workspace validate` once skipped the checks that import MLX."""
    done = invoke("workspace", "validate", home=home, timeout=120)
    output = done.stdout + done.stderr
    assert "were skipped" not in output
    assert "mlx_lm imports: skipped: the venv is missing or broken" in output
