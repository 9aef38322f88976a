"""`invoke validate` against a real venv, healthy and then broken on purpose, one fault at a time."""

import json
import os
import shutil
import subprocess

import pytest

from mlxtasks import registry

from .support.helpers import invoke
from .test_validate import make_model

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def breakable(bootstrapped, tmp_path_factory):
    """A set-up HOME of its own (the shared one must stay healthy), installed from the warm uv cache."""
    _, shared_home, _ = bootstrapped
    home = tmp_path_factory.mktemp("breakable") / "home"
    home.mkdir()
    cache = {"UV_CACHE_DIR": str(shared_home / ".cache" / "uv")}
    done = invoke("setup", "--yes", home=home, **cache)
    assert done.returncode == 0, done.stdout + done.stderr
    return home, cache


def checks(done) -> dict:
    return {c["id"]: c for c in json.loads(done.stdout)["checks"]}


def uv(*args):
    from mlxtasks.installer import find_uv

    subprocess.run([find_uv(), "pip", *args], check=True, capture_output=True)


def test_setup_ends_with_the_validator(bootstrapped):
    _, _, done = bootstrapped
    assert "Checks passed:" in done.stdout and "Ready" in done.stdout


def test_a_healthy_install_passes_every_check_with_the_cpu_backend(breakable):
    home, _ = breakable
    done = invoke("validate", "--json", home=home)
    assert done.returncode == 0, done.stdout + done.stderr
    found = checks(done)
    ids = {i for c in registry.for_validate() if not c.per_model for i in c.ids}
    assert ids <= set(found), ids - set(found)
    assert {c["status"] for c in found.values()} == {"ok"}, [c for c in found.values() if c["status"] != "ok"]
    assert "CPU backend" in found["accelerator.device"]["message"]
    assert all("seconds" in c for c in found.values())


def test_the_probes_leave_bytecode_in_the_venv_even_where_python_is_told_not_to(breakable):
    home, _ = breakable
    site = next((home / "venv-mlx" / "lib").glob("python3.*/site-packages"))
    for package in ("mlx_lm", "transformers"):
        shutil.rmtree(site / package / "__pycache__", ignore_errors=True)
    done = invoke("validate", "--only", "mlx-lm", home=home, PYTHONDONTWRITEBYTECODE="1")
    assert done.returncode == 0, done.stdout + done.stderr
    for package in ("mlx_lm", "transformers"):
        assert list((site / package / "__pycache__").glob("__init__.*.pyc")), package


def test_quiet_prints_only_the_summary_when_all_is_well(breakable):
    home, _ = breakable
    done = invoke("validate", "--quiet", "--only", "environment", home=home)
    assert done.returncode == 0
    assert done.stdout.splitlines() == ["Checks passed: 3/3", "Errors: 0", "Warnings: 0", "Ready: no issues found."]
    assert done.stderr == ""


def test_list_and_a_bad_group(breakable):
    home, _ = breakable
    assert "mlx-lm: mlx-lm.import, mlx-lm.api" in invoke("validate", "--list", home=home).stdout
    bad = invoke("validate", "--only", "gpu", home=home)
    assert bad.returncode == 1 and "--only must be one of" in bad.stderr


def test_removing_transformers_fails_the_packages_checks(breakable):
    home, cache = breakable
    python = str(home / "venv-mlx" / "bin" / "python")
    uv("uninstall", "--python", python, "transformers")
    try:
        done = invoke("validate", "--json", "--only", "packages", home=home)
        found = checks(done)
        assert done.returncode == 1
        assert "transformers missing" in found["packages.versions"]["message"]
        assert found["packages.versions"]["fix"] == "invoke install"
        assert "transformers" in found["packages.requirements"]["message"]
    finally:
        assert invoke("install", home=home, **cache).returncode == 0


def test_a_package_older_than_the_pin_fails(breakable):
    home, cache = breakable
    uv("install", "--python", str(home / "venv-mlx" / "bin" / "python"), "tiktoken==0.12.0")
    try:
        done = invoke("validate", "--only", "packages", home=home)
        assert done.returncode == 1
        assert "tiktoken 0.12.0" in done.stderr and "Fix: invoke install" in done.stderr
    finally:
        assert invoke("install", home=home, **cache).returncode == 0


def test_a_venv_without_its_interpreter_fails_and_skips_the_mlx_checks(breakable):
    home, _ = breakable
    python = home / "venv-mlx" / "bin" / "python"
    target = os.readlink(python)
    python.unlink()
    try:
        done = invoke("validate", "--json", home=home)
        found = checks(done)
        assert done.returncode == 1
        assert "its Python (bin/python) is missing" in found["environment.venv"]["message"]
        assert found["mlx.import"]["message"] == "skipped: the venv is missing or broken"
        assert "Traceback" not in done.stderr
    finally:
        os.symlink(target, python)


def test_a_stale_shell_block_fails_with_the_fix(breakable):
    home, _ = breakable
    rc = home / ".bashrc"
    original = rc.read_text()
    rc.write_text(original.replace("export MLX_MODELS_PATH=", "export MLX_MODELS_PATH=/old"))
    try:
        done = invoke("validate", "--only", "environment", home=home)
        assert done.returncode == 1
        assert "Shell block: out of date in" in done.stderr and "Fix: invoke shell.install" in done.stderr
    finally:
        rc.write_text(original)


def test_broken_models_fail_each_with_its_own_check(breakable):
    home, _ = breakable
    models = home / "workspace" / "mlx"
    good = make_model(models / "good-model")
    missing_shard = make_model(models / "qwen25-coder-7b")
    (missing_shard / "model-00002-of-00002.safetensors").unlink()
    truncated = make_model(models / "truncated")
    shard = truncated / "model-00001-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-1])
    no_tokenizer = make_model(models / "no-tokenizer")
    (no_tokenizer / "tokenizer.json").unlink()
    try:
        done = invoke("validate", "--json", "--only", "models", home=home)
        found = checks(done)
        assert done.returncode == 1
        assert found["models.good-model"]["status"] == "ok"
        assert "named by the index) is missing" in found["models.qwen25-coder-7b"]["message"]
        assert found["models.qwen25-coder-7b"]["fix"] == "invoke models.pull qwen7b --force"
        assert "header says" in found["models.truncated"]["message"]
        assert found["models.no-tokenizer"]["message"].startswith("no tokenizer files")
    finally:
        for folder in (good, missing_shard, truncated, no_tokenizer):
            subprocess.run(["rm", "-rf", str(folder)], check=True)


def test_status_shows_the_one_screen_view(breakable):
    home, _ = breakable
    done = invoke("status", home=home)
    assert done.returncode == 0, done.stderr
    assert f"venv      {home / 'venv-mlx'} (not active; run mlx-activate)" in done.stdout
    assert "mlx       0.32.4 (backend cpu)" in done.stdout
    assert f"shell     block installed in {home / '.bashrc'}" in done.stdout


def test_deep_loads_a_real_model_and_reports_tokens_per_second(breakable, tiny_model):
    home, _ = breakable
    folder = home / "workspace" / "mlx" / "qwen25-coder-7b"
    shutil.copytree(tiny_model, folder)
    try:
        done = invoke("validate", "--json", "--only", "models", "--deep", home=home)
        found = checks(done)
        assert done.returncode == 0, done.stdout + done.stderr
        assert found["models.qwen25-coder-7b"]["status"] == "ok"
        deep = found["models.qwen25-coder-7b.generate"]
        assert deep["status"] == "ok" and "tokens at" in deep["message"] and "tokens/s" in deep["message"]
    finally:
        shutil.rmtree(folder)
