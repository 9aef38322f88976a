"""Models on demand, on a real server (the runtime server itself, as tests/test_server_e2e.py starts it): the
tiny model installed under several names, each loaded when a request names it, unloaded after its keep-alive
time or for room under a small budget; requests waiting for a load; cached prompt tokens in usage. Every wait
is bounded polling on what the server shows (/v1/mlxtasks/ps), never a timing."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from mlxtasks.protocol import ServedModel

from . import test_server_e2e
from .test_server_e2e import CHAT, HI, call, wait_for

pytestmark = pytest.mark.e2e
direct_server = test_server_e2e.direct_server  # the fixture, shared


def installed(tiny_model, *aliases, need=0):
    return [ServedModel(alias, str(tiny_model), [f"{alias}-folder"], need, temperature=0.0) for alias in aliases]


def ask(url, model, **more):
    status, _, reply = call(url, "POST", CHAT, {"model": model, "messages": HI, "max_tokens": 2, **more})
    return status, reply


def ps(url):
    return call(url, "GET", "/v1/mlxtasks/ps")[2]


def loaded(url):
    return sorted(m["model"] for m in ps(url)["models"])


def test_a_model_loads_when_named_and_unloads_once_its_keep_alive_has_passed(direct_server, tiny_model):
    url, state = direct_server(alias="", model="", installed=installed(tiny_model, "a", "b"), keep_alive=1.0)
    assert loaded(url) == [] and call(url, "GET", "/v1/models")[2]["data"][0]["id"] == "a"
    assert ask(url, "b-folder", keep_alive=-1)[0] == 200  # a model by its folder's name, kept
    status, reply = ask(url, "a")  # a second one, kept for the spec's second
    assert status == 200 and reply["model"] == "a"
    wait_for(lambda: loaded(url) == ["b"], "a stayed loaded past its keep-alive")
    wait_for(
        lambda: "unloaded a (idle)" in (state / "serve.log").read_text(), "a's unload was not logged"
    )  # once freed
    [row] = ps(url)["models"]
    assert row["model"] == "b" and row["requests"] == 0 and row["unloads_in"] is None
    missing = ask(url, None)
    assert missing[0] == 400 and missing[1]["error"]["code"] == "model_required"  # no model was named at start


def test_keep_alive_0_unloads_after_the_answer_and_minus_1_keeps_it(direct_server, tiny_model):
    url, _ = direct_server(installed=installed(tiny_model, "a", "b"))  # "tiny" loaded at start, kept
    assert loaded(url) == ["tiny"] and ps(url)["models"][0]["unloads_in"] is None
    assert ask(url, "a", keep_alive="-1")[0] == 200
    assert ask(url, "b", keep_alive=0)[0] == 200
    wait_for(lambda: "b" not in loaded(url), "keep_alive 0 left the model loaded")
    assert loaded(url) == ["a", "tiny"]
    assert ask(url, "tiny", keep_alive="0s")[0] == 200  # a request's keep_alive replaces the model's
    wait_for(lambda: loaded(url) == ["a"], "keep_alive 0s left tiny loaded")
    bad = ask(url, "a", keep_alive="soon")
    assert bad[0] == 400 and bad[1]["error"]["param"] == "keep_alive"


def test_under_a_small_budget_the_least_recently_used_model_is_unloaded(direct_server, tiny_model):
    too_big = ServedModel("huge", str(tiny_model), [], need=1000)
    url, state = direct_server(
        alias="",
        model="",
        installed=[*installed(tiny_model, "a", "b", "c", need=100), too_big],
        budget=250,
        prompt_cache_bytes=0,
    )  # the budget counts prompt caches too (test_server.py)
    for model in ["a", "b", "a"]:  # a used last: b is the least recently used
        assert ask(url, model)[0] == 200
    assert loaded(url) == ["a", "b"]
    assert ask(url, "c")[0] == 200
    assert loaded(url) == ["a", "c"] and "unloaded b (to make room for c)" in (state / "serve.log").read_text()
    status, reply = ask(url, "huge")
    assert status == 422 and reply["error"]["code"] == "model_too_big" and "needs about" in reply["error"]["message"]
    status, reply = ask(url, "gpt-4o")
    assert status == 404 and reply["error"]["code"] == "model_not_found"
    assert loaded(url) == ["a", "c"]


GATED = """
import os, time
from mlxtasks.runtime.server import engine
loaded = engine.load
def gated(*args, **kwargs):
    while not os.path.exists(GATE):  # the test opens the gate once both requests wait
        time.sleep(0.05)
    return loaded(*args, **kwargs)
engine.load = gated
from mlxtasks.runtime.server.__main__ import main
main()
"""


def test_two_requests_for_a_model_still_loading_are_both_answered(direct_server, tiny_model, tmp_path):
    gate = tmp_path / "gate"
    url, state = direct_server(
        GATED.replace("GATE", repr(str(gate))), alias="", model="", installed=installed(tiny_model, "a")
    )
    with ThreadPoolExecutor(2) as pool:
        both = [pool.submit(ask, url, "a") for _ in range(2)]
        wait_for(lambda: ps(url)["waiting"] == {"a": 2}, "the requests did not both wait for the load")
        gate.touch()
        assert [f.result()[0] for f in both] == [200, 200]
    assert (state / "serve.log").read_text().count("loading a from") == 1


def test_a_second_turn_that_extends_the_first_reports_its_cached_prompt_tokens(direct_server):
    url, _ = direct_server()
    first = [{"role": "user", "content": "Tell me about cats, in a few words."}]
    one = call(url, "POST", CHAT, {"messages": first, "max_tokens": 4, "temperature": 0})[2]
    assert one["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    second = first + [
        {"role": "assistant", "content": one["choices"][0]["message"]["content"]},
        {"role": "user", "content": "And dogs?"},
    ]
    two = call(
        url,
        "POST",
        CHAT,
        {
            "messages": second,
            "max_tokens": 4,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )[2]
    usage = json.loads(two.decode().split("data: ")[-2])["usage"]
    assert 0 < usage["prompt_tokens_details"]["cached_tokens"] < usage["prompt_tokens"]


COLOURS = ["red", "blue", "green", "small", "big", "old", "new", "hot", "cold", "soft"]


def test_ten_turns_resent_in_full_each_prefill_only_what_the_last_turn_added(direct_server, real_model):
    """An agent's way: every turn sends the whole conversation. What the server saw before (the last prompt and
    its answer's tokens) comes from the cache; only the new user message is prefilled."""
    url, _ = direct_server(model=real_model)
    messages, seen, uncached = [{"role": "system", "content": "You are a helpful assistant. Answer briefly."}], 0, []
    for colour in COLOURS:
        messages.append({"role": "user", "content": f"Name one thing that is {colour}."})
        status, _, reply = call(url, "POST", CHAT, {"messages": messages, "max_tokens": 12, "temperature": 0})
        assert status == 200, reply
        usage = reply["usage"]
        assert usage["prompt_tokens_details"]["cached_tokens"] == seen
        uncached.append(usage["prompt_tokens"] - seen)
        seen = usage["prompt_tokens"] + usage["completion_tokens"]
        messages.append({"role": "assistant", "content": reply["choices"][0]["message"]["content"]})
    assert seen > 10 * 30 and max(uncached[1:]) < 20  # turn 10 prefilled its own user message, not 300 tokens


# A Mac's Metal facts as data: MLX on this machine reports no recommended working set, and set_wired_limit here
# only records the limit each caller sets.
WIRED = """
import sys
import mlx.core as mx
limits = [0]
mx.device_info = lambda: {"max_recommended_working_set_size": 5 << 30}
def set_wired_limit(limit):
    limits.append(limit)
    return limits[-2]
mx.set_wired_limit = set_wired_limit
mx.synchronize = lambda *streams: None
from mlx_lm import load
from mlx_lm.generate import BatchGenerator
from mlxtasks.runtime.server.engine import wire_once
if sys.argv[2] == "server":
    wire_once()
model, _ = load(sys.argv[1])
first, second = BatchGenerator(model), BatchGenerator(model)  # two models' engines
first.close()  # the first one unloaded
print(limits[-1])
"""


def test_unloading_the_first_model_leaves_the_others_wired(mlx_run, tiny_model):
    """Each BatchGenerator restores the wired limit it found: the server wires once at start (as mlx_lm.server
    does), so a restore never unwires the models still loaded."""
    alone = mlx_run(WIRED, str(tiny_model), "generators alone")
    served = mlx_run(WIRED, str(tiny_model), "server")
    assert alone.returncode == served.returncode == 0, alone.stderr + served.stderr
    assert int(alone.stdout) == 0  # what the server did before: the remaining model unwired
    assert int(served.stdout) == 5 << 30
