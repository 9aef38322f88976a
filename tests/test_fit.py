"""Fit from config numbers: weights + KV cache at the context + overhead, for dense, grouped-query,
sliding-window and mixture-of-experts models."""

from dataclasses import replace

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


def test_a_quantized_kv_cache_costs_bits_over_16_plus_a_scale_and_bias_per_group():
    shape = fit.from_config(QWEN25_7B)
    values = 2 * 4 * 128 * 28 * 32768  # keys and values of every layer at the whole context
    assert fit.kv_bytes(shape, 32768) == values * 2
    assert fit.kv_bytes(replace(shape, kv=fit.KV(8)), 32768) == values * (1 + 4 / 64)  # 53% of 16-bit
    assert fit.kv_bytes(replace(shape, kv=fit.KV(4)), 32768) == values * (0.5 + 4 / 64)  # 28%
    assert fit.kv_bytes(replace(shape, kv=fit.KV(4, 128)), 32768) == values * (0.5 + 4 / 128)


def test_a_quantized_cache_is_16_bit_until_quantized_kv_start_and_never_counts_less_than_then():
    shape = replace(fit.from_config(QWEN25_7B), kv=fit.KV(8, 64, 5000))
    assert fit.kv_bytes(shape, 4096) == fit.kv_bytes(fit.from_config(QWEN25_7B), 4096)  # not quantized yet
    at_start = fit.kv_bytes(fit.from_config(QWEN25_7B), 5000)  # the 16-bit cache just before mlx_lm quantizes it
    assert fit.kv_bytes(shape, 5001) == at_start and fit.kv_bytes(shape, 9411) == at_start
    assert fit.kv_bytes(shape, 9412) > at_start  # the quantized whole passes it
    sizes = [fit.kv_bytes(shape, n) for n in range(0, 20000, 97)]
    assert sizes == sorted(sizes)  # never shrinks, so largest_context's search holds
    assert fit.kv_bytes(replace(shape, kv=fit.KV(8, 64, 0)), 4096) == 2 * 4 * 128 * 28 * 4096 * (1 + 4 / 64)


def test_kv_bits_buys_context_in_the_same_memory():
    shape, weights = fit.from_config(QWEN25_7B), int(4.28 * GB)
    budget = fit.need(weights, shape, 8192)
    plain = fit.largest_context(weights, shape, budget)
    eight = fit.largest_context(weights, replace(shape, kv=fit.KV(8)), budget)
    four = fit.largest_context(weights, replace(shape, kv=fit.KV(4)), budget)
    assert plain == 8192 and eight == int(8192 * 2 / (1 + 4 / 64)) and four == int(8192 * 2 / (0.5 + 4 / 64))
    assert (
        fit.need(weights, replace(shape, kv=fit.KV(8)), eight)
        <= budget
        < fit.need(weights, replace(shape, kv=fit.KV(8)), eight + 1)
    )


@pytest.mark.parametrize(
    "config, why",
    [(GPT_OSS_20B, "a sliding window's rotating cache"), (dict(LLAMA2_7B, head_dim=80), "80 values per head")],
)
def test_kv_bits_is_not_counted_where_mlx_lm_cannot_quantize_the_cache(config, why):
    shape = fit.from_config(config)
    assert not replace(shape, kv=fit.KV(8)).quantized, why
    assert fit.kv_bytes(replace(shape, kv=fit.KV(8)), 65536) == fit.kv_bytes(shape, 65536)


def test_chat_and_serve_give_the_context_kv_bits_buys(tmp_path):
    import json

    from mlxtasks import chat, config, serve, store

    folder = tmp_path / "workspace" / "mlx" / "qwen25-coder-7b"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(QWEN25_7B))
    (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    budget = fit.need(store.size_on_disk(folder), fit.from_config(QWEN25_7B), 8192)
    plain = chat.installed(config.resolve({}, home=tmp_path), budget)[0]["qwen7b"]
    eight = chat.installed(config.resolve({}, home=tmp_path, kv_bits=8), budget)[0]["qwen7b"]
    assert (plain.context, plain.kv_bits) == (8192, 0)
    assert (eight.context, eight.kv_bits) == (int(8192 * 2 / (1 + 4 / 64)), 8)
    [served] = serve.served_models(config.resolve({"kv_bits": 4}, home=tmp_path), budget)
    assert served.kv_bits == 4 and served.context == int(8192 * 2 / (0.5 + 4 / 64)) and served.need <= budget
