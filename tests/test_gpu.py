"""The CUDA backend's first-run behaviour: the kernel cache's place, the notice before the first
generation, and the warm-up step. No NVIDIA GPU here: where a path needs one, the runtime is told it
has CUDA and everything else (MLX on the CPU, the tiny model, the real CLI) runs for real."""

import json
import shutil

import pytest

from .support.helpers import invoke

pytestmark = pytest.mark.e2e
COMPILING = "compiling GPU kernels (first run only)..."


def test_kernels_are_kept_under_the_cache_folder_by_mlx_version_unless_the_user_chose(mlx_run, tmp_path):
    code = """
import json, os
from importlib.metadata import version
from mlxtasks.runtime import gpu, warmup
imported = os.environ.get("MLX_PTX_CACHE_DIR")
gpu.is_cuda = lambda: False
warmup.main()  # an entry point: it sets the default first
print(json.dumps({"imported": imported, "set": os.environ.get("MLX_PTX_CACHE_DIR"), "mlx": version("mlx"),
                  "theirs": str(gpu.kernel_cache({"MLX_PTX_CACHE_DIR": "/mine"}))}))
"""
    done = mlx_run(code, XDG_CACHE_HOME=str(tmp_path / "cache"))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.splitlines()[-1])
    assert answer["imported"] is None, "importing mlxtasks.runtime changed the environment"
    assert answer["set"] == str(tmp_path / "cache" / "mlxtasks" / "mlx-kernels" / answer["mlx"])
    assert answer["theirs"] == "/mine"
    done = mlx_run(code, MLX_PTX_CACHE_DIR="/kept")
    assert json.loads(done.stdout.splitlines()[-1])["set"] == "/kept"


def test_warmup_generates_with_a_4bit_model_and_announces_the_compile_once(mlx_run):
    code = """
from mlxtasks.runtime import gpu, warmup
gpu.is_cuda = lambda: True
warmup.main()
gpu.before_generation()
"""
    done = mlx_run(code)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["seconds"] > 0
    assert done.stderr.splitlines().count(COMPILING) == 1


def test_a_one_shot_answer_on_cuda_says_it_compiles_on_stderr_and_keeps_stdout_the_same(mlx_run, tiny_model):
    code = """
import json, sys, tempfile
from mlxtasks.runtime import chat, gpu
cuda = sys.argv[2] == "cuda"
gpu.is_cuda = lambda: cuda
spec = {"models": {"qwen7b": {"path": sys.argv[1], "sampling": {"temp": 0.0, "top_p": 1.0, "max_tokens": 6}}},
        "alias": "qwen7b", "overrides": {}, "rules": {}, "system": None, "seed": 0, "history": None, "ask": "hello"}
with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:
    json.dump(spec, handle)
    handle.flush()
    chat.main(["--spec", handle.name])
"""
    on_cuda, on_cpu = (mlx_run(code, tiny_model, backend) for backend in ("cuda", "cpu"))
    assert on_cuda.returncode == on_cpu.returncode == 0, on_cuda.stderr
    assert on_cuda.stderr.splitlines().count(COMPILING) == 1 and COMPILING not in on_cpu.stderr
    assert on_cuda.stdout == on_cpu.stdout and on_cuda.stdout.endswith("\n")


def test_warmup_is_a_step_of_setup_that_only_cuda_needs(bootstrapped, home):
    _, shared_home, _ = bootstrapped
    venv = str(shared_home / "venv-mlx")
    assert "[done] warmup: nothing to compile on the cpu backend" in invoke("warmup", "--venv", venv, home=home).stdout
    skipped = invoke("warmup", "--no-warmup", "--venv", venv, home=home)
    assert "[skipped] warmup: not run (--no-warmup)" in skipped.stdout
    forced = invoke("warmup", "--backend", "cuda13", "--venv", venv, home=home)
    assert forced.returncode == 0, forced.stderr
    assert "MLX in the venv sees no CUDA GPU, so nothing was compiled" in forced.stdout


def test_validate_deep_on_cuda_says_kernels_compile_before_loading_models(bootstrapped, tiny_model, home, tmp_path):
    _, shared_home, _ = bootstrapped
    models = tmp_path / "models"
    shutil.copytree(tiny_model, models / "qwen25-coder-7b")
    done = invoke(
        "validate",
        "--only",
        "models",
        "--deep",
        "--venv",
        str(shared_home / "venv-mlx"),
        "--models",
        str(models),
        home=home,
        INVOKE_MLX_BACKEND="cuda13",
    )
    assert COMPILING in done.stderr.splitlines()
    assert "load and generate" in done.stdout
