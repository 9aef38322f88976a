"""The prompt cache's disk tier (issue 32) on the real server and engine with the tiny model: a conversation's
next turn reads its start from disk after the server was stopped and started, after serve.unload and after an
LRU unload for another model, with the usage of a memory hit; a damaged file and a changed model are skipped
without failing the request. The index and its rules without MLX: test_diskcache.py."""

import os
import shutil
import stat

import pytest

from mlxtasks import serve
from mlxtasks.protocol import ServedModel
from mlxtasks.runtime.server import diskcache

from .test_rcfile import mounted  # noqa: F401 (a fixture)
from .test_serve_e2e import free_port  # noqa: F401 (used by direct_server)
from .test_server_e2e import CHAT, call, direct_server  # noqa: F401 (a fixture)

pytestmark = pytest.mark.e2e

SYSTEM = "You are a careful agent. " + " ".join(
    f"Rule {i}: keep the files tidy and the tests green." for i in range(40)
)


@pytest.fixture
def serving(direct_server, tmp_path):  # noqa: F811
    """start(**spec fields): a server with the disk tier in tmp_path's state folder; (url, state)."""
    folder = serve.cache_path(tmp_path / "mlxtasks")

    def start(**more):
        return direct_server(disk_cache_folder=str(folder), disk_cache_bytes=2**30, **more)

    return start


class Chat:
    """An agent's conversation: the long system prompt, then a turn at a time, each answer kept."""

    def __init__(self, model: str = "tiny"):
        self.model, self.messages = model, [{"role": "system", "content": SYSTEM}]

    def turn(self, url: str, n: int) -> dict:
        self.messages.append({"role": "user", "content": f"Turn {n}: go on."})
        status, _, reply = call(
            url, "POST", CHAT, {"model": self.model, "messages": self.messages, "max_tokens": 3, "temperature": 0}
        )
        assert status == 200, reply
        self.messages.append({"role": "assistant", "content": reply["choices"][0]["message"]["content"]})
        return reply["usage"]


def seen(state) -> int:
    """Tokens of the longest prompt the index holds."""
    return max((e.tokens for e in diskcache.read_index(serve.cache_path(state))), default=0)


def test_a_stopped_and_started_server_reads_the_conversation_from_disk(serving):
    url, state = serving()
    chat = Chat()
    first = chat.turn(url, 1)
    assert first["prompt_tokens_details"]["cached_tokens"] == 0 and first["prompt_tokens"] > diskcache.MIN_TOKENS
    second = chat.turn(url, 2)  # a memory hit
    serve.stop(state)
    folder = serve.cache_path(state)
    assert seen(state) == second["total_tokens"]  # written when the server stopped
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o600}
    url, state = serving()
    chat.messages.append({"role": "user", "content": "Turn 3: go on."})
    status, _, reply = call(
        url, "POST", "/v1/messages", {"model": "tiny", "messages": chat.messages[1:], "system": SYSTEM, "max_tokens": 3}
    )
    assert status == 200, reply
    assert reply["usage"]["cache_read_input_tokens"] == second["total_tokens"]  # as Anthropic's API says a hit
    assert "removed" not in serve.log_path(state).read_text()


def test_after_serve_unload_the_next_turn_reads_from_disk(serving):
    url, state = serving()
    chat = Chat()
    first = chat.turn(url, 1)
    assert serve.unload(state, "tiny") == "Unloaded tiny."
    assert seen(state) == first["total_tokens"]
    assert chat.turn(url, 2)["prompt_tokens_details"]["cached_tokens"] == first["total_tokens"]


def test_after_an_lru_unload_for_another_model_the_next_turn_reads_from_disk(serving, tiny_model, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_model, other)
    (other / "config.json").write_text((other / "config.json").read_text() + " ")  # another model, to the key
    gb = 10**9
    installed = [ServedModel("tiny", str(tiny_model), [], need=gb), ServedModel("other", str(other), [], need=gb)]
    url, state = serving(installed=installed, budget=int(1.5 * gb))
    chat = Chat()
    first = chat.turn(url, 1)
    other_chat = Chat("other")
    assert other_chat.turn(url, 1)["prompt_tokens_details"]["cached_tokens"] == 0  # not tiny's cache
    assert "unloaded tiny (to make room for other)" in serve.log_path(state).read_text()
    assert chat.turn(url, 2)["prompt_tokens_details"]["cached_tokens"] == first["total_tokens"]


def test_a_damaged_file_or_a_changed_model_is_skipped_and_the_request_answered(serving, tiny_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    url, state = serving(model=model)
    chat = Chat()
    first = chat.turn(url, 1)
    serve.stop(state)
    [entry] = diskcache.read_index(serve.cache_path(state))
    (serve.cache_path(state) / entry.file).write_bytes(b"\0" * 100)  # damaged
    url, state = serving(model=model)
    assert chat.turn(url, 2)["prompt_tokens_details"]["cached_tokens"] == 0
    log = serve.log_path(state).read_text()
    assert log.count("prompt cache on disk: removed") == 1 and entry.file in log
    serve.stop(state)
    assert seen(state) > first["total_tokens"]  # turn 2 written again
    weights = next(model.glob("*.safetensors"))
    os.utime(weights, ns=(0, weights.stat().st_mtime_ns + 10**9))  # as a new download of the model would
    url, state = serving(model=model)
    assert chat.turn(url, 3)["prompt_tokens_details"]["cached_tokens"] == 0


def test_a_full_disk_stops_the_writing_and_the_server_answers_on(direct_server, mounted):  # noqa: F811
    small = mounted("small", f"size={16 * 4096}")  # 64 KB: less than one cache of this conversation
    url, state = direct_server(disk_cache_folder=str(small / "cache"), disk_cache_bytes=2**30)
    chat = Chat()
    chat.turn(url, 1)
    assert serve.unload(state, "tiny") == "Unloaded tiny."  # its cache goes to the disk now, which is full
    assert chat.turn(url, 2)["prompt_tokens_details"]["cached_tokens"] == 0
    chat.turn(url, 3)
    assert serve.log_path(state).read_text().count("prompt cache on disk: could not write") == 1
    assert sorted(p.name for p in (small / "cache").iterdir()) == ["index.json"]  # no half-written file


def test_another_conversation_with_the_same_system_prompt_reads_its_start_from_disk(serving):
    url, state = serving()
    first = Chat().turn(url, 1)
    serve.unload(state, "tiny")
    cached = Chat().turn(url, 7)["prompt_tokens_details"]["cached_tokens"]  # another first message
    assert 0 < cached < first["prompt_tokens"] and cached % diskcache.BLOCK == 0  # whole blocks of the shared start
