"""Fixtures for tests that need the MLX venv, a model or the hub.

Register them with `pytest_plugins = ["tests.support.fixtures"]` (in conftest.py) or import them
into a test module with `from .support.fixtures import *`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from . import smollm2
from .fake_hub import FakeHub
from .helpers import clean_env

__all__ = [
    "QWEN7B_REPO",
    "GATED_REPO",
    "LISTING",
    "mlx_python",
    "tiny_model",
    "fake_hub",
    "listing_hub",
    "mlx_run",
    "real_model",
]

QWEN7B_REPO = "mlx-community/Qwen2.5-Coder-7B-Instruct-4bit"
GATED_REPO = "meta-llama/Llama-3.2-1B-Instruct"  # gated on the real hub too
TINY_MODEL_SCRIPT = Path(__file__).with_name("tiny_model.py")


def _listed(repo: str, downloads: int, likes: int, day: str, model_type: str, **more) -> dict:
    """A model as the hub's listing gives it with every expand key mlxtasks asks for."""
    return {
        "id": repo,
        "downloads": downloads,
        "likes": likes,
        "lastModified": f"{day}T10:00:00.000Z",
        "config": {"model_type": model_type, "architectures": ["X"]},
        "pipeline_tag": "text-generation",
        **more,
    }


# The hub's listing: one tiny model that fits anywhere, one too big for any machine, one the venv cannot
# run, one vision model, and one of another author. Sizes from safetensors counts or usedStorage.
LISTING = [
    _listed(
        "mlx-community/Qwen3-Tiny-4bit",
        900,
        5,
        "2025-05-01",
        "qwen3",
        safetensors={"parameters": {"BF16": 10_000_000, "U32": 20_000_000}, "total": 30_000_000},
    ),
    _listed("mlx-community/Qwen3-Huge-4bit", 300, 40, "2025-07-01", "qwen3_moe", usedStorage=10**13),
    _listed("mlx-community/Qwen3-Next-4bit", 600, 20, "2025-09-01", "brand_new", usedStorage=10**8),
    _listed(
        "mlx-community/Qwen3-VL-4bit",
        100,
        1,
        "2025-08-01",
        "qwen3_vl",
        usedStorage=10**8,
        pipeline_tag="image-text-to-text",
    ),
    _listed("someone/qwen3-own-4bit", 50, 2, "2025-01-01", "qwen3", usedStorage=10**8),
]


@pytest.fixture(scope="session")
def mlx_python(bootstrapped) -> Path:
    """The interpreter of the session's real MLX venv (~/venv-mlx made by `sh bootstrap.sh --yes`)."""
    _, home, result = bootstrapped
    assert result.returncode == 0, result.stdout + result.stderr
    return home / "venv-mlx" / "bin" / "python"


@pytest.fixture(scope="session")
def tiny_model(mlx_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out like an mlx-community 4-bit qwen2 repo, with its weights in 2 shards."""
    out = tmp_path_factory.mktemp("tiny-model") / "model"
    done = subprocess.run(
        [str(mlx_python), str(TINY_MODEL_SCRIPT), str(out), "--shards", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.fixture
def fake_hub(tiny_model: Path) -> Iterator[FakeHub]:
    """A running FakeHub serving tiny_model as QWEN7B_REPO, and as GATED_REPO behind the gate."""
    with FakeHub({QWEN7B_REPO: tiny_model, GATED_REPO: tiny_model}) as hub:
        hub.faults.gated(GATED_REPO)
        yield hub


@pytest.fixture
def listing_hub() -> Iterator[FakeHub]:
    """A running FakeHub whose model listing (GET /api/models) holds LISTING; no repo files."""
    with FakeHub({}, LISTING) as hub:
        yield hub


@pytest.fixture
def mlx_run(mlx_python: Path, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run `python -c CODE ARGS...` in the MLX venv: `mlx_run(code, *args, timeout=300, **env)`.

    The environment is a new user's (helpers.clean_env) with every HF_* variable of this machine
    dropped, HF_HOME in tmp_path and Xet off, so huggingface_hub downloads over plain HTTP from
    whatever HF_ENDPOINT the caller passes (e.g. fake_hub.url).
    """
    home = tmp_path / "mlx-home"
    home.mkdir(exist_ok=True)
    base = {k: v for k, v in clean_env(home).items() if not k.startswith("HF_")}
    base.update(HF_HOME=str(home / "hf"), HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_PROGRESS_BARS="1")

    def run(code: str, *args: str, timeout: int = 300, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(mlx_python), "-c", code, *map(str, args)],
            env={**base, **env},
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def real_model(mlx_python: Path) -> Path:
    """SmolLM2-135M-Instruct (real weights, 4-bit) as an MLX model folder, cached between sessions."""
    return smollm2.real_model(mlx_python)
