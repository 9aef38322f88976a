"""What models.list and models.info print, from data; verify's verdicts on real folders."""

import json

from mlxtasks import catalog, config, inventory
from mlxtasks.facts import GB, GIB, HostFacts

BIG = HostFacts(os="linux", os_version="6", machine="x86_64", chip="x", ram_total=64 * GIB, ram_available=32 * GIB)


def test_the_list_keeps_long_aliases_in_their_column_and_points_at_the_hf_cache():
    listing = {"models_folder": "/m", "installed": [
        {"alias": "tiny-chat-4bit-long", "folder": "Tiny", "size": 2 * GB, "complete": False},
        {"alias": None, "folder": "by-hand", "size": GB // 2, "complete": True}],
        "catalogue": [{"alias": "qwen7b", "size_gb": 4.3, "category": "code", "fits": True, "installed": False,
                       "in_hf_cache": True, "description": "Qwen"}]}
    lines = inventory.listing_lines(listing)
    assert lines[:3] == ["Installed in /m:",
                         "  tiny-chat-4bit-long Tiny                     2.00 GB  incomplete: invoke models.verify",
                         "  -                   by-hand                  0.50 GB  complete"]
    assert lines[3:] == ["", "alias                    size  kind      fits  installed  description",
                         "qwen7b                 4.30GB  code      yes   no         Qwen (in the HF cache: models.pull --from-cache)"]
    assert inventory.listing_lines({**listing, "installed": []})[0] == "No models installed in /m yet."


def test_info_says_where_the_copy_is_and_how_it_was_pulled(tmp_path):
    entry = catalog.find("qwen7b", catalog.BUILTIN)
    rows = dict(line.split(None, 1) for line in inventory.info_lines(entry, tmp_path, BIG))
    assert rows["installed"] == "no: invoke models.pull qwen7b" and "pulled" not in rows
    assert rows["folder"] == str(tmp_path / entry.folder) and rows["fits"] == "yes"
    (tmp_path / entry.folder).mkdir()
    (tmp_path / entry.folder / "mlxtasks-manifest.json").write_text(json.dumps(
        {"repo": entry.repo, "alias": "qwen7b", "revision": "abc", "pulled": "2025-01-01T00:00:00+00:00", "size": GB}))
    rows = dict(line.split(None, 1) for line in inventory.info_lines(entry, tmp_path, BIG))
    assert rows["installed"] == "incomplete: invoke models.verify --model qwen7b"
    assert rows["pulled"] == "2025-01-01T00:00:00+00:00, revision abc, 1.00 GB"


def test_verify_names_each_folder_and_its_first_problem(tmp_path):
    s = config.resolve({}, home=tmp_path)
    assert inventory.verify(s) == []
    (s.models / "qwen25-coder-7b").mkdir(parents=True)
    (s.models / "qwen25-coder-7b" / "config.json").write_text("{}")
    [result] = inventory.verify(s, "qwen7b")
    assert (result.id, result.failed) == ("models.qwen25-coder-7b", True)
    assert result.message.startswith("no tokenizer files") and result.fix == "invoke models.pull qwen7b --force"
