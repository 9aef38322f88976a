"""The test support is real: the tiny model loads and generates with mlx_lm, and the real
huggingface_hub (2.4.0, in the MLX venv) downloads it from FakeHub, through the faults, as from the hub."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from .support.fake_hub import COMMIT, LFS_SUFFIXES, FakeHub
from .support.fixtures import GATED_REPO, QWEN7B_REPO

pytestmark = pytest.mark.e2e

# mlx_lm.utils.DEFAULT_ALLOW_PATTERNS in 0.32.2: what `mlx_lm.load(repo)` downloads.
MLX_LM_PATTERNS = [
    "*.json",
    "model*.safetensors",
    "*.py",
    "tokenizer.model",
    "*.tiktoken",
    "tiktoken.model",
    "*.txt",
    "*.jsonl",
    "*.jinja",
]
SHARD = "*/resolve/*/model-00001-of-00002.safetensors"

CALL = """
import json, sys, huggingface_hub
try:
    print(json.dumps({"path": getattr(huggingface_hub, sys.argv[1])(**json.loads(sys.argv[2]))}))
except Exception as error:
    print(json.dumps({"error": type(error).__name__, "message": str(error)}))
"""


def hub_call(mlx_run, hub: FakeHub, function: str, **kwargs) -> dict:
    """huggingface_hub.FUNCTION(**kwargs) in the MLX venv against hub: {"path": ...} or {"error": name}."""
    done = mlx_run(CALL, function, json.dumps(kwargs), HF_ENDPOINT=hub.url)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def snapshot(mlx_run, hub: FakeHub, dest: Path, repo: str = QWEN7B_REPO, to: str = "cache_dir") -> dict:
    return hub_call(mlx_run, hub, "snapshot_download", repo_id=repo, allow_patterns=MLX_LM_PATTERNS, **{to: str(dest)})


def assert_same_model(source: Path, downloaded: Path) -> None:
    """Every file mlx_lm asks for arrived byte for byte; the README (not in its patterns) did not."""
    wanted = sorted(p.name for p in source.iterdir() if p.name != "README.md")
    assert sorted(p.name for p in downloaded.iterdir() if not p.name.startswith(".")) == wanted
    for name in wanted:
        assert (downloaded / name).read_bytes() == (source / name).read_bytes(), name


def test_tiny_model_is_laid_out_like_an_mlx_community_4bit_repo(tiny_model):
    config = json.loads((tiny_model / "config.json").read_text())
    index = json.loads((tiny_model / "model.safetensors.index.json").read_text())
    assert config["model_type"] == "qwen2" and config["tie_word_embeddings"] is True
    assert config["quantization"] == {"group_size": 64, "bits": 4, "mode": "affine"}
    assert sorted(set(index["weight_map"].values())) == [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    assert all((tiny_model / shard).is_file() for shard in index["weight_map"].values())
    tokenizer = json.loads((tiny_model / "tokenizer.json").read_text())
    assert 500 <= len(tokenizer["model"]["vocab"]) == config["vocab_size"] <= 1000
    assert [t["content"] for t in tokenizer["added_tokens"]] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def test_tiny_model_renders_its_chat_template_loads_and_generates(mlx_run, tiny_model):
    code = """
import json, sys
from transformers import AutoTokenizer
from mlx_lm import load, stream_generate
messages = [{"role": "user", "content": "def add(a, b):"}]
text = AutoTokenizer.from_pretrained(sys.argv[1]).apply_chat_template(messages, tokenize=False,
                                                                       add_generation_prompt=True)
model, tokenizer = load(sys.argv[1])
prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
tokens = [r.token for r in stream_generate(model, tokenizer, prompt, max_tokens=5)]
print(json.dumps({"text": text, "same": tokenizer.decode(prompt) == text, "tokens": tokens,
                  "eos": sorted(tokenizer.eos_token_ids)}))
"""
    done = mlx_run(code, tiny_model)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["text"] == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\ndef add(a, b):<|im_end|>\n<|im_start|>assistant\n"
    )
    assert result["same"] and result["tokens"] and result["eos"] == [2]


def test_real_model_tokenizer_round_trips_bytes_and_keeps_special_tokens_whole(mlx_run, real_model):
    code = """
import json, sys
from mlx_lm import load
_, tokenizer = load(sys.argv[1])
text = "<|im_start|>user\\nUn café coûte 2,50 €: ça va?<|im_end|>\\n"
ids = tokenizer.encode(text)
print(json.dumps({"ids": ids, "text": tokenizer.decode(ids), "eos": sorted(tokenizer.eos_token_ids)}))
"""
    done = mlx_run(code, real_model)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["text"] == "<|im_start|>user\nUn café coûte 2,50 €: ça va?<|im_end|>\n"
    assert result["ids"][0] == 1 and result["ids"][-2:] == [2, 198]  # <|im_start|>, <|im_end|>, "\n"
    assert result["eos"] == [2]


@pytest.mark.parametrize("to", ["cache_dir", "local_dir"])
def test_snapshot_download_fetches_every_file_once_and_a_rerun_fetches_none(
    mlx_run, fake_hub, tiny_model, tmp_path, to
):
    first = snapshot(mlx_run, fake_hub, tmp_path / "dest", to=to)
    assert_same_model(tiny_model, Path(first["path"]))
    gets = sorted(r.path.rsplit("/", 1)[1] for r in fake_hub.hits("*/resolve/*", "GET"))
    assert gets == sorted(p.name for p in tiny_model.iterdir() if p.name != "README.md")

    before = len(fake_hub.requests)
    assert snapshot(mlx_run, fake_hub, tmp_path / "dest", to=to) == first
    # Only the revision is asked again: the tree listing is cached, finished files are not even HEADed.
    assert [r.path for r in fake_hub.requests[before:]] == [f"/api/models/{QWEN7B_REPO}/revision/main"]


@pytest.mark.parametrize(
    "glob, method, error",
    [
        (SHARD, "HEAD", None),  # the first HEAD has no retries; a second round retries with backoff
        ("*/tree/*", "GET", None),  # the listing is retried with backoff (1 s, then 2 s)
        (SHARD, "GET", "HfHubHTTPError"),  # the body GET retries only 408 and 429
        ("*/revision/*", "GET", "LocalEntryNotFoundError"),  # repo info is not retried: "no local snapshot"
    ],
)
def test_two_500s_are_retried_or_raised_as_huggingface_hub_does(
    mlx_run, fake_hub, tiny_model, tmp_path, glob, method, error
):
    fake_hub.faults.fail_500(glob, times=2, method=method)
    result = snapshot(mlx_run, fake_hub, tmp_path / "cache")
    statuses = [r.status for r in fake_hub.hits(glob, method)]
    if error:
        assert result["error"] == error and statuses == [500]
    else:
        assert_same_model(tiny_model, Path(result["path"]))
        assert statuses == [500, 500, 200]


def test_after_a_failed_download_a_rerun_fetches_only_what_is_missing(mlx_run, fake_hub, tiny_model, tmp_path):
    def fetched(requests) -> list[str]:
        return [
            r.path.rsplit("/", 1)[1]
            for r in requests
            if r.method == "GET" and "/resolve/" in r.path and r.status == 200
        ]

    fake_hub.faults.fail_500(SHARD, method="GET")
    assert snapshot(mlx_run, fake_hub, tmp_path / "cache")["error"] == "HfHubHTTPError"
    before = len(fake_hub.requests)
    # Which other files the first run finished depends on its download threads' timing; none is fetched twice.
    finished = set(fetched(fake_hub.requests[:before]))
    assert_same_model(tiny_model, Path(snapshot(mlx_run, fake_hub, tmp_path / "cache")["path"]))
    again = fetched(fake_hub.requests[before:])
    assert "model-00001-of-00002.safetensors" in again and not finished & set(again)


def test_a_dropped_connection_is_retried_from_the_start_of_a_small_file(mlx_run, fake_hub, tiny_model, tmp_path):
    fake_hub.faults.drop_connection(SHARD, after_bytes=10_000)
    assert_same_model(tiny_model, Path(snapshot(mlx_run, fake_hub, tmp_path / "cache")["path"]))
    size = (tiny_model / "model-00001-of-00002.safetensors").stat().st_size
    # huggingface_hub writes 10 MiB chunks: the 10 000 bytes it had were never written, so no Range.
    assert [(r.status, r.bytes) for r in fake_hub.hits(SHARD, "GET")] == [(200, 10_000), (200, size)]


def test_a_dropped_connection_resumes_with_a_range_after_the_first_10_mib(mlx_run, tmp_path):
    repo = tmp_path / "big"
    repo.mkdir()
    data = bytes(range(256)) * (12 << 12)  # 12 MiB
    (repo / "big.bin").write_bytes(data)
    with FakeHub({"org/big": repo}) as hub:
        hub.faults.drop_connection("*/big.bin", after_bytes=11 << 20)
        result = hub_call(
            mlx_run, hub, "hf_hub_download", repo_id="org/big", filename="big.bin", local_dir=str(tmp_path / "dest")
        )
    assert Path(result["path"]).read_bytes() == data
    assert [(r.status, r.bytes) for r in hub.hits("*/big.bin", "GET")] == [(200, 11 << 20), (206, 2 << 20)]


@pytest.mark.parametrize(
    "repo, error", [("nobody/no-such-model", "RepositoryNotFoundError"), (GATED_REPO, "GatedRepoError")]
)
def test_missing_and_gated_repos_raise_their_errors(mlx_run, fake_hub, tmp_path, repo, error):
    assert snapshot(mlx_run, fake_hub, tmp_path / "cache", repo)["error"] == error


def test_a_missing_file_is_not_listed_and_not_found(mlx_run, fake_hub, tiny_model, tmp_path):
    fake_hub.faults.missing_file("tokenizer.json")
    found = hub_call(
        mlx_run,
        fake_hub,
        "hf_hub_download",
        repo_id=QWEN7B_REPO,
        filename="tokenizer.json",
        cache_dir=str(tmp_path / "cache"),
    )
    assert found["error"] == "RemoteEntryNotFoundError"
    path = Path(snapshot(mlx_run, fake_hub, tmp_path / "cache")["path"])
    assert not (path / "tokenizer.json").exists() and (path / "config.json").exists()


def test_a_hung_request_times_out_the_client_and_does_not_block_shutdown(mlx_run, fake_hub, tiny_model, tmp_path):
    fake_hub.faults.hang("*/resolve/*/config.json", times=1, method="HEAD")
    done = mlx_run(
        CALL,
        "snapshot_download",
        json.dumps({"repo_id": QWEN7B_REPO, "cache_dir": str(tmp_path)}),
        HF_ENDPOINT=fake_hub.url,
        HF_HUB_ETAG_TIMEOUT="1",
    )
    assert "path" in json.loads(done.stdout.splitlines()[-1]), done.stderr
    assert [r.status for r in fake_hub.hits("*/config.json", "HEAD")] == [None, 200]

    fake_hub.faults.hang("/api/*")
    with pytest.raises(TimeoutError):
        urllib.request.urlopen(f"{fake_hub.url}/api/models/{QWEN7B_REPO}", timeout=0.5)
    started = time.monotonic()
    fake_hub.stop()
    assert time.monotonic() - started < 2


def test_model_info_with_file_metadata_lists_every_file_with_its_size(mlx_run, fake_hub, tiny_model):
    code = """
import json, sys
from huggingface_hub import HfApi
info = HfApi().model_info(sys.argv[1], files_metadata=True)
print(json.dumps({"sha": info.sha, "files": {s.rfilename: [s.size, bool(s.lfs)] for s in info.siblings}}))
"""
    done = mlx_run(code, QWEN7B_REPO, HF_ENDPOINT=fake_hub.url)
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert listed["sha"] == COMMIT
    assert listed["files"] == {
        p.name: [p.stat().st_size, p.name.endswith(LFS_SUFFIXES)] for p in tiny_model.iterdir() if p.is_file()
    }
