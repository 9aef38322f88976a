"""The venv runs the code of the checkout it was set up from: an edit runs there without a version bump,
and a venv whose checkout is gone is noticed and set up again from this one by the next install."""

import shutil
import subprocess

import pytest

from mlxtasks.installer import find_uv

from .support.helpers import ROOT, clean_env, copy_checkout, invoke, run

pytestmark = pytest.mark.e2e


def test_an_edit_in_the_checkout_runs_in_the_venv_without_a_version_bump(bootstrapped):
    clone, home, _ = bootstrapped
    status = clone / "mlxtasks" / "status.py"
    original = status.read_text()
    edited = original.replace(
        'f"python    {platform.python_version()}"', 'f"python    {platform.python_version()} (edited)"'
    )
    assert edited != original
    try:
        status.write_text(edited)
        shown = run([str(home / "venv-mlx" / "bin" / "python"), "-m", "mlxtasks.status"], home, cwd=home)
        assert "(edited)" in shown.stdout, shown.stdout + shown.stderr
        again = run([str(clone / ".venv" / "bin" / "invoke"), "install"], home, cwd=clone)
        assert again.returncode == 0 and "[done] install:" in again.stdout, again.stdout + again.stderr
    finally:
        status.write_text(original)


def test_a_venv_whose_checkout_is_gone_is_set_up_from_this_one_once(bootstrapped, tmp_path):
    _, shared_home, _ = bootstrapped
    home, venv, old = tmp_path / "home", tmp_path / "venv", tmp_path / "old"
    home.mkdir()
    cache = {"UV_CACHE_DIR": str(shared_home / ".cache" / "uv")}  # warm from the session's setup
    assert invoke("venv", "--venv", str(venv), home=home, **cache).returncode == 0
    python = venv / "bin" / "python"
    subprocess.run(
        [find_uv(), "pip", "install", "--python", str(python), "--no-deps", "--editable", str(copy_checkout(old))],
        env=clean_env(home, **cache),
        capture_output=True,
        check=True,
    )
    shutil.rmtree(old)
    assert run([str(python), "-c", "import mlxtasks.runtime"], home, cwd=home).returncode != 0

    judged = invoke("validate", "--only", "packages", "--venv", str(venv), home=home, **cache)
    assert f"mlxtasks (runs the checkout {old}, which is gone, not {ROOT})" in judged.stdout + judged.stderr
    assert judged.returncode == 1 and "Fix: invoke install" in judged.stdout + judged.stderr

    done = invoke("install", "--venv", str(venv), home=home, **cache)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"mlxtasks (runs the checkout {old}, which is gone, not {ROOT})" in done.stdout
    where = run([str(python), "-c", "import mlxtasks.status as m; print(m.__file__)"], home, cwd=home)
    assert where.stdout.strip() == str(ROOT / "mlxtasks" / "status.py"), where.stderr
    again = invoke("install", "--venv", str(venv), home=home, **cache)
    assert again.returncode == 0 and "[done] install:" in again.stdout, again.stdout + again.stderr


def test_a_tool_side_installed_from_a_wheel_wants_the_same_files_in_the_venv(bootstrapped, tmp_path):
    _, shared_home, _ = bootstrapped
    env = clean_env(shared_home)  # its uv cache is warm from the session's setup
    source = copy_checkout(tmp_path / "source")

    uv = find_uv()
    assert uv, "uv is a dependency of mlxtasks"

    def install_source_into(name: str, *flags: str) -> str:
        python = tmp_path / name / "bin" / "python"
        if not python.exists():
            subprocess.run([uv, "venv", "--quiet", str(python.parent.parent)], env=env, check=True)
        subprocess.run(
            [uv, "pip", "install", "--quiet", "--python", str(python), *flags, str(source)], env=env, check=True
        )
        return str(python)

    tool, venv = install_source_into("tool"), install_source_into("venv", "--no-deps")
    judge = (
        "import sys; from pathlib import Path; from mlxtasks import install; own = install.own_origin(); "
        "versions, found = install.inspect(Path(sys.argv[1]), ['mlxtasks']); "
        "print(own.source, install.self_problem(versions['mlxtasks'], found, own))"
    )
    same = subprocess.run([tool, "-c", judge, venv], cwd=tmp_path, capture_output=True, text=True)
    assert same.stdout.split() == ["None", "None"], same.stderr  # a wheel install, holding the same files

    status = source / "mlxtasks" / "status.py"
    status.write_text(status.read_text() + "\n# built again\n")
    install_source_into("venv", "--no-deps", "--reinstall-package", "mlxtasks")
    differ = subprocess.run([tool, "-c", judge, venv], cwd=tmp_path, capture_output=True, text=True)
    assert differ.stdout.strip() == "None its files differ from this mlxtasks's", differ.stderr
