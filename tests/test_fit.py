"""Fit from config numbers: weights + KV cache at the context + overhead, for dense, grouped-query,
sliding-window and mixture-of-experts models."""

import pytest

from mlxtasks import catalog, fit
from mlxtasks.facts import GB

from .support.helpers import ROOT

LLAMA2_7B = {
    "model_type": "llama",
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "hidden_size": 4096,
    "max_position_embeddings": 4096,
}  # every head has its own keys and values
QWEN25_7B = {
    "model_type": "qwen2",
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "hidden_size": 3584,
    "max_position_embeddings": 32768,
}
QWEN3_30B_A3B = {
    "model_type": "qwen3_moe",
    "num_hidden_layers": 48,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "head_dim": 128,
    "hidden_size": 2048,
    "num_experts": 128,
    "num_experts_per_tok": 8,
    "moe_intermediate_size": 768,
    "vocab_size": 151936,
    "max_position_embeddings": 262144,
}
GPT_OSS_20B = {
    "model_type": "gpt_oss",
    "num_hidden_layers": 24,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "hidden_size": 2880,
    "sliding_window": 128,
    "max_position_embeddings": 131072,
    "layer_types": ["sliding_attention", "full_attention"] * 12,
}
GEMMA3 = {
    "model_type": "gemma3",
    "vision_config": {},
    "text_config": {
        "num_hidden_layers": 62,
        "num_attention_heads": 32,
        "num_key_value_heads": 16,
        "head_dim": 128,
        "hidden_size": 5376,
        "sliding_window": 1024,
        "sliding_window_pattern": 6,
        "max_position_embeddings": 131072,
    },
}


def test_a_dense_model_keeps_keys_and_values_for_every_head():
    shape = fit.from_config(LLAMA2_7B)
    assert (shape.layers, shape.kv_heads, shape.head_dim, shape.active) == (32, 32, 128, 1.0)
    assert fit.kv_bytes(shape, 4096) == 2 * 32 * 128 * 2 * 32 * 4096  # 2 GiB: as much as a 4-bit 7B's weights


def test_grouped_query_attention_shares_keys_and_values_between_heads():
    shape = fit.from_config(QWEN25_7B)
    assert (shape.kv_heads, shape.head_dim) == (4, 128)
    assert fit.kv_bytes(shape, 32768) == 2 * 4 * 128 * 2 * 28 * 32768  # 1.9 GB at the whole context


def test_a_mixture_of_experts_reads_a_small_share_of_its_weights_per_token():
    shape = fit.from_config(QWEN3_30B_A3B)
    assert shape.active == pytest.approx(3.3 / 30.5, abs=0.02)  # "A3B": 3.3B of 30.5B parameters active
    assert fit.kv_bytes(shape, 4096) == 2 * 4 * 128 * 2 * 48 * 4096


@pytest.mark.parametrize("config, full, window", [(GPT_OSS_20B, 12, 128), (GEMMA3, 10, 1024)])
def test_sliding_window_layers_stop_growing_at_their_window(config, full, window):
    shape = fit.from_config(config)
    assert (shape.full_layers, shape.window) == (full, window)
    per_layer_token = 2 * shape.kv_heads * shape.head_dim * 2
    assert fit.kv_bytes(shape, 65536) == per_layer_token * (full * 65536 + (shape.layers - full) * window)


def test_the_catalogue_shapes_match_their_configs():
    assert catalog.find("qwen7b", catalog.BUILTIN).shape == fit.from_config(QWEN25_7B)
    moe = catalog.find("qwen3-30b", catalog.BUILTIN).shape
    assert moe.active == pytest.approx(fit.from_config(QWEN3_30B_A3B).active, abs=0.01)


def test_the_context_decides_the_fit_and_the_largest_context_that_fits():
    shape, weights = fit.from_config(QWEN25_7B), int(4.28 * GB)
    short, whole = fit.need(weights, shape, 4096), fit.need(weights, shape, 32768)
    assert whole - short == fit.kv_bytes(shape, 32768) - fit.kv_bytes(shape, 4096)
    assert fit.need(weights, shape) == short  # no context given: judged at fit.MIN_CONTEXT
    budget = short + fit.kv_bytes(shape, 10000) - fit.kv_bytes(shape, 4096)
    assert fit.largest_context(weights, shape, budget) == 10000
    assert fit.largest_context(weights, shape, 100 * GB) == 32768  # never past the model's own limit
    assert fit.largest_context(weights, shape, short - 1) == 0  # not even the least useful context fits


def test_an_unknown_shape_keeps_the_old_headroom():
    assert fit.need(10 * GB, fit.Shape()) == 11 * GB and fit.largest_context(GB, fit.Shape(), 100 * GB) == 0


def test_a_chat_asking_for_more_context_than_fits_is_capped_and_told_so(tmp_path):
    import json

    from mlxtasks import chat, config, store

    s = config.resolve({}, home=tmp_path, context=32768)
    folder = s.models / "qwen25-coder-7b"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(QWEN25_7B))
    (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    shape = fit.from_config(QWEN25_7B)
    budget = fit.need(store.size_on_disk(folder), shape, 8192)
    models, notes = chat.installed(s, budget)
    assert models["qwen7b"].context == 8192
    assert notes["qwen7b"] == (
        "(the context is capped at 8192 tokens: 32768 would not fit in this machine's memory with the model's weights)"
    )
    models, notes = chat.installed(config.resolve({}, home=tmp_path), budget)  # none asked: the largest that fits
    assert models["qwen7b"].context == 8192 and notes["qwen7b"] == ""
    models, _ = chat.installed(config.resolve({}, home=tmp_path, context=2000), budget)
    assert models["qwen7b"].context == 2000  # what fits is given as asked


def test_setup_md_states_the_rule_fit_py_applies():
    text = " ".join((ROOT / "docs" / "setup.md").read_text().split())
    assert (
        f"its weights plus {fit.OVERHEAD_FRACTION:.0%} and {fit.OVERHEAD_BYTES / 1e9:.1f} GB of overhead, plus its KV "
        f"cache at the context it runs with (at least {fit.MIN_CONTEXT:,} tokens"
    ) in text
    assert f"a model whose shape is unknown needs its weights plus {fit.UNKNOWN_HEADROOM - 1:.0%}" in text
