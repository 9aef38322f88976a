import pytest

from mlxtasks import catalog, hub
from mlxtasks.errors import MlxTasksError
from mlxtasks.facts import GB, GIB, HostFacts

SEED = {  # the seed's entries as the seed had them: (repo, folder, size, arch, category, also, sampling)
    "qwen7b": (
        "mlx-community/Qwen2.5-Coder-7B-Instruct-4bit",
        "qwen25-coder-7b",
        4.28,
        "qwen2",
        "code",
        ("qwen25-coder-7b",),
        0.7,
        0.8,
    ),
    "qwen32b": (
        "mlx-community/Qwen2.5-Coder-32B-Instruct-4bit",
        "qwen25-coder-32b",
        18.43,
        "qwen2",
        "code",
        ("qwen25-coder-32b",),
        0.7,
        0.8,
    ),
    "deepseek": (
        "mlx-community/DeepSeek-R1-Distill-Llama-8B-4bit",
        "deepseek-r1-8b",
        4.5,
        "llama",
        "reasoning",
        ("deepseek-r1-8b",),
        0.6,
        0.95,
    ),
    "phi4": ("mlx-community/phi-4-4bit", "phi4-14b", 8.25, "phi3", "math", ("phi4-14b",), 0.6, 0.95),
    "mistral7b": (
        "mlx-community/Mistral-7B-Instruct-v0.3-4bit",
        "mistral-7b",
        4.08,
        "mistral",
        "general",
        ("mistral-7b",),
        0.7,
        0.95,
    ),
}
# The model types of the pinned mlx-lm (0.32.2: mlx_lm/models/*.py, and "mistral" through its remapping).
PINNED_MODEL_TYPES = {"qwen2", "llama", "phi3", "mistral", "qwen3", "qwen3_moe", "gemma3", "gpt_oss"}


def test_the_seed_aliases_are_kept_exactly():
    assert [m.alias for m in catalog.BUILTIN][:5] == list(SEED)
    for alias, fields in SEED.items():
        m = catalog.find(alias, catalog.BUILTIN)
        assert (m.repo, m.folder, m.size_gb, m.arch, m.category, m.also, m.temperature, m.top_p) == fields


def test_every_entry_is_checked_sourced_and_runnable_by_the_pinned_mlx_lm():
    names = [n for m in catalog.BUILTIN for n in (m.alias, *m.also)]
    assert len(names) == len(set(names)) and len({m.folder for m in catalog.BUILTIN}) == len(catalog.BUILTIN)
    for model in catalog.BUILTIN[5:]:
        assert model.source.startswith("https://huggingface.co/") and model.arch in model.source, model.alias
        assert " GB" in model.source, model.alias  # the size it was checked against
    for model in catalog.BUILTIN:
        assert model.arch in PINNED_MODEL_TYPES and model.source, model.alias
        assert model.shape.known and model.context >= 16384, model.alias  # fit needs the KV cache's shape
        assert 0 < model.active <= 1 and model.max_tokens <= model.context


@pytest.mark.parametrize("tier, ram_gib", list(catalog.TIERS.items()))
def test_every_memory_tier_has_a_model_for_code_reasoning_and_general_chat(tier, ram_gib):
    fitting = [m for m in catalog.BUILTIN if catalog.fits(m, mac(ram_gib))]
    assert {"code", "reasoning", "general"} <= {m.category for m in fitting}, tier
    smaller = [t for t in catalog.TIERS.values() if t < ram_gib]
    if smaller:  # each bigger tier gains a model the one below cannot run
        assert any(not catalog.fits(m, mac(max(smaller))) for m in fitting), tier


def test_builtin_entries_are_complete_and_valid():
    assert catalog.find("deepseek-r1-8b", catalog.BUILTIN).alias == "deepseek"
    for model in catalog.BUILTIN:
        catalog._check_model(model, model.alias)
        assert model.temperature > 0 and model.max_tokens >= 1024  # never greedy with 100 tokens
    assert catalog.find("deepseek", catalog.BUILTIN).repo == "mlx-community/DeepSeek-R1-Distill-Llama-8B-4bit"


def test_config_overrides_and_adds_entries():
    models = catalog.load(
        {"qwen7b": {"temperature": 0.2}, "tiny": {"repo": "me/tiny-mlx", "size_gb": 0.5, "category": "code"}}
    )
    assert catalog.find("qwen7b", models).temperature == 0.2
    tiny = catalog.find("tiny", models)
    assert (tiny.folder, tiny.size_gb, tiny.arch) == ("tiny-mlx", 0.5, "unknown")


@pytest.mark.parametrize(
    "entries, words",
    [
        ({"x;rm -rf ~": {"repo": "a/b", "size_gb": 1}}, "mlx.catalog.x;rm -rf ~"),
        ({"ok": {"repo": "not-a-repo", "size_gb": 1}}, "mlx.catalog.ok.repo"),
        ({"ok": {"repo": "a/b\n", "size_gb": 1}}, "mlx.catalog.ok.repo"),
        ({"ab\n": {"repo": "a/b", "size_gb": 1}}, "mlx.catalog.ab"),
        ({"ok": {"repo": "a/b", "size_gb": 1, "folder": "x\n"}}, "mlx.catalog.ok.folder"),
        ({"ok": {"repo": "a/b", "size_gb": 1, "folder": "../../etc"}}, "mlx.catalog.ok.folder"),
        ({"ok": {"repo": "a/b", "size_gb": "big"}}, "mlx.catalog.ok.size_gb"),
        ({"ok": {"repo": "a/b"}}, "needs 'size_gb'"),
        ({"ok": {"repo": "a/b", "size_gb": 1, "colour": "red"}}, "mlx.catalog.ok.colour"),
        ({"qwen7b": {"category": "poetry"}}, "mlx.catalog.qwen7b.category"),
        ({"qwen7b": {"kv_bits": 3}}, "mlx.catalog.qwen7b.kv_bits' must be 4 or 8"),
        ({"qwen7b": {"kv_bits": 16}}, "mlx.catalog.qwen7b.kv_bits' must be 4 or 8"),
        ({"qwen7b": {"kv_bits": "8"}}, "mlx.catalog.qwen7b.kv_bits' must be a positive number"),
        ({"status": {"repo": "a/b", "size_gb": 1}}, "would replace the shell command mlx-status"),
        ({"chat-qwen7b": {"repo": "a/b", "size_gb": 1}}, "would replace the shell command mlx-chat-qwen7b"),
    ],
)
def test_bad_entries_name_their_key(entries, words):
    with pytest.raises(MlxTasksError) as caught:
        catalog.load(entries)
    assert words in caught.value.message


def test_a_repo_id_with_a_trailing_newline_is_not_a_repo_id():
    with pytest.raises(MlxTasksError, match="is not a hub repo id"):
        catalog.from_repo("org/x\n", 1.0)


def test_unknown_alias_suggests_close_matches():
    with pytest.raises(MlxTasksError) as caught:
        catalog.find("qwen7", catalog.BUILTIN)
    assert "Did you mean qwen7b" in caught.value.message and caught.value.fix == "see the catalogue: invoke models.list"


def mac(ram_gib: int) -> HostFacts:
    return HostFacts(
        os="darwin",
        os_version="15.1",
        machine="arm64",
        chip="Apple M4",
        ram_total=ram_gib * GIB,
        ram_available=ram_gib * GIB // 2,
    )


def test_a_16gb_mac_is_refused_qwen32b_with_smaller_models_named():
    with pytest.raises(MlxTasksError) as caught:
        hub.check_memory(catalog.find("qwen32b", catalog.BUILTIN), mac(16), catalog.BUILTIN)
    message = caught.value.message
    assert "the GPU can use on this Mac" in message
    assert "Smaller models that fit: qwen7b, deepseek, phi4, mistral7b, qwen3-8b, llama3.1-8b." in message
    assert caught.value.fix.endswith("invoke models.pull qwen32b --force")
    hub.check_memory(catalog.find("qwen32b", catalog.BUILTIN), mac(32), catalog.BUILTIN)  # fits a 32 GB Mac


def test_linux_uses_available_memory():
    busy = HostFacts(os="linux", os_version="x", machine="x86_64", chip="x", ram_total=64 * GIB, ram_available=4 * GIB)
    with pytest.raises(MlxTasksError, match="this machine has available"):
        hub.check_memory(catalog.find("qwen7b", catalog.BUILTIN), busy, catalog.BUILTIN)


@pytest.mark.parametrize("wired_limit_mb, fits", [(0, False), (22000, True)])
def test_every_command_judges_fit_by_one_budget_that_the_wired_limit_moves(tmp_path, wired_limit_mb, fits):
    """A 24 GB Mac: qwen32b does not fit macOS's default GPU share; after sudo sysctl iogpu.wired_limit_mb=22000
    it does, and models.list, chat, pull, serve, bench and validate all say the same."""
    from dataclasses import replace

    from mlxtasks import bench, config, serve, validate

    facts = replace(mac(24), wired_limit_mb=wired_limit_mb)
    qwen32b = catalog.find("qwen32b", catalog.BUILTIN)
    budget = catalog.memory_budget(facts)
    assert catalog.fits(qwen32b, facts) is fits  # models.list and chat
    settings = config.resolve({}, home=tmp_path)
    (settings.models / qwen32b.folder).mkdir(parents=True)
    (settings.models / qwen32b.folder / "config.json").write_text("{}")
    verdicts = []
    for judge in (
        lambda: hub.check_memory(qwen32b, facts, catalog.BUILTIN),
        lambda: serve.choose_model(settings, "qwen32b", facts, force=False),
    ):
        try:
            judge()
            verdicts.append(True)
        except MlxTasksError:
            verdicts.append(False)
    targets, _ = bench.choose(["qwen32b"], catalog.BUILTIN, settings.models, {qwen32b.folder: int(18.43 * GB)}, budget)
    verdicts.append(bool(targets))
    answers = {
        "default_device": "Device(gpu, 0)",
        "metal_available": True,
        "matmul_error": 0.0,
        "device_info": {"device_name": "Apple M4", "max_recommended_working_set_size": 17 * GB},
    }
    memory = {
        r.id: r for r in validate.accelerator_checks("darwin", "metal", answers, (budget, catalog.budget_source(facts)))
    }
    verdicts.append("qwen32b" in memory["accelerator.memory"].message.split("too big")[0])
    assert verdicts == [fits] * 4


@pytest.mark.parametrize("asked", ["Qwen/Qwen3-8B", "someone/qwen3-8b"])
def test_pulling_another_repo_into_a_folder_that_holds_a_model_refuses_even_with_force(tmp_path, asked):
    """On a Mac's case-insensitive APFS, Qwen/Qwen3-8B's folder Qwen3-8B is the catalogue's qwen3-8b; the manifest's
    repo id, not the folder's existence, says whether the model asked for is there. On this Linux disk the same
    folder name shows it: someone/qwen3-8b's folder is qwen3-8b exactly."""
    import json

    from mlxtasks import config, store

    settings = config.resolve({}, home=tmp_path)
    qwen3 = settings.models / "qwen3-8b"
    qwen3.mkdir(parents=True)
    (qwen3 / store.MANIFEST).write_text(
        json.dumps({"repo": "Qwen/Qwen3-8B-MLX-4bit", "alias": "qwen3-8b", "files": {}})
    )
    final = hub.final_path(settings.models, hub.resolve(asked, catalog.BUILTIN)[0])
    if final.name != qwen3.name:  # a Mac's disk: the same folder under either spelling
        final.symlink_to(qwen3)
    before = sorted(p.name for p in qwen3.iterdir())
    for force in (False, True):
        with pytest.raises(
            MlxTasksError, match=rf"{final} already holds Qwen/Qwen3-8B-MLX-4bit, not {asked} "
        ) as caught:
            hub.pull(settings, mac(64), asked, force=force)
        assert caught.value.fix.endswith("or remove the other one first: invoke models.rm qwen3-8b")
    assert sorted(p.name for p in qwen3.iterdir()) == before
