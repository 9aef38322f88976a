"""Embedding models on the tool side: the catalogue's kind, what fit counts for them (weights and a batch's
activations, no KV cache), how an installed model the catalogue does not know is judged one, and what
models.pull records."""

import json

import pytest

from mlxtasks import catalog, chat, config, fit, hub, inventory, store
from mlxtasks.errors import MlxTasksError
from mlxtasks.facts import GB
from mlxtasks.protocol import EMBED_MAX_TOKENS, Support

from .test_catalog import mac

EMBED = catalog.lookup("qwen3-embed-0.6b", catalog.BUILTIN)


def test_the_catalogue_has_an_embedding_model_and_every_entry_a_kind():
    assert EMBED is not None and EMBED.kind == "embedding" and EMBED.category == "embedding"
    assert {m.kind for m in catalog.BUILTIN} == {"chat", "embedding"}
    with pytest.raises(MlxTasksError, match=r"mlx.catalog.mine.kind' must be one of chat, embedding"):
        catalog.load({"mine": {"repo": "org/mine", "size_gb": 1, "kind": "rerank"}})
    mine = catalog.load(
        {"mine": {"repo": "org/mine-embed", "size_gb": 1, "kind": "embedding", "category": "embedding"}}
    )
    assert catalog.lookup("mine", mine).kind == "embedding"


def test_an_embedding_model_needs_its_weights_and_a_batch_not_a_kv_cache():
    weights = int(EMBED.size_gb * GB)
    need = EMBED.ram_bytes()
    assert need == EMBED.ram_bytes(32768)  # no cache grows with the context
    batch = fit.activation_bytes(EMBED.shape)
    assert need == int(weights * (1 + fit.OVERHEAD_FRACTION)) + fit.OVERHEAD_BYTES + batch
    assert batch < fit.kv_bytes(EMBED.shape, fit.MIN_CONTEXT)  # less than the chat model of its shape would need
    assert fit.largest_context(weights, EMBED.shape, 2 * GB) == EMBED_MAX_TOKENS
    assert fit.largest_context(weights, EMBED.shape, need - 1) == 0
    assert fit.verdict(weights, EMBED.shape, 2 * GB) == "yes, embedding inputs of up to 8,192 tokens"


def put(models, folder, config=None, manifest=None, files=()):
    (models / folder).mkdir(parents=True)
    (models / folder / "config.json").write_text(json.dumps(config or {"model_type": "qwen3"}))
    for name in files:
        (models / folder / name).write_text("{}")
    if manifest:
        (models / folder / store.MANIFEST).write_text(json.dumps(manifest))


def test_an_uncatalogued_model_is_an_embedding_model_by_manifest_files_architecture_or_name(tmp_path):
    put(tmp_path, "chatty")
    put(tmp_path, "recorded", manifest={"repo": "org/recorded", "kind": "embedding"})
    put(tmp_path, "sentences", files=["modules.json"])
    put(tmp_path, "headless", config={"model_type": "qwen3", "architectures": ["Qwen3Model"]})
    put(tmp_path, "Qwen3-Embedding-4B-4bit-DWQ")
    put(tmp_path, "with-head", config={"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"]})
    kinds = {m.folder: m.kind for m in store.uncatalogued_models(tmp_path, catalog.BUILTIN)}
    assert kinds == {
        "chatty": "chat",
        "recorded": "embedding",
        "sentences": "embedding",
        "headless": "embedding",
        "Qwen3-Embedding-4B-4bit-DWQ": "embedding",
        "with-head": "chat",
    }


def test_a_manifest_with_an_unknown_kind_is_damaged(tmp_path):
    put(tmp_path, "odd", manifest={"repo": "org/odd", "kind": "rerank"})
    put(tmp_path, "fine", manifest={"repo": "org/fine", "kind": "embedding"})
    assert store.read_manifest(tmp_path / "odd") is None and store.read_manifest(tmp_path / "fine")


def test_a_repo_pulled_by_id_is_an_embedding_model_when_its_name_says_so():
    assert catalog.from_repo("mlx-community/Qwen3-Embedding-8B-4bit-DWQ", 0).kind == "embedding"
    assert catalog.from_repo("mlx-community/Qwen3-8B-4bit", 0).kind == "chat"


def test_chat_refuses_an_embedding_model_and_leaves_it_out_of_the_routers_choices(tmp_path):
    with pytest.raises(MlxTasksError, match="qwen3-embed-0.6b is an embedding model") as caught:
        chat.chat_only(EMBED)
    assert "invoke serve qwen3-embed-0.6b" in caught.value.fix
    put(tmp_path, "chatty")
    put(tmp_path, "Qwen3-Embedding-0.6B-4bit")
    settings = config.resolve({}, home=tmp_path, models=str(tmp_path))
    assert list(chat.installed(settings)[0]) == ["chatty"]


def test_pull_lets_an_embedding_model_tagged_feature_extraction_through_and_still_refuses_a_chat_one():
    known = Support("0.32.2", "0.32.4", ("qwen3",), ("affine",))
    config = {"model_type": "qwen3"}
    hub.check_runnable(hub.Plan(EMBED, "abc", (), config, "feature-extraction"), known)  # no refusal
    chatty = catalog.from_repo("org/Qwen3-4B", 1.0)
    with pytest.raises(MlxTasksError, match="is a feature-extraction model"):
        hub.check_runnable(hub.Plan(chatty, "abc", (), config, "feature-extraction"), known)


def test_models_info_and_list_give_an_embedding_model_no_generation_speed_or_sampling(tmp_path):
    lines = inventory.info_lines(EMBED, tmp_path, mac(16))
    assert "speed     it embeds; it does not generate (serve's embeddings: docs/performance.md)" in lines
    assert "fits      yes, embedding inputs of up to 8,192 tokens" in lines
    assert not [line for line in lines if line.startswith("sampling")]
    assert inventory._speed(EMBED, mac(16), [])["speed_short"] == "-"
