"""The task layer: setup's pre-task wiring, option inheritance, retries, and output style."""

import subprocess
import sys

import pytest
from invoke import Collection, Context, MockContext, Program, Result, task

from mlxtasks.cli import program
from mlxtasks.errors import MlxTasksError
from mlxtasks.locks import setup_lock
from mlxtasks.steps import Command
from mlxtasks.tasks import _common, install, ns, preflight, shell, venv, workspace
from mlxtasks.tasks.executor import SharedOptionsExecutor
from mlxtasks.tasks.setup import check_options, setup
from mlxtasks.tasks.validate import validate
from mlxtasks.tasks.warmup import warmup

from .support.helpers import BIN, ROOT, clean_env, invoke


def test_setup_runs_the_steps_in_order_as_pre_tasks():
    assert setup.pre == [check_options, preflight.check, venv.create, install.packages, workspace.create, shell.install, validate, warmup]
    assert {"preflight", "venv", "install", "workspace", "shell"} <= set(ns.collections)


def test_the_project_and_the_cli_use_the_option_sharing_executor():
    text = (ROOT / "invoke.yaml").read_text()
    assert "executor_class: mlxtasks.tasks.executor.SharedOptionsExecutor" in text
    assert program.executor_class is SharedOptionsExecutor


def test_pre_tasks_inherit_the_options_they_share_with_their_caller():
    seen = {}

    @task
    def step(c, yes=False, python=None):
        seen["step"] = (yes, python)

    @task
    def other(c, dry_run=False):
        seen["other"] = dry_run

    @task(pre=[step, other])
    def top(c, yes=False, dry_run=False, python=None):
        seen["top"] = (yes, dry_run, python)

    Program(namespace=Collection(top, step, other), executor_class=SharedOptionsExecutor).run(
        ["prog", "top", "--yes", "--dry-run", "--python", "/x/python"], exit=False)
    assert seen == {"step": (True, "/x/python"), "other": True, "top": (True, True, "/x/python")}


def test_a_failing_network_step_is_retried_then_reported():
    failure = Result(exited=1, stderr="error: connection reset\n")
    c = MockContext(run={"uv pip install x": [failure, failure, failure]})
    command = Command(("uv", "pip", "install", "x"), tries=3, delay=0, failure="Installing failed after 3 tries.",
                      fix="invoke install")
    with pytest.raises(MlxTasksError) as caught:
        _common.perform(c, command)
    assert caught.value.message == "Installing failed after 3 tries. Last error: error: connection reset"
    assert c.run.call_count == 3


def test_a_failure_that_no_retry_can_fix_is_raised_after_one_try():
    c = MockContext(run={"uv pip install x": [Result(exited=1, stderr="error: No solution found"), Result()]})
    hopeless = MlxTasksError("No release fits.", fix="invoke preflight")
    command = Command(("uv", "pip", "install", "x"), tries=3, delay=0,
                      give_up=lambda output: hopeless if "No solution" in output else None)
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
    c.config.load_collection(ns.configuration())
    with pytest.raises(Exit) as caught:
        venv.create(c, installer="conda")
    assert caught.value.code == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["[error] --installer must be one of auto, uv, pip, got 'conda'.",
                                "  Fix: pass one of auto, uv, pip to --installer"]
    assert list(tmp_path.iterdir()) == []


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    """`invoke validate --list | head -1`: the pipe closes before the task has printed everything."""
    child = subprocess.Popen([str(BIN / "invoke"), "validate", "--list"], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=clean_env(tmp_path))
    child.stdout.close()  # the reader is gone before the first line is written
    assert child.wait(timeout=60) == 0
    assert child.stderr.read() == b""


def all_tasks(collection: Collection):
    yield from collection.tasks.values()
    for child in collection.collections.values():
        yield from all_tasks(child)


def test_minus_v_means_verbose_on_every_task_and_nothing_else():
    meanings = {arg.name for t in all_tasks(ns) for arg in t.get_arguments() if "v" in arg.names}
    assert meanings == {"verbose"}
    assert "v" not in next(arg for arg in setup.get_arguments() if arg.name == "venv").names


def test_setup_refuses_a_wrong_option_before_any_step_runs(home):
    done = invoke("setup", "--installer", "conda", "--yes", home=home, timeout=120)
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["[error] --installer must be one of auto, uv, pip, got 'conda'.",
                                        "  Fix: pass one of auto, uv, pip to --installer"]
    assert done.stdout == "" and list(home.iterdir()) == []


def test_setup_lists_a_skipped_step_as_skipped_not_as_fine(capsys):
    earlier = list(_common.JOURNAL)
    _common.JOURNAL.clear()
    try:
        _common.record("done", "venv", "ready")
        warmup.body(MockContext(), warmup=False)
        setup.body(MockContext())
    finally:
        _common.JOURNAL[:] = earlier
    out = capsys.readouterr().out
    assert "[skipped] warmup: not run (--no-warmup)" in out
    assert "Already fine: venv.\nSkipped: warmup (not run (--no-warmup)).\n" in out


HOLD_SETUP_LOCK = """
import sys, time
from pathlib import Path
from mlxtasks.locks import hold_until_exit
hold_until_exit(Path(sys.argv[1]), "invoke setup")
print("held", flush=True)
sys.stdin.read()
"""


def test_a_second_setup_at_once_is_refused_until_the_first_ends(home):
    lock = setup_lock(home / "venv-mlx")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_SETUP_LOCK, str(lock)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        done = invoke("setup", "--yes", home=home, timeout=120)
        assert done.returncode == 1 and done.stdout == "" and list(home.iterdir()) == []
        assert done.stderr.splitlines() == [f"[error] Another invoke setup is running (pid {holder.pid}).",
                                            "  Fix: wait for it to finish, then run invoke setup again"]
    finally:
        holder.communicate(timeout=30)
    after = subprocess.run([sys.executable, "-c", HOLD_SETUP_LOCK, str(lock)], input="", capture_output=True,
                           text=True, timeout=30)
    assert after.stdout == "held\n", after.stderr
