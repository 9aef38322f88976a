"""The server's request path, its three APIs, streaming, disconnects and errors, on the real server code with
a stand-in engine (tests/support/fake_engine.py) and Starlette's test client or a real uvicorn on loopback:
no MLX needed. What needs a real model (mlx_lm's templates and tool parsers, batching, the prompt cache) is in
test_server_e2e.py, test_anthropic_e2e.py and test_responses_e2e.py."""

import json
import logging
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest

pytest.importorskip("starlette", reason="the server's tests need starlette (pip install -e '.[test]')")

from starlette.testclient import TestClient  # noqa: E402

from mlxtasks.protocol import ServedModel, ServeSpec  # noqa: E402
from mlxtasks.runtime.server import anthropic, core, openai, responses  # noqa: E402
from mlxtasks.runtime.server.__main__ import Printable  # noqa: E402
from mlxtasks.runtime.server.pool import Pool  # noqa: E402
from mlxtasks.runtime.server.web import build  # noqa: E402

from .support.fake_engine import FakeEngine  # noqa: E402

HI = [{"role": "user", "content": "hi"}]
GB = 10**9
CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
WEATHER = {"name": "get_weather", "description": "The weather.", "parameters": {"type": "object"}}
MAP = {"claude-*": "tiny", "gpt-*": "tiny"}


class Lines(logging.Handler):
    """Log lines, formatted, into a list."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class Server:
    """The app over a Pool of fake engines: `client` (Starlette's), `log` (its lines), `engines` (made so far)."""

    def __init__(
        self, context=4096, queue_limit=32, host="127.0.0.1", budget=0, need=0, others=(), kv_token_bytes=0, **fake
    ) -> None:
        served = ServedModel("tiny", "/models/tiny", ["tiny-4bit"], need, context, kv_token_bytes=kv_token_bytes)
        self.spec = ServeSpec.starting(
            served,
            installed=[served, *others],
            model_map=MAP,
            queue_limit=queue_limit,
            host=host,
            budget=budget,
            prompt_cache_bytes=2 * GB,
        )
        self.lines: list[str] = []
        self.log = logging.getLogger(f"test-server-{id(self)}")
        handler = Lines(self.lines)
        handler.setFormatter(Printable("%(message)s"))
        self.log.addHandler(handler)
        self.log.setLevel(logging.INFO)
        self.engines: list[FakeEngine] = []

        def make(spec, served, cache_bytes):
            self.engines.append(FakeEngine(spec, served, cache_bytes, **fake))
            return self.engines[-1]

        self.pool = Pool(self.spec, lambda exc: None, self.log, make)
        self.app = build(self.spec, self.pool, self.log, [openai, anthropic, responses])
        self.client = TestClient(self.app, base_url="http://127.0.0.1:8080")

    def post(self, path, body, **headers):
        return self.client.post(path, json=body, headers=headers)

    def events(self, path, body):
        """A streamed answer's events: (name or None, data) for each, pings left out."""
        with self.client.stream("POST", path, json={**body, "stream": True}) as answer:
            assert answer.status_code == 200, answer.read()
            text = "".join(answer.iter_text())
        out = []
        for block in text.split("\n\n"):
            lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
            if "data" in lines and lines["data"] != "[DONE]":
                out.append((lines.get("event"), json.loads(lines["data"])))
        return out


@pytest.fixture
def server():
    return Server()


def say(text):
    return lambda prompt: text


# --- one request path: the same answer in every API ---


def openai_chat(server, stream, **extra):
    body = {"model": "tiny", "messages": HI, **extra}
    if not stream:
        reply = server.post("/v1/chat/completions", body).json()
        choice = reply["choices"][0]
        return (
            choice["message"]["content"] or "",
            choice["message"].get("tool_calls") or [],
            choice["finish_reason"],
            reply["usage"],
        )
    events = [
        data for _, data in server.events("/v1/chat/completions", {**body, "stream_options": {"include_usage": True}})
    ]
    deltas = [c["delta"] for e in events for c in e["choices"]]
    calls = [call for d in deltas for call in d.get("tool_calls", [])]
    finish = [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]]
    return "".join(d.get("content") or "" for d in deltas), calls, finish[-1], events[-1]["usage"]


def test_a_chat_answer_streamed_and_whole_agree():
    server = Server(reply=say("Hello there, friend."))
    whole, streamed = openai_chat(server, False), openai_chat(server, True)
    assert whole[0] == streamed[0] == "Hello there, friend."
    assert whole[2] == streamed[2] == "stop"
    assert whole[3]["completion_tokens"] == streamed[3]["completion_tokens"] == len("Hello there, friend.") + 1


def test_the_same_tool_call_comes_back_in_each_api_streamed_or_not():
    server = Server(reply=say("Let me look." + CALL))
    tools = [{"type": "function", "function": WEATHER}]
    for stream in (False, True):
        text, calls, finish, _ = openai_chat(server, stream, tools=tools)
        assert (text, finish) == ("Let me look.", "tool_calls")
        assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
            ("get_weather", {"city": "Paris"})
        ]
    message = {
        "model": "claude-x",
        "max_tokens": 200,
        "messages": HI,
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
    }
    whole = server.post("/v1/messages", message).json()
    assert whole["stop_reason"] == "tool_use"
    assert [(b["type"], b.get("text") or b.get("input")) for b in whole["content"]] == [
        ("text", "Let me look."),
        ("tool_use", {"city": "Paris"}),
    ]
    streamed = server.events("/v1/messages", message)
    starts = [data["content_block"]["type"] for name, data in streamed if name == "content_block_start"]
    assert starts == ["text", "tool_use"]
    assert [d["delta"]["stop_reason"] for n, d in streamed if n == "message_delta"] == ["tool_use"]
    request = {"model": "gpt-5", "input": "hi", "tools": [{"type": "function", **WEATHER}]}
    kinds = [item["type"] for item in server.post("/v1/responses", request).json()["output"]]
    done = [d["response"] for n, d in server.events("/v1/responses", request) if n == "response.completed"]
    assert kinds == [item["type"] for item in done[0]["output"]] == ["message", "function_call"]


def test_responses_keeps_text_and_calls_in_order_whole_as_streamed():
    server = Server(reply=say("First." + CALL + "Then more."))
    request = {"model": "tiny", "input": "hi", "tools": [{"type": "function", **WEATHER}]}
    whole = server.post("/v1/responses", request).json()["output"]
    streamed = [d["response"] for n, d in server.events("/v1/responses", request) if n == "response.completed"][0]
    assert (
        [i["type"] for i in whole] == [i["type"] for i in streamed["output"]] == ["message", "function_call", "message"]
    )


def prompt_seen(server, path, body) -> str:
    """The prompt the model was given (the fake answers with it)."""
    server.engines and server.engines.clear()
    answer = server.post(path, body).json()
    return (
        answer.get("choices", [{}])[0].get("message", {}).get("content")
        or next((b["text"] for b in answer.get("content", []) if b["type"] == "text"), None)
        or answer["output"][0]["content"][0]["text"]
    )


def test_text_parts_join_the_same_way_and_the_model_map_applies_in_every_api():
    server = Server(reply=lambda prompt: prompt)
    seen = {
        prompt_seen(
            server,
            "/v1/chat/completions",
            {
                "model": "gpt-4o",
                "max_tokens": 500,
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}
                ],
            },
        ),
        prompt_seen(
            server,
            "/v1/messages",
            {
                "model": "claude-x",
                "max_tokens": 500,
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}
                ],
            },
        ),
        prompt_seen(
            server,
            "/v1/responses",
            {
                "model": "gpt-5",
                "max_output_tokens": 500,
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_text", "text": "one"}, {"type": "input_text", "text": "two"}],
                    }
                ],
            },
        ),
    }
    assert seen == {"<user>one\n\ntwo\n<assistant>"}


def test_usage_counts_the_cached_prompt_in_each_api():
    server = Server(reply=say("ok"))
    first = server.post("/v1/chat/completions", {"messages": HI}).json()
    turn = HI + [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}]
    again = server.post("/v1/chat/completions", {"messages": turn}).json()
    assert first["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    cached = again["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert 0 < cached < again["usage"]["prompt_tokens"]
    message = server.post("/v1/messages", {"model": "tiny", "max_tokens": 9, "messages": turn}).json()
    assert message["usage"]["cache_read_input_tokens"] == cached
    assert message["usage"]["input_tokens"] == again["usage"]["prompt_tokens"] - cached


def test_a_stop_sequence_ends_the_answer_and_anthropic_names_it(server):
    body = {"model": "tiny", "max_tokens": 50, "messages": HI, "stop_sequences": ["said"]}
    whole = server.post("/v1/messages", body).json()
    assert (whole["content"][0]["text"], whole["stop_reason"], whole["stop_sequence"]) == (
        "You ",
        "stop_sequence",
        "said",
    )
    ended = [d["delta"] for n, d in server.events("/v1/messages", body) if n == "message_delta"]
    assert ended == [{"stop_reason": "stop_sequence", "stop_sequence": "said"}]
    chat = server.post("/v1/chat/completions", {"messages": HI, "stop": "said"}).json()["choices"][0]
    assert (chat["message"]["content"], chat["finish_reason"]) == ("You ", "stop")


def test_an_answer_cut_by_max_tokens_mid_character_does_not_end_in_a_replacement():
    server = Server(reply=say("caf\u00e9!"))
    cut = server.post("/v1/chat/completions", {"messages": HI, "max_tokens": 4}).json()["choices"][0]
    assert (cut["message"]["content"], cut["finish_reason"]) == ("caf", "length")
    streamed = openai_chat(server, True, max_tokens=4)
    assert streamed[:3] == ("caf", [], "length")
    message = server.post("/v1/messages", {"model": "tiny", "max_tokens": 4, "messages": HI}).json()
    assert (message["content"][0]["text"], message["stop_reason"]) == ("caf", "max_tokens")


def test_completions_echo_ids_and_choices(server):
    reply = server.post("/v1/completions", {"prompt": "abc", "echo": True, "max_tokens": 3, "n": 2}).json()
    assert [c["text"] for c in reply["choices"]] == ["abcYou", "abcYou"]
    ids = server.post("/v1/completions", {"prompt": [4, 5, 6], "max_tokens": 2}).json()
    assert ids["usage"]["prompt_tokens"] == 3


# --- refusals: each in its API's shape ---


REFUSED = [
    ("max_tokens true is not 1", {"messages": HI, "max_tokens": True}, "max_tokens"),
    ('stream "yes" is not true', {"messages": HI, "stream": "yes"}, "stream"),
    (
        "an image part",
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
        "this model reads text only",
    ),
    ("tool_choice required without tools", {"messages": HI, "tool_choice": "required"}, '"required"'),
    ("a token id beyond the vocabulary", {"messages": HI, "logit_bias": {"99999": 1}}, "token id 99999"),
    ("a bad keep_alive", {"messages": HI, "keep_alive": "soon"}, "keep_alive"),
    ("too many stop strings", {"messages": HI, "stop": list("abcde")}, "stop"),
    ("prompt past the context", {"messages": [{"role": "user", "content": "x" * 5000}]}, "context is 4096 tokens"),
]


@pytest.mark.parametrize("what, body, said", REFUSED, ids=[r[0] for r in REFUSED])
def test_openai_refusals(server, what, body, said):
    answer = server.post("/v1/chat/completions", body)
    assert answer.status_code == 400 and said in answer.json()["error"]["message"]


ANTHROPIC_REFUSED = [
    ("max_tokens true", {"max_tokens": True}, "max_tokens"),
    (
        "an image block",
        {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
        "this model reads text only",
    ),
    (
        "a document block",
        {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
        "this model reads text only",
    ),
    ("tool_choice any without tools", {"tool_choice": {"type": "any"}}, '"required"'),
    ("stream yes", {"stream": "yes"}, "stream"),
]


@pytest.mark.parametrize("what, change, said", ANTHROPIC_REFUSED, ids=[r[0] for r in ANTHROPIC_REFUSED])
def test_anthropic_refusals(server, what, change, said):
    answer = server.post("/v1/messages", {"model": "tiny", "max_tokens": 5, "messages": HI, **change})
    body = answer.json()
    assert answer.status_code == 400 and body["type"] == "error" and said in body["error"]["message"]


def test_responses_refuses_an_image(server):
    answer = server.post(
        "/v1/responses", {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:x"}]}]}
    )
    assert answer.status_code == 400 and "reads text only" in answer.json()["error"]["message"]


def test_errors_below_v1_messages_are_anthropic_shaped(server):
    wrong_host = server.client.post("/v1/messages", json={}, headers={"Host": "evil.example"})
    assert wrong_host.status_code == 403 and wrong_host.json()["error"]["type"] == "permission_error"
    missing = server.client.post("/v1/messages/nothing", json={})
    assert missing.status_code == 404 and missing.json()["type"] == "error"
    method = server.client.get("/v1/messages")
    assert method.status_code == 405 and method.json()["type"] == "error" and method.headers["allow"] == "POST"
    openai_method = server.client.get("/v1/chat/completions")
    assert openai_method.status_code == 405 and "error" in openai_method.json()
    assert openai_method.headers["allow"] == "POST"
    media = server.client.post("/v1/messages", content=b"{}", headers={"Content-Type": "text/plain"})
    assert media.status_code == 415 and media.json()["type"] == "error"
    unknown = server.post("/v1/messages", {"model": "nope", "max_tokens": 5, "messages": HI})
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"


def test_count_tokens_counts_a_prompt_longer_than_the_context(server):
    long = {"model": "tiny", "messages": [{"role": "user", "content": "x" * 10_000}]}
    answer = server.post("/v1/messages/count_tokens", long)
    assert answer.status_code == 200 and answer.json()["input_tokens"] > 10_000


def test_a_model_is_retrieved_by_name(server):
    assert server.client.get("/v1/models/tiny").json()["id"] == "tiny"
    assert server.client.get("/v1/models/tiny-4bit").json()["id"] == "tiny"
    missing = server.client.get("/v1/models/gpt-9")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_a_full_queue_is_429_for_openai_and_529_for_anthropic():
    gate = threading.Event()
    server = Server(queue_limit=1, gate=gate)
    held = threading.Thread(target=server.post, args=("/v1/chat/completions", {"messages": HI}))
    held.start()
    try:
        for _ in range(200):
            if server.pool.requests:
                break
            time.sleep(0.01)
        busy = server.post("/v1/chat/completions", {"messages": HI})
        assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
        overloaded = server.post("/v1/messages", {"model": "tiny", "max_tokens": 5, "messages": HI})
        assert overloaded.status_code == 529 and overloaded.json()["error"]["type"] == "overloaded_error"
    finally:
        gate.set()
        held.join(10)


def test_a_hostile_path_is_logged_on_one_line_without_escapes(server):
    server.client.get("/x%0aFORGED%1b%5b31m%00")
    logged = [line for line in server.lines if "FORGED" in line]
    assert len(logged) == 1 and "\n" not in logged[0] and "\x1b" not in logged[0] and "\x00" not in logged[0]
    assert "\\nFORGED\\x1b[31m\\x00" in logged[0]


# --- a real server on loopback: keep-alives and clients that leave ---


@pytest.fixture
def live(monkeypatch):
    """start(**fake) -> (Server, base URL) of a real uvicorn on a free loopback port, stopped after the test."""
    uvicorn = pytest.importorskip("uvicorn")
    started = []

    def start(**fake):
        server = Server(**fake)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        running = uvicorn.Server(
            uvicorn.Config(server.app, host="127.0.0.1", port=port, log_level="error", lifespan="off")
        )
        thread = threading.Thread(target=running.run, daemon=True)
        thread.start()
        for _ in range(500):
            if running.started:
                break
            time.sleep(0.01)
        started.append((running, thread))
        return server, f"http://127.0.0.1:{port}"

    yield start
    for running, thread in started:
        running.should_exit = True
        thread.join(10)


def wait_until(condition, what):
    for _ in range(1000):
        if condition():
            return
        time.sleep(0.01)
    pytest.fail(what)


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_leaves_stops_its_generation(live, stream):
    gate = threading.Event()
    server, url = live(gate=gate, reply=say("x" * 1000))
    connection = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    body = json.dumps({"messages": HI, "stream": stream, "max_tokens": 1000}).encode()
    connection.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    wait_until(lambda: server.pool.requests == 1, "the request did not start")
    connection.close()
    gate.set()
    wait_until(lambda: server.pool.requests == 0, "the generation went on after its client left")
    assert server.engines[0]._thread.is_alive()


def test_a_stream_with_nothing_to_say_sends_keep_alives(live, monkeypatch):
    monkeypatch.setattr(core, "PING_S", 0.05)
    gate = threading.Event()
    server, url = live(gate=gate)
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=10)
    connection.request(
        "POST",
        "/v1/chat/completions",
        json.dumps({"messages": HI, "stream": True, "max_tokens": 3}),
        {"Content-Type": "application/json"},
    )
    answer = connection.getresponse()
    lines = [answer.readline() for _ in range(4)]  # the role's chunk, then keep-alives while the engine waits
    gate.set()
    rest = answer.read().decode()
    assert lines[2] == b": ping\n" and '"finish_reason": "length"' in rest


def test_the_prompt_cache_is_counted_inside_the_memory_budget():
    """A model's prompt cache may hold what the budget leaves beside the loaded models, at most its setting; a
    second model that does not fit beside the first and its cache has the first, idle, unloaded."""
    other = ServedModel("other", "/models/other", [], 3 * GB, 4096)
    roomy = Server(budget=8 * GB, need=3 * GB, others=[other])
    for model in ("tiny", "other"):
        roomy.post("/v1/chat/completions", {"model": model, "messages": HI})
    rows = {row["model"]: row["prompt_cache"] for row in roomy.client.get("/v1/mlxtasks/ps").json()["models"]}
    assert rows == {"tiny": 2 * GB, "other": 0}  # 3 + 2, then 3 + what 8 GB leaves
    tight = Server(budget=6 * GB, need=3 * GB, others=[other])
    for model in ("tiny", "other"):
        tight.post("/v1/chat/completions", {"model": model, "messages": HI})
    rows = {row["model"]: row["prompt_cache"] for row in tight.client.get("/v1/mlxtasks/ps").json()["models"]}
    assert rows == {"other": 2 * GB} and tight.engines[0].stopping


@pytest.mark.parametrize(
    "budget, max_tokens, kv_token_bytes, most",
    [(8 * GB, 200, 0, 4), (8 * GB, 300, 0, 3), (8 * GB, 300, GB // 100, 4), (0, 300, 0, 4)],
)
def test_streams_join_the_batch_only_while_their_kv_cache_fits_the_budget(budget, max_tokens, kv_token_bytes, most):
    """Under a budget, a model's batch holds the context its memory need counts (1,000 tokens here) and what the
    budget leaves beside the loaded models (8 GB less 3 for the model and 2 for its prompt cache: 300 tokens at
    10 MB each). Streams are padded to the longest, so 4 of (prompt + 300) tokens pass 1,000 and the fourth
    waits for one to end, unless the budget's spare 300 tokens make room. No budget, no wait."""
    server = Server(budget=budget, need=3 * GB, context=1000, kv_token_bytes=kv_token_bytes, reply=say("x" * 400))
    body = {"model": "tiny", "messages": HI, "n": 4, "max_tokens": max_tokens}
    reply = server.post("/v1/chat/completions", body).json()
    assert [c["finish_reason"] for c in reply["choices"]] == ["length"] * 4
    assert server.engines[0].most == most


ORPHAN = """
import os, sys, time
sys.platform = "darwin"  # a Mac's fact: no parent-death signal, so only the server's own look can end it
from mlxtasks.protocol import ServeSpec
from mlxtasks.runtime.server.__main__ import supervise
supervise(ServeSpec(alias="", model="", names=[]))
print(os.getpid(), flush=True)  # the serving child from here on
time.sleep(60)
"""


@pytest.mark.slow
def test_the_server_ends_when_its_supervisor_is_killed():
    """A launchd job's supervisor killed (SIGKILL: it cannot pass anything on) leaves no server behind."""
    supervisor = subprocess.Popen([sys.executable, "-c", ORPHAN], stdout=subprocess.PIPE, text=True)
    server = psutil.Process(int(supervisor.stdout.readline()))
    supervisor.kill()
    supervisor.wait(10)
    try:
        server.wait(10)  # psutil.TimeoutExpired: the server outlived its supervisor
    finally:
        if server.is_running():
            server.kill()


# --- structured answers: each API's format reaches the engine as one Format (the fake engine keeps them) ---

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOL = {"type": "function", "function": WEATHER}
OTHER = {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}}
ANTHROPIC_TOOLS = [{"name": "get_weather", "input_schema": {"type": "object"}}, {"name": "other"}]
FORMATS = [
    (
        "chat json_schema",
        "/v1/chat/completions",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA, "strict": True}}},
        (SCHEMA, "response_format.json_schema.schema", None),
    ),
    (
        "chat json_object",
        "/v1/chat/completions",
        {"response_format": {"type": "json_object"}},
        (None, "response_format", None),
    ),
    ("chat text", "/v1/chat/completions", {"response_format": {"type": "text"}}, None),
    (
        "completions json_object",
        "/v1/completions",
        {"prompt": "a", "response_format": {"type": "json_object"}},
        (None, "response_format", None),
    ),
    (
        "responses json_schema",
        "/v1/responses",
        {"input": "hi", "text": {"format": {"type": "json_schema", "name": "x", "schema": SCHEMA}}},
        (SCHEMA, "text.format.schema", None),
    ),
    (
        "anthropic output_format",
        "/v1/messages",
        {"output_format": {"type": "json_schema", "schema": SCHEMA}},
        (SCHEMA, "output_format.schema", None),
    ),
    (
        "anthropic output_config",
        "/v1/messages",
        {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
        (SCHEMA, "output_config.format.schema", None),
    ),
    (
        "chat tool_choice required",
        "/v1/chat/completions",
        {"tools": [TOOL, OTHER], "tool_choice": "required"},
        (None, "tool_choice", ["get_weather", "other"]),
    ),
    (
        "chat a named tool",
        "/v1/chat/completions",
        {"tools": [TOOL, OTHER], "tool_choice": {"type": "function", "function": {"name": "other"}}},
        (None, "tool_choice", ["other"]),
    ),
    (
        "anthropic any tool",
        "/v1/messages",
        {"tools": ANTHROPIC_TOOLS, "tool_choice": {"type": "any"}},
        (None, "tool_choice", ["get_weather", "other"]),
    ),
    (
        "anthropic a named tool",
        "/v1/messages",
        {"tools": ANTHROPIC_TOOLS, "tool_choice": {"type": "tool", "name": "get_weather"}},
        (None, "tool_choice", ["get_weather"]),
    ),
    (
        "responses a named tool",
        "/v1/responses",
        {
            "input": "hi",
            "tools": [{"type": "function", **WEATHER}],
            "tool_choice": {"type": "function", "name": "get_weather"},
        },
        (None, "tool_choice", ["get_weather"]),
    ),
    ("chat tool_choice auto", "/v1/chat/completions", {"tools": [TOOL], "tool_choice": "auto"}, None),
]


@pytest.mark.parametrize("what, path, body, expected", FORMATS, ids=[f[0] for f in FORMATS])
def test_each_api_asks_the_engine_for_its_structured_answer(server, what, path, body, expected):
    base = {"model": "tiny", "max_tokens": 5, **({} if "input" in body or "prompt" in body else {"messages": HI})}
    answer = server.post(path, {**base, **body})
    assert answer.status_code == 200, answer.text
    formats = server.engines[0].formats
    if expected is None:
        assert formats == []
        return
    [asked] = formats
    tools = [tool["function"]["name"] for tool in asked.tools] if asked.tools is not None else None
    assert (asked.schema, asked.param, tools) == expected


FORMAT_REFUSED = [
    ("an unknown type", "/v1/chat/completions", {"response_format": {"type": "xml"}}, "response_format.type"),
    (
        "a schema that is not an object",
        "/v1/chat/completions",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": [1]}}},
        "response_format.json_schema.schema",
    ),
    (
        "json_schema not an object",
        "/v1/chat/completions",
        {"response_format": {"type": "json_schema", "json_schema": "x"}},
        "response_format.json_schema",
    ),
    (
        "a tool_choice whose function is not an object",
        "/v1/chat/completions",
        {
            "tools": [TOOL],
            "tool_choice": {"type": "function", "function": 5},
            "response_format": {"type": "json_object"},
        },
        "response_format",
    ),
    (
        "a named tool that is not there",
        "/v1/chat/completions",
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        "tool_choice",
    ),
    (
        "a schema and a required call at once",
        "/v1/chat/completions",
        {"tools": [TOOL], "tool_choice": "required", "response_format": {"type": "json_object"}},
        "response_format",
    ),
    (
        "responses text.format of an unknown type",
        "/v1/responses",
        {"input": "hi", "text": {"format": {"type": "yaml"}}},
        "text.format.type",
    ),
    ("anthropic output_format not an object", "/v1/messages", {"output_format": "json"}, "output_format"),
]


@pytest.mark.parametrize("what, path, body, param", FORMAT_REFUSED, ids=[f[0] for f in FORMAT_REFUSED])
def test_a_wrong_structured_answer_is_refused_naming_its_part(server, what, path, body, param):
    base = {"model": "tiny", "max_tokens": 5, **({} if "input" in body else {"messages": HI})}
    answer = server.post(path, {**base, **body})
    error = answer.json()["error"]
    assert answer.status_code == 400 and error["message"].startswith(f"{param}: "), error
    assert server.engines == [] or server.engines[0].formats == []  # refused before the engine is asked
