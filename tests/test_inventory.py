"""What models.list and models.info print, from data; verify's verdicts on real folders."""

import json

from mlxtasks import catalog, config, inventory
from mlxtasks.facts import GB, GIB, HostFacts

BIG = HostFacts(os="linux", os_version="6", machine="x86_64", chip="x", ram_total=64 * GIB, ram_available=32 * GIB)


def test_the_list_keeps_long_aliases_in_their_column_and_points_at_the_hf_cache():
    listing = {
        "models_folder": "/m",
        "installed": [
            {"alias": "tiny-chat-4bit-long", "folder": "Tiny", "size": 2 * GB, "complete": False, "fits": "yes"},
            {"alias": None, "folder": "by-hand", "size": GB // 2, "complete": True, "fits": "no: needs 9 GB"},
        ],
        "catalogue": [
            {
                "alias": "qwen7b",
                "size_gb": 4.3,
                "category": "code",
                "fits": True,
                "context": 32768,
                "speed": "estimated",
                "speed_short": "~41/s",
                "installed": False,
                "in_hf_cache": True,
                "description": "Qwen",
            },
            {
                "alias": "big",
                "size_gb": 40,
                "category": "general",
                "fits": False,
                "context": 0,
                "speed": "measured",
                "speed_short": "3/s*",
                "installed": False,
                "in_hf_cache": False,
                "description": "Big",
            },
        ],
    }
    lines = inventory.listing_lines(listing)
    assert lines[:3] == [
        "Installed in /m:",
        "  tiny-chat-4bit-long Tiny                     2.00 GB  incomplete: invoke models.verify; fits: yes",
        "  -                   by-hand                  0.50 GB  complete; fits: no: needs 9 GB",
    ]
    assert lines[3:] == [
        "",
        "alias                    size  kind      fits  speed      installed  description",
        "qwen7b                 4.30GB  code      32k   ~41/s      no         Qwen (in the HF cache: models.pull --from-cache)",
        "big                   40.00GB  general   no    3/s*       no         Big",
        "fits: Nk = it fits with up to N thousand tokens of context (weights + KV cache + overhead)",
        "speed ~N/s: generation tokens/s estimated from the chip's memory bandwidth",
        "speed N/s*: measured on this machine by invoke bench",
    ]
    assert inventory.listing_lines({**listing, "installed": []})[0] == "No models installed in /m yet."


def test_info_says_where_the_copy_is_and_how_it_was_pulled(tmp_path):
    entry = catalog.find("qwen7b", catalog.BUILTIN)
    rows = dict(line.split(None, 1) for line in inventory.info_lines(entry, tmp_path, BIG))
    assert rows["installed"] == "no: invoke models.pull qwen7b" and "pulled" not in rows
    assert rows["folder"] == str(tmp_path / entry.folder)
    assert rows["fits"] == "yes, with up to 32,768 tokens of context (its own limit)"
    (tmp_path / entry.folder).mkdir()
    (tmp_path / entry.folder / "mlxtasks-manifest.json").write_text(
        json.dumps(
            {
                "repo": entry.repo,
                "alias": "qwen7b",
                "revision": "abc",
                "pulled": "2025-01-01T00:00:00+00:00",
                "size": GB,
            }
        )
    )
    rows = dict(line.split(None, 1) for line in inventory.info_lines(entry, tmp_path, BIG))
    assert rows["installed"] == "incomplete: invoke models.verify qwen7b"
    assert rows["pulled"] == "2025-01-01T00:00:00+00:00, revision abc, 1.00 GB"


def test_verify_names_each_folder_and_its_first_problem(tmp_path):
    s = config.resolve({}, home=tmp_path)
    assert inventory.verify(s) == []
    (s.models / "qwen25-coder-7b").mkdir(parents=True)
    (s.models / "qwen25-coder-7b" / "config.json").write_text("{}")
    [result] = inventory.verify(s, "qwen7b")
    assert (result.id, result.failed) == ("models.qwen25-coder-7b", True)
    assert result.message.startswith("no tokenizer files") and result.fix == "invoke models.pull qwen7b --force"


def test_the_list_judges_each_model_with_the_largest_context_that_fits(tmp_path):
    s = config.resolve({}, home=tmp_path)
    folder = s.models / "qwen25-coder-7b"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(
        json.dumps(
            {
                "num_hidden_layers": 28,
                "num_attention_heads": 28,
                "hidden_size": 3584,
                "num_key_value_heads": 4,
                "max_position_embeddings": 32768,
            }
        )
    )
    (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    small = HostFacts(os="linux", os_version="6", machine="x86_64", chip="x", ram_total=8 * GIB, ram_available=6 * GB)
    listing = inventory.listing(s, small)
    assert listing["installed"][0]["fits"] == "yes, with up to 32,768 tokens of context (its own limit)"
    entries = {e["alias"]: e for e in listing["catalogue"]}
    assert entries["qwen7b"]["context"] == 21030 and entries["qwen7b"]["fits"]  # 4.28 GB of weights, 6 GB free
    assert entries["qwen32b"]["context"] == 0 and not entries["qwen32b"]["fits"]
