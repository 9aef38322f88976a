"""`invoke models.search` against the stand-in hub's listing: rows, sorting, --fits, --json, what the venv
runs, pulled models, and an unreachable hub; `models.info` of a repo that is not installed."""

import json
import socket
import threading

import pytest

from mlxtasks.protocol import Support

from .support.fake_hub import FakeHub
from .support.helpers import invoke

pytestmark = pytest.mark.slow  # every test runs the CLI as a process

TINY, HUGE, NEXT, VL = (f"mlx-community/Qwen3-{name}-4bit" for name in ("Tiny", "Huge", "Next", "VL"))


def search(hub, home, *args, **env):
    return invoke("models.search", *args, home=home, HF_ENDPOINT=hub.url, **env)


def repos(done):
    assert done.returncode == 0, done.stdout + done.stderr
    return [line.split()[0] for line in done.stdout.splitlines()[1:] if line.startswith(("mlx-community/", "someone/"))]


def test_rows_come_in_the_hub_s_order_for_each_sort_and_the_query_is_what_huggingface_hub_sends(listing_hub, home):
    assert repos(search(listing_hub, home, "qwen3")) == [TINY, NEXT, HUGE, VL]
    assert repos(search(listing_hub, home, "QWEN3", "--sort", "likes")) == [HUGE, NEXT, TINY, VL]
    assert repos(search(listing_hub, home, "qwen3", "--sort", "recent", "--limit", "2")) == [NEXT, VL]
    query = listing_hub.listing_queries[-1]
    assert query == {
        "search": ["qwen3"],
        "author": ["mlx-community"],
        "sort": ["lastModified"],
        "limit": ["2"],
        "expand": ["safetensors", "usedStorage", "downloads", "likes", "lastModified", "config", "pipeline_tag"],
    }
    assert repos(search(listing_hub, home, "own", "--author", "any")) == ["someone/qwen3-own-4bit"]
    assert "author" not in listing_hub.listing_queries[-1]


def test_a_row_says_size_fit_downloads_and_date_and_fits_keeps_what_fits(listing_hub, home):
    done = search(listing_hub, home, "qwen3")
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[1:5]}
    tiny = rows[TINY]  # 10M BF16 + 20M U32 parameters: 0.1 GB; then the speed this machine gets, and runs
    assert tiny[:3] == ["0.1", "GB", "yes"] and tiny[4:] == ["?", "900", "2025-05-01"] and tiny[3].endswith("/s")
    assert rows[HUGE][:3] == ["10000.0", "GB", "no"]
    assert "runs ?: no venv with mlx-lm to ask" in done.stdout
    assert repos(search(listing_hub, home, "qwen3", "--fits")) == [TINY, NEXT, VL]


def venv_that_runs(home, *model_types):
    """A venv's package metadata and the cached answer of what its mlx-lm runs (compat.support reads both)."""
    venv_packages = home / "venv-mlx" / "lib" / "python3.11" / "site-packages"
    for name in ("mlx_lm-0.32.2.dist-info", "mlx-0.32.4.dist-info"):
        (venv_packages / name).mkdir(parents=True)
    cache = home / ".local" / "state" / "mlxtasks" / "support" / "mlx_lm-0.32.2-mlx-0.32.4.json"
    cache.parent.mkdir(parents=True)
    cache.write_text(Support("0.32.2", "0.32.4", model_types, ("affine",)).to_json())


def test_json_rows_say_what_the_venv_runs_and_mark_a_pulled_model(listing_hub, home):
    venv_that_runs(home, "qwen3", "qwen3_moe")
    pulled = home / "workspace" / "mlx" / "Qwen3-Tiny-4bit"
    pulled.mkdir(parents=True)
    (pulled / "mlxtasks-manifest.json").write_text(json.dumps({"repo": TINY, "files": {}}))
    done = search(listing_hub, home, "qwen3", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["repo"]: row for row in json.loads(done.stdout)}
    assert (rows[TINY]["runs"], rows[TINY]["pulled"], rows[TINY]["size"]) == (True, True, 100_000_000)
    assert rows[NEXT]["runs"] is False and "has no module for that model type" in rows[NEXT]["why_not"]
    assert rows[VL]["runs"] is False and "vision model" in rows[VL]["why_not"]
    assert rows[HUGE]["pulled"] is False and rows[HUGE]["fits"] is False
    table = search(listing_hub, home, "tiny").stdout.splitlines()
    assert table[1].split()[-1] == "pulled" and "runs ?" not in "\n".join(table)


def test_a_wrong_option_is_one_sentence(listing_hub, home):
    done = search(listing_hub, home, "qwen3", "--sort", "stars")
    assert done.returncode == 1 and "--sort must be one of downloads, likes, recent, got 'stars'." in done.stderr
    assert listing_hub.listing_queries == []


@pytest.mark.e2e  # huggingface_hub retries a refused connection for about 20 s before giving up
def test_an_unreachable_hub_is_one_sentence_and_exit_1(home):
    done = invoke("models.search", "qwen3", home=home, HF_ENDPOINT="http://127.0.0.1:9")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("[error] Cannot reach the hub at http://127.0.0.1:9, so there is nothing to search")
    assert "Retrying" not in done.stderr and "Traceback" not in done.stderr


SMALL = {
    "model_type": "qwen2",
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "hidden_size": 64,
    "max_position_embeddings": 8192,
    "quantization": {"group_size": 64, "bits": 4},
}


def test_info_of_a_repo_not_installed_reads_only_its_listing_and_config(home, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "config.json").write_text(json.dumps(SMALL))
    (repo / "tokenizer.json").write_text("{}")
    (repo / "model.safetensors").write_bytes(b"\0" * 5000)
    venv_that_runs(home, "qwen2")
    with FakeHub({"someone/Small-4bit": repo}) as hub:
        done = invoke("models.info", "someone/Small-4bit", home=home, HF_ENDPOINT=hub.url)
        assert done.returncode == 0, done.stderr
        assert not hub.hits("*.safetensors", method="GET")
    rows = dict(line.split(None, 1) for line in done.stdout.splitlines())
    assert rows["repo"] == "someone/Small-4bit (not installed: invoke models.pull someone/Small-4bit)"
    assert rows["files"] == "config.json, model.safetensors, tokenizer.json"
    assert rows["size"].startswith("0.00 GB to download, revision ")
    assert (rows["type"], rows["quantized"]) == ("qwen2 (no pipeline tag)", "4-bit, group size 64, affine mode")
    assert rows["fits"] == "yes, with up to 8,192 tokens of context (its own limit)"
    assert rows["runs"] == "yes, with the venv's mlx-lm 0.32.2"
    assert not (home / "workspace").exists()


@pytest.fixture
def stalled_hub():
    """A real listener that accepts every connection and never answers: its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    held = []

    def accept():
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    for connection in held:
        connection.close()


@pytest.mark.parametrize(
    "argv, what",
    [
        (["models.search", "qwen3"], "searching"),
        (["models.info", "someone/Small-4bit"], "asking about someone/Small-4bit"),
    ],
)
def test_a_hub_that_accepts_and_never_answers_is_given_up_at_the_stall_limit(home, stalled_hub, argv, what):
    # Without the limit it waits for ever, and the test's timeout raises.
    done = invoke(*argv, home=home, HF_ENDPOINT=stalled_hub, INVOKE_MLX_PULL_STALL_TIMEOUT_S="3", timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"The hub at {stalled_hub} took the connection but sent no answer in 3 s while {what}." in done.stderr


@pytest.mark.parametrize(
    "argv", [["models.search", "qwen3"], ["models.info", "someone/Small-4bit"], ["models.pull", "someone/Small-4bit"]]
)
def test_an_endpoint_that_is_no_url_is_one_sentence(home, argv):
    done = invoke(*argv, home=home, HF_ENDPOINT="http://[::1", timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert (
        "HF_ENDPOINT='http://[::1' is not the http(s) URL of a hub." in done.stderr
        and "Fix: unset HF_ENDPOINT" in done.stderr
    )
