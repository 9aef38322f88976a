"""`invoke setup` for real: a fresh clone, the README's first command, real installs from the index,
all with HOME in a temporary folder."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .support.helpers import ROOT, copy_checkout, invoke, run, tree

pytestmark = pytest.mark.e2e


def test_bootstrap_sets_up_a_venv_that_runs_mlx(bootstrapped):
    clone, home, done = bootstrapped
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[changed] venv: create" in done.stdout and "[changed] install: install" in done.stdout
    python = home / "venv-mlx" / "bin" / "python"
    probe = "import mlx.core as mx, mlx_lm; print(mx.sum(mx.array([1, 2, 3, 4])).item(), mx.default_device())"
    answer = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert answer[0] == "10" and "cpu" in answer[1].lower()
    assert (home / "workspace" / "mlx").is_dir()


def _installed(home: Path) -> dict[str, float]:
    site = next((home / "venv-mlx" / "lib").glob("python3.*/site-packages"))
    return {p.name: p.stat().st_mtime for p in site.glob("*.dist-info")}


def test_a_second_run_reports_every_step_done_and_installs_nothing(bootstrapped):
    clone, home, _ = bootstrapped
    before = _installed(home)
    done = run([str(clone / ".venv" / "bin" / "invoke"), "setup", "--yes"], home, cwd=clone)
    assert done.returncode == 0, done.stderr
    for step in ("venv", "install", "workspace"):
        assert f"[done] {step}:" in done.stdout
    assert "Changed: nothing" in done.stdout
    assert "the checks that import MLX were skipped" in done.stdout and "Checks passed:" in done.stdout
    assert _installed(home) == before


def test_the_installed_console_script_runs_the_same_tasks_from_any_folder(bootstrapped, tmp_path):
    _, home, _ = bootstrapped
    mlxtasks = home / "venv-mlx" / "bin" / "mlxtasks"
    done = run([str(mlxtasks), "setup", "--yes"], home, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Changed: nothing" in done.stdout
    listed = run([str(mlxtasks), "--list"], home, cwd=tmp_path).stdout
    assert "preflight" in listed and "setup" in listed


def test_dry_run_on_a_fresh_home_creates_nothing(home):
    for flags in (["setup", "--dry-run"], ["--dry", "setup"]):
        done = invoke(*flags, home=home)
        assert done.returncode == 0, done.stderr
        assert "[would] venv: create" in done.stdout
        assert "[would] install: install" in done.stdout and "[would] workspace: create" in done.stdout
        assert "Dry run: nothing was changed." in done.stdout
        assert tree(home) == []


@pytest.mark.parametrize(
    "args, sentence",
    [
        (["--installer", "conda"], "--installer must be one of auto, uv, pip, got 'conda'."),
        (
            ["--python", "/nonexistent/python3.12"],
            "The Python '/nonexistent/python3.12' given with --python does not exist.",
        ),
        (["--venv", "/sys/venv-mlx"], "Cannot create or write /sys/venv-mlx"),
    ],
)
def test_bad_input_is_one_sentence_and_a_fix_and_creates_nothing(home, args, sentence):
    done = invoke("setup", "--yes", *args, home=home)
    assert done.returncode == 1
    assert sentence in done.stderr and "Fix:" in done.stderr
    assert "Traceback" not in done.stderr
    assert tree(home) == []


def test_a_python_that_is_too_old_is_refused_before_anything_is_made(home, fake_python):
    old = fake_python("3.10.14")
    done = invoke("setup", "--yes", "--python", str(old), home=home)
    assert done.returncode == 1
    assert f"Python 3.10.14 at {old} is too old" in done.stderr
    assert tree(home) == []


def test_a_wrong_type_in_the_users_config_file_names_the_key(home):
    (home / ".invoke.yaml").write_text("mlx:\n  min_disk_gb: lots\n")
    done = invoke("setup", "--yes", home=home)
    assert done.returncode == 1
    assert "Config key 'mlx.min_disk_gb' must be a number, got 'lots'." in done.stderr
    assert tree(home) == [".invoke.yaml"]


def _bare_path(tmp_path: Path, python: Path) -> str:
    """A PATH with the basic tools bootstrap.sh needs and `python` as the only python3."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "dirname", "uname", "rm"):
        os.symlink(shutil.which(tool) or tool, bin_dir / tool)
    os.symlink(python, bin_dir / "python3")
    return str(bin_dir)


def test_bootstrap_on_a_machine_with_only_an_old_python_explains_the_fix(home, tmp_path, fake_python):
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "bootstrap.sh", checkout)
    shutil.copy(ROOT / "scripts" / "lib.sh", checkout / "scripts")
    (checkout / "mlxtasks" / "data").mkdir(parents=True)
    shutil.copy(ROOT / "mlxtasks" / "data" / "python-versions", checkout / "mlxtasks" / "data")
    path = _bare_path(tmp_path, fake_python("3.9.6"))
    done = run(["sh", "bootstrap.sh"], home, cwd=checkout, PATH=path)
    assert done.returncode == 1
    assert "No usable Python found:" in done.stderr and "Python 3.9.6 is too old" in done.stderr
    assert "brew install python@3.12" in done.stderr and "sh bootstrap.sh --python" in done.stderr
    assert not (checkout / ".venv").exists() and tree(home) == []


def test_a_moved_checkout_gets_its_tool_environment_made_again(tmp_path):
    """.venv's scripts name the folder it was made in: after a move, bootstrap.sh makes it again."""
    home = tmp_path / "home"
    home.mkdir()
    first = copy_checkout(tmp_path / "first")
    assert run(["sh", "bootstrap.sh", "--dry-run"], home, cwd=first).returncode == 0
    moved = first.rename(tmp_path / "moved")
    done = run(["sh", "bootstrap.sh", "--dry-run"], home, cwd=moved)
    assert done.returncode == 0, done.stderr
    assert "was made for a checkout that is gone (moved?); making it again" in done.stderr
    assert "Dry run: nothing was changed." in done.stdout
    assert (moved / ".venv" / "bin" / "invoke").read_text().startswith(f"#!{moved}/.venv/bin/python")
