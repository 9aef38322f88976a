"""The prompt cache's disk tier without MLX (runtime/server/diskcache.py): its index, lookups by prefix, the
byte budget, the writer's timing, damaged and foreign files, permissions and a full disk (a real tmpfs), with
a stand-in for mlx_lm's save and load that writes real files. serve.cache's table and --clear read the same
index. The real engine, restarts and unloads: test_diskcache_e2e.py."""

import json
import logging
import os
import stat
import time

import pytest

from mlxtasks import config, serve
from mlxtasks.errors import MlxTasksError
from mlxtasks.runtime.server import diskcache
from mlxtasks.runtime.server.diskcache import BLOCK, DiskCache

from .test_rcfile import mounted  # noqa: F401 (a fixture)

ME = "a" * 32  # a model's identity
OTHER = "b" * 32


def save(path: str, cache, metadata: dict[str, str]) -> None:
    """A cache as mlx_lm would save it: a file of its bytes and the metadata (cache: a number of bytes)."""
    with open(path, "wb") as out:
        out.write(json.dumps(metadata).encode() + b"\n" + b"k" * cache)


def load(path: str):
    with open(path, "rb") as source:
        head, body = source.read().split(b"\n", 1)
    return len(body), json.loads(head)


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def log():
    logger = logging.getLogger("test-diskcache")
    handler = Lines()
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def opened(folder, log, budget=10**6, write_after=60.0) -> DiskCache:
    return DiskCache(folder, budget, logging.getLogger("test-diskcache"), save, load, write_after)


def tokens(n: int, start: int = 0) -> list[int]:
    return list(range(start, start + n))


def written(disk: DiskCache, prompt: list[int], size: int = 1000, identity: str = ME, trimmable=True) -> None:
    disk.put(identity, "tiny", prompt, size, size, trimmable)
    disk.flush()


def test_a_prompt_that_extends_one_on_disk_finds_it_from_the_index_and_reads_its_cache(tmp_path, log):
    disk = opened(tmp_path / "cache", log)
    written(disk, tokens(600), size=1234)
    entry, length = disk.find(ME, tokens(700))
    assert (entry.tokens, length, entry.model) == (600, 600, "tiny")
    assert disk.read(entry) == 1234
    assert disk.find(OTHER, tokens(700)) is None  # another model's identity never matches
    assert disk.find(ME, tokens(700, start=1)) is None  # another prompt
    again = opened(tmp_path / "cache", log)  # a restarted server
    assert again.find(ME, tokens(700))[1] == 600


def test_a_prompt_sharing_only_a_start_reuses_whole_blocks_of_a_trimmable_cache(tmp_path, log):
    disk = opened(tmp_path / "cache", log)
    written(disk, tokens(3 * BLOCK + 50))
    diverging = tokens(2 * BLOCK + 10) + [-1] * 100
    assert disk.find(ME, diverging)[1] == 2 * BLOCK
    assert disk.find(ME, tokens(3 * BLOCK + 50))[1] == 3 * BLOCK + 49  # the same prompt: one token left to prefill
    written(disk, tokens(3 * BLOCK, start=9), trimmable=False)
    assert disk.find(ME, tokens(2 * BLOCK, start=9) + [-1]) is None  # a rotating cache cannot be cut


def test_a_longer_turn_of_the_same_conversation_replaces_the_shorter_before_and_after_writing(tmp_path, log):
    disk = opened(tmp_path / "cache", log)
    disk.put(ME, "tiny", tokens(300), 10, 10, True)
    disk.put(ME, "tiny", tokens(400), 10, 10, True)  # before the first was written: only this one is
    disk.flush()
    assert [e.tokens for e in diskcache.read_index(tmp_path / "cache")] == [400]
    written(disk, tokens(500))  # after: the older file goes
    assert [e.tokens for e in diskcache.read_index(tmp_path / "cache")] == [500]
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1
    written(disk, tokens(500))  # the same again: no second file
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1


def test_writes_wait_for_their_time_unless_flushed(tmp_path, log):
    disk = opened(tmp_path / "cache", log, write_after=0.3)
    disk.put(ME, "tiny", tokens(300), 10, 10, True)
    assert diskcache.read_index(tmp_path / "cache") == []
    deadline = time.monotonic() + 10
    while not diskcache.read_index(tmp_path / "cache") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [e.tokens for e in diskcache.read_index(tmp_path / "cache")] == [300]


def test_short_prompts_and_a_zero_budget_write_nothing(tmp_path, log):
    disk = opened(tmp_path / "cache", log)
    written(disk, tokens(diskcache.MIN_TOKENS - 1))
    off = opened(tmp_path / "off", log, budget=0)
    written(off, tokens(600))
    assert diskcache.read_index(tmp_path / "cache") == diskcache.read_index(tmp_path / "off") == []


def test_the_budget_removes_the_least_recently_used_first(tmp_path, log):
    disk = opened(tmp_path / "cache", log, budget=2500)
    for start in (0, 1000, 2000):
        written(disk, tokens(300, start), size=1000)
        time.sleep(0.01)
    assert not disk.find(ME, tokens(301, 0)) and disk.find(ME, tokens(301, 1000)) and disk.find(ME, tokens(301, 2000))
    disk.read(disk.find(ME, tokens(301, 1000))[0])  # used now: the other one is older
    disk.flush()
    assert max(disk.entries.values(), key=lambda e: e.used) == diskcache.read_index(tmp_path / "cache")[0]  # saved
    written(disk, tokens(300, 3000), size=1000)
    assert disk.find(ME, tokens(301, 1000)) and not disk.find(ME, tokens(301, 2000))
    assert sum(e.size for e in diskcache.read_index(tmp_path / "cache")) <= 2500


@pytest.mark.parametrize("damage", ["truncated", "foreign", "missing"])
def test_a_damaged_foreign_or_missing_file_is_skipped_removed_and_said_once(tmp_path, log, damage):
    disk = opened(tmp_path / "cache", log)
    written(disk, tokens(600))
    entry, _ = disk.find(ME, tokens(700))
    path = tmp_path / "cache" / entry.file
    if damage == "truncated":
        path.write_bytes(b"{")
    elif damage == "foreign":
        save(str(path), 10, {"identity": OTHER, "digest": entry.digest})
    else:
        path.unlink()
    assert disk.read(entry) is None
    assert not path.exists() and disk.find(ME, tokens(700)) is None
    assert diskcache.read_index(tmp_path / "cache") == []
    assert len(log.lines) == 1 and entry.file in log.lines[0]


def test_a_restart_drops_leftovers_and_index_entries_that_are_not_ours(tmp_path, log):
    folder = tmp_path / "cache"
    disk = opened(folder, log)
    written(disk, tokens(600))
    (folder / ".half.tmp.safetensors").write_bytes(b"x")  # a crash mid-write
    index = json.loads((folder / "index.json").read_text())
    hostile = {**index["entries"][0], "file": "../outside.safetensors"}
    (tmp_path / "outside.safetensors").write_bytes(b"keep")
    index["entries"] += [hostile, {"file": 3}, "junk"]
    (folder / "index.json").write_text(json.dumps(index))
    again = opened(folder, log)
    assert [e.tokens for e in again.entries.values()] == [600]
    assert not (folder / ".half.tmp.safetensors").exists() and (tmp_path / "outside.safetensors").exists()
    (folder / "index.json").write_text("not json")
    assert opened(folder, log).entries == {} and list(folder.iterdir()) == [folder / "index.json"]


def test_the_folder_and_its_files_are_the_users_alone(tmp_path, log):
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    disk = opened(folder, log)
    written(disk, tokens(600))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o600}
    assert len(list(folder.iterdir())) == 2


def test_a_full_disk_stops_the_writing_not_the_reading(mounted, log):  # noqa: F811
    folder = mounted("small", f"size={64 * 4096}") / "cache"
    disk = opened(folder, log, budget=10**9)
    written(disk, tokens(600), size=100_000)
    written(disk, tokens(600, start=7), size=400_000)  # more than the file system holds
    assert len(log.lines) == 1 and "no more are written" in log.lines[0]
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
    written(disk, tokens(600, start=9), size=10)  # not written: the writing has stopped
    assert [e.tokens for e in diskcache.read_index(folder)] == [600]
    assert disk.read(disk.find(ME, tokens(700))[0]) == 100_000
    assert len(log.lines) == 1


def test_identity_binds_the_model_files_quantization_and_kv_settings(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"quantization": {"bits": 4, "group_size": 64}}))
    (model / "model.safetensors").write_bytes(b"w" * 10)
    first = diskcache.identity(str(model), {"kv_bits": None})
    assert diskcache.identity(str(model), {"kv_bits": None}) == first
    assert diskcache.identity(str(model), {"kv_bits": 8}) != first
    (model / "model.safetensors").write_bytes(b"v" * 11)  # re-pulled: other weights
    second = diskcache.identity(str(model), {"kv_bits": None})
    assert second != first
    (model / "config.json").write_text(json.dumps({"quantization": {"bits": 8, "group_size": 64}}))
    os.utime(model / "model.safetensors", ns=(0, (model / "model.safetensors").stat().st_mtime_ns))
    assert diskcache.identity(str(model), {"kv_bits": None}) != second


def test_serve_cache_lists_the_index_and_clear_empties_it(tmp_path, log):
    state = tmp_path / "state"
    assert "empty" in serve.cache_text(state)
    disk = opened(serve.cache_path(state), log, budget=10**8)
    written(disk, tokens(600), size=3 * 2**20)
    text = serve.cache_text(state, now=time.time() + 125)
    assert "tiny" in text and "600" in text and "3.0 MB" in text and "2 min 5 s ago" in text
    assert "1 prompt(s)" in text and str(serve.cache_path(state)) in text
    assert "Emptied" in serve.clear_cache(state) and not serve.cache_path(state).exists()
    assert "empty" in serve.cache_text(state)


def test_the_budget_key_is_auto_a_number_or_refused_with_its_name(tmp_path):
    auto = serve.disk_cache_bytes(config.resolve({}, home=tmp_path))
    assert 0 < auto <= 20 * 2**30
    assert serve.disk_cache_bytes(config.resolve({"serve_disk_cache_gb": 1.5}, home=tmp_path)) == 3 * 2**29
    assert serve.disk_cache_bytes(config.resolve({"serve_disk_cache_gb": 0}, home=tmp_path)) == 0
    with pytest.raises(MlxTasksError) as caught:
        config.resolve({"serve_disk_cache_gb": "lots"}, home=tmp_path).serve_disk_cache_gb
    assert "Config key 'mlx.serve_disk_cache_gb' must be \"auto\" or a number from 0 to 100000" in caught.value.message


def test_a_folder_that_cannot_be_made_leaves_the_server_without_a_disk_tier_and_says_so(mounted, log):  # noqa: F811
    folder = mounted("readonly", "ro") / "cache"
    assert diskcache.open_cache(folder, 10**6, logging.getLogger("test-diskcache"), save, load, 1.0) is None
    assert len(log.lines) == 1 and "off, its folder" in log.lines[0]
