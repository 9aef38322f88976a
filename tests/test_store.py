"""Finding installed models: catalogue entries by any of their names, and models the catalogue does not know."""

import json

import pytest

from mlxtasks import store
from mlxtasks.catalog import BUILTIN
from mlxtasks.errors import MlxTasksError


def put(models, folder, config=None, manifest=None):
    (models / folder).mkdir(parents=True)
    (models / folder / "config.json").write_text(json.dumps(config or {"model_type": "llama"}))
    if manifest:
        (models / folder / store.MANIFEST).write_text(json.dumps(manifest))
    return models / folder


def test_a_catalogue_model_is_found_by_alias_other_name_or_folder(tmp_path):
    folder = put(tmp_path, "qwen25-coder-7b")
    for name in ("qwen7b", "qwen25-coder-7b"):
        model, path = store.local_model(name, tmp_path, BUILTIN)
        assert (model.alias, path) == ("qwen7b", folder)


def test_a_catalogue_model_not_downloaded_is_named_with_the_pull_command(tmp_path):
    with pytest.raises(MlxTasksError) as caught:
        store.local_model("phi4", tmp_path, BUILTIN, where=" on this machine")
    assert (caught.value.message, caught.value.fix) == (
        "phi4 is not downloaded on this machine.",
        "invoke models.pull phi4",
    )


def test_models_pulled_by_repo_id_or_put_there_by_hand_are_found_too(tmp_path):
    put(
        tmp_path,
        "Llama-3.2-3B-Instruct-4bit",
        manifest={"repo": "mlx-community/Llama-3.2-3B-Instruct-4bit", "alias": "llama-3.2-3b-instruct-4bit"},
    )
    (tmp_path / "Llama-3.2-3B-Instruct-4bit" / "model.safetensors").write_bytes(b"x" * 1000)
    put(tmp_path, "MyModel", config={"model_type": "qwen2"})
    put(tmp_path, "mistral-7b")  # the catalogue's mistral7b
    (tmp_path / "half-copied").mkdir()  # no config.json: not a model
    installed = store.installed_models(tmp_path, BUILTIN)
    assert [(m.alias, m.folder, m.arch) for m in installed] == [
        ("mistral7b", "mistral-7b", "mistral"),  # the catalogue's entry, as it is
        ("llama-3.2-3b-instruct-4bit", "Llama-3.2-3B-Instruct-4bit", "llama"),
        ("mymodel", "MyModel", "qwen2"),
    ]
    llama = installed[1]
    assert llama.repo == "mlx-community/Llama-3.2-3B-Instruct-4bit" and llama.size_gb * 2**30 > 1000
    assert store.local_model("MyModel", tmp_path, BUILTIN)[1] == tmp_path / "MyModel"
    for name in ("llama-3.2-3b-instruct-4bit", "mlx-community/Llama-3.2-3B-Instruct-4bit"):
        assert store.local_model(name, tmp_path, BUILTIN)[0] == llama


def test_an_unknown_name_gets_close_matches_among_installed_models(tmp_path):
    put(tmp_path, "MyModel")
    with pytest.raises(MlxTasksError, match="no model called 'mymodle'.*Did you mean mymodel") as caught:
        store.local_model("mymodle", tmp_path, BUILTIN)
    assert caught.value.fix == "see the catalogue: invoke models.list"


def test_a_manifest_cannot_take_a_catalogue_alias_for_another_folder(tmp_path):
    own = put(tmp_path, "qwen25-coder-7b")
    put(tmp_path, "Evil", manifest={"repo": "someone/evil", "alias": "qwen7b"})
    assert store.local_model("qwen7b", tmp_path, BUILTIN)[1] == own
    assert {m.alias: m.folder for m in store.installed_models(tmp_path, BUILTIN)} == {
        "qwen7b": "qwen25-coder-7b",
        "evil": "Evil",
    }


@pytest.mark.parametrize(
    "manifest",
    [
        [1, 2],
        "text",
        {"files": ["a"]},
        {"files": {"a": "12"}},
        {"size": "big"},
        {"alias": 7},
        {"repo": "not a repo"},
    ],
)
def test_a_damaged_manifest_is_no_manifest(tmp_path, manifest):
    folder = put(tmp_path, "Damaged")
    (folder / store.MANIFEST).write_text(json.dumps(manifest))
    assert store.read_manifest(folder) is None
    assert [m.alias for m in store.installed_models(tmp_path, BUILTIN)] == ["damaged"]


@pytest.mark.parametrize("header", [{"w": {"dtype": "F16", "shape": [1]}}, {"w": {"data_offsets": 5}}, [1, 2]])
def test_a_safetensors_header_without_data_offsets_is_a_problem_not_a_crash(tmp_path, header):
    data = json.dumps(header).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(len(data).to_bytes(8, "little") + data)
    assert "damaged header" in store.safetensors_problem(path)


def test_list_and_verify_agree_on_a_complete_model_put_there_by_hand(tmp_path):
    from mlxtasks import hub

    folder = put(tmp_path, "ByHand")
    (folder / "tokenizer.json").write_text("{}")
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    (folder / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)
    assert store.model_problems(folder) == [] and hub.is_complete(folder)
    (folder / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    assert store.model_problems(folder) and not hub.is_complete(folder)


def test_removal_finds_any_folder_or_link_a_model_names_and_refuses_a_missing_one(tmp_path):
    with pytest.raises(MlxTasksError, match=r"qwen7b is not installed \(no .*qwen25-coder-7b\)") as caught:
        store.removable("qwen7b", tmp_path, BUILTIN)
    assert caught.value.fix == "see what is: invoke models.list"
    (tmp_path / "qwen25-coder-7b").symlink_to(tmp_path / "elsewhere")  # a dangling link is still there to refuse
    model, path = store.removable("qwen25-coder-7b", tmp_path, BUILTIN)
    assert (model.alias, path) == ("qwen7b", tmp_path / "qwen25-coder-7b")
