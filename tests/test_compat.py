"""Judging a repo's config.json against what the venv's mlx-lm runs, before any weight is fetched."""

import pytest

from mlxtasks import compat, config
from mlxtasks.protocol import Support

KNOWN = Support("0.32.2", "0.32.4", ("gemma3", "llama", "mistral", "qwen2", "qwen3_moe"), ("affine", "mxfp4"))


@pytest.mark.parametrize(
    "config_json, pipeline, sentence, fix",
    [
        (
            {"model_type": "brand_new"},
            "",
            "is a brand_new model, and the venv's mlx-lm 0.32.2 has no module",
            "invoke install --upgrade",
        ),
        (
            {"model_type": "idefics3", "vision_config": {}},
            "",
            "is a vision model (idefics3): mlx-lm cannot run it",
            "mlx-vlm",
        ),
        (
            {"model_type": "qwen2", "quantization": {"bits": 4, "mode": "nvfp4"}},
            "",
            "quantized in the nvfp4 mode, which needs a newer mlx than the venv's 0.32.4",
            "invoke install --upgrade",
        ),
        (
            {"model_type": "qwen2"},
            "feature-extraction",
            "is a feature-extraction model, not one that writes text",
            "invoke models.list",
        ),
        ({}, "", "names no model_type", "invoke models.list"),
    ],
)
def test_what_mlx_lm_cannot_run_is_named_with_its_fix(config_json, pipeline, sentence, fix):
    found = compat.problem("org/x", config_json, KNOWN, pipeline)
    assert found is not None and sentence in found.message and fix in found.fix


@pytest.mark.parametrize(
    "config_json",
    [
        {"model_type": "qwen2", "quantization": {"group_size": 64, "bits": 4}},  # affine: the default mode
        {"model_type": "gemma3", "vision_config": {}},  # multimodal, but mlx-lm has a module that runs its text part
        {"model_type": "mistral", "quantization": {"mode": "mxfp4"}},
    ],
)
def test_what_it_runs_passes(config_json):
    assert compat.problem("org/x", config_json, KNOWN, "text-generation") is None


def test_the_venvs_answer_is_kept_per_version(tmp_path):
    s = config.resolve({}, home=tmp_path)
    assert compat.support(s) is None  # no venv: nothing to ask
    site = s.venv / "lib" / "python3.11" / "site-packages"
    for meta in ("mlx_lm-0.32.2.dist-info", "mlx-0.32.4.dist-info", "mlx_cpu-0.32.4.dist-info"):
        (site / meta).mkdir(parents=True)
    assert compat.versions(s.venv) == ("0.32.2", "0.32.4")
    cached = s.state / "support" / "mlx_lm-0.32.2-mlx-0.32.4.json"
    cached.parent.mkdir(parents=True)
    cached.write_text(KNOWN.to_json())
    assert compat.support(s) == KNOWN  # read back, the venv's Python (absent here) never asked
    (site / "mlx_lm-0.32.2.dist-info").rename(site / "mlx_lm-0.33.0.dist-info")
    assert compat.support(s) is None  # a new mlx-lm is asked again: here there is no Python to ask
