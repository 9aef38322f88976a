"""Our server against the requests that broke mlx_lm.server (issue 18's list), on a real running server with
the tiny model: each gets its OpenAI-shaped 4xx or a correct answer, the next normal request succeeds, and
the process lives throughout. Also: a client that leaves stops its generation, a full queue answers 429,
an engine fault ends the process, which serve.status reports as a crash, a seed repeats its answer, and on
a model with Qwen2.5-Coder's tokens, suffix fills in the middle and tool calls come back in OpenAI's shape."""

import http.client
import http.server
import json
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil
import pytest

from mlxtasks import serve
from mlxtasks.protocol import ServeSpec

from .support.fixtures import TINY_MODEL_SCRIPT
from .support.helpers import invoke
from .test_serve_e2e import client, free_port, paths, server, server_pid, state_of  # noqa: F401 (fixtures)

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]


def call(url, method, path, body=None, **headers):
    """(status, headers, decoded JSON or raw bytes) of one request; body: a dict (sent as JSON) or bytes."""
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    sent = {"Content-Type": "application/json", **headers} if data is not None else headers
    connection.request(method, path, body=data, headers=sent)
    answer = connection.getresponse()
    raw = answer.read()
    try:
        return answer.status, answer.headers, json.loads(raw)
    except ValueError:
        return answer.status, answer.headers, raw


def normal_request_works(url, home):
    status, _, reply = call(url, "POST", CHAT, {"model": "qwen7b", "messages": HI, "max_tokens": 2, "temperature": 0})
    assert status == 200 and reply["usage"]["completion_tokens"] == 2
    assert psutil.pid_exists(server_pid(home))


TOO_LONG = "word " * 200_000  # about a megabyte: far past the 4096-token context, under the body limit

REFUSED = [
    (
        "a logit_bias token id beyond the vocabulary",
        CHAT,
        {"messages": HI, "logit_bias": {"2000000000": 5}},
        400,
        "invalid_token_id",
        "token id 2000000000 is outside",
    ),
    (
        "a prompt token id beyond the vocabulary",
        "/v1/completions",
        {"prompt": [1, 2, 99999]},
        400,
        "invalid_token_id",
        "token id 99999",
    ),
    ("stop that is not a string", CHAT, {"messages": HI, "stop": [1]}, 400, "invalid_value", "stop"),
    ("a wrong type", CHAT, {"messages": HI, "max_tokens": "many"}, 400, "invalid_value", "max_tokens"),
    (
        "prompt and max_tokens past the context",
        CHAT,
        {"messages": HI, "max_tokens": 5000},
        400,
        "context_length_exceeded",
        "context is 4096 tokens",
    ),
    (
        "a prompt far past the context",
        "/v1/completions",
        {"prompt": TOO_LONG, "max_tokens": 5},
        400,
        "context_length_exceeded",
        "context is 4096 tokens",
    ),
    (
        "suffix on a model without fill-in-the-middle tokens",
        "/v1/completions",
        {"prompt": "def f(", "suffix": "):"},
        422,
        "unsupported_by_model",
        "no fill-in-the-middle tokens",
    ),
    ("n past the limit", CHAT, {"messages": HI, "n": 9}, 400, "invalid_value", "n"),
    ("an unknown model", CHAT, {"model": "gpt-4o", "messages": HI}, 404, "model_not_found", "gpt-4o"),
    (
        "tools on a model whose template has none",
        CHAT,
        {"messages": HI, "tools": [{"type": "function", "function": {"name": "f"}}]},
        422,
        "unsupported_by_model",
        "no tool calling",
    ),
    (
        "a tool without its function",
        CHAT,
        {"messages": HI, "tools": [{"type": "function"}]},
        400,
        "invalid_value",
        "tools.0.function: Field required",
    ),
    (
        "a schema the grammar engine cannot compile",
        CHAT,
        {"messages": HI, "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "banana"}}}},
        400,
        "invalid_schema",
        "response_format.json_schema.schema: this schema cannot constrain an answer: Invalid type: banana",
    ),
    (
        "a wrong type in a field whose name starts like a type's",
        CHAT,
        {"messages": HI, "stream": "maybe"},
        400,
        "invalid_value",
        "stream: Input should be a valid boolean",
    ),
]


@pytest.mark.parametrize("what, path, body, status, code, says", REFUSED, ids=[r[0] for r in REFUSED])
def test_a_bad_request_gets_its_openai_error_and_the_next_one_works(server, what, path, body, status, code, says):
    home, url, _ = server
    got, _, reply = call(url, "POST", path, {"model": "qwen7b", **body} if "model" not in body else body)
    assert got == status, reply
    assert set(reply["error"]) == {"message", "type", "param", "code"} and reply["error"]["code"] == code
    assert says in reply["error"]["message"]
    normal_request_works(url, home)


def test_bodies_that_are_not_json_or_too_big_are_refused_before_any_work(server):
    home, url, _ = server
    for body, headers, status in [
        (b'{"messages": [', {}, 400),
        (b"[1, 2]", {}, 400),
        (b"[" * 100_000, {}, 400),
        (b'{"messages": []}', {"Content-Type": "text/plain"}, 415),
        (b"x" * (5 * 1024 * 1024), {}, 413),
    ]:
        got, _, reply = call(url, "POST", CHAT, body, **headers)
        assert got == status and reply["error"]["message"], (body[:20], reply)
    normal_request_works(url, home)


def test_a_no_cors_page_from_another_origin_gets_415_and_nothing_is_generated(server):
    home, url, _ = server
    body = json.dumps({"model": "qwen7b", "messages": HI, "max_tokens": 2}).encode()
    status, headers, reply = call(
        url, "POST", CHAT, body, **{"Content-Type": "text/plain;charset=UTF-8", "Origin": "http://evil.example"}
    )
    assert status == 415 and reply["error"]["code"] == "unsupported_media_type"
    assert "access-control-allow-origin" not in {k.lower() for k in headers}
    assert call(url, "GET", "/health")[2] == {"status": "ok", "requests": 0}
    normal_request_works(url, home)


def test_requests_mlx_lm_got_wrong_are_answered(server, tiny_model):
    home, url, _ = server
    empty = call(
        url,
        "POST",
        "/v1/completions",
        {"model": "qwen7b", "prompt": "", "max_tokens": 3, "logit_bias": no_special_tokens(tiny_model)},
    )[2]
    assert empty["usage"]["completion_tokens"] == 3 and empty["choices"][0]["finish_reason"] == "length"
    two = call(
        url, "POST", "/v1/completions", {"model": "qwen7b", "prompt": ["a", "b"], "max_tokens": 2, "temperature": 0}
    )[2]
    assert [c["index"] for c in two["choices"]] == [0, 1] and two["usage"]["completion_tokens"] == 4
    three = call(url, "POST", CHAT, {"model": "qwen7b", "messages": HI, "n": 3, "max_tokens": 2})[2]
    assert [c["index"] for c in three["choices"]] == [0, 1, 2]
    nulls = call(
        url,
        "POST",
        CHAT,
        {
            "model": "qwen7b",
            "messages": HI,
            "max_tokens": 2,
            "temperature": None,
            "top_p": None,
            "stop": None,
            "n": None,
            "logit_bias": None,
            "seed": None,
        },
    )
    assert nulls[0] == 200
    echoed = call(
        url, "POST", "/v1/completions", {"model": "qwen7b", "prompt": "def add(", "echo": True, "max_tokens": 2}
    )[2]
    assert echoed["choices"][0]["text"].startswith("def add(")
    folder, repo = "qwen25-coder-7b", "mlx-community/Qwen2.5-Coder-7B-Instruct-4bit"
    for name in (folder, repo, None):
        asked = {"messages": HI, "max_tokens": 1, **({"model": name} if name else {})}
        assert call(url, "POST", CHAT, asked)[0] == 200, name
    for path in ("/models", "/v1/models/", "/models/"):
        assert [m["id"] for m in call(url, "GET", path)[2]["data"]] == ["qwen7b"], path
    assert call(url, "POST", "/chat/completions/", {"messages": HI, "max_tokens": 1})[0] == 200
    missing = call(url, "GET", "/v1/nothing")
    assert missing[0] == 404 and missing[2]["error"]["code"] == "not_found"
    normal_request_works(url, home)


def test_a_stream_ends_with_usage_and_done(server, tiny_model):
    _, url, _ = server
    status, _, raw = call(
        url,
        "POST",
        CHAT,
        {
            "model": "qwen7b",
            "messages": HI,
            "max_tokens": 3,
            "stream": True,
            "stream_options": {"include_usage": True},
            "logit_bias": no_special_tokens(tiny_model),
        },
    )
    events = [line.removeprefix(b"data: ") for line in raw.split(b"\n\n") if line]
    assert status == 200 and events[-1] == b"[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


def wait_for(condition, what, limit=120):
    """Poll until condition() holds; a bounded wait, not a timing assertion."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def no_special_tokens(model) -> dict[str, int]:
    """A logit_bias that keeps the random-weight model from its special tokens, so no answer ends early."""
    special = [t["id"] for t in json.loads((model / "tokenizer.json").read_text())["added_tokens"]]
    return {str(i): -100 for i in special}


def start_and_hold(url, stream, model):
    """Send 8 long generations (n=8) on a raw socket and return it once they run; closing it leaves. The
    model's special tokens are biased away, so none of them ends early."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    body = json.dumps(
        {"prompt": "a", "max_tokens": 4000, "n": 8, "stream": stream, "logit_bias": no_special_tokens(model)}
    ).encode()
    raw = socket.create_connection(("127.0.0.1", port))
    raw.sendall(
        b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    if stream:
        seen = b""
        while b"data: " not in seen:
            seen += raw.recv(4096)
    else:
        wait_for(lambda: requests(url) == 8, "the request never started")
    return raw


def requests(url):
    """Generations waiting or running, as /health says."""
    return call(url, "GET", "/health")[2]["requests"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_leaves_stops_its_generation(server, stream, tiny_model):
    home, url, _ = server
    log = state_of(home) / "serve.log"
    before = log.read_text().count("cancelled after")
    start_and_hold(url, stream, tiny_model).close()
    wait_for(lambda: requests(url) == 0, "the generation went on after its client left")
    cancelled = [line for line in log.read_text().splitlines() if "cancelled after" in line]
    assert len(cancelled) == before + 8
    assert all(int(line.split("cancelled after ")[1].split()[0]) < 4000 for line in cancelled[before:])
    normal_request_works(url, home)


@pytest.fixture
def direct_server(mlx_python, tiny_model, tmp_path):
    """Start the runtime server itself with a spec (the tiny model as "tiny"; `limits` and more fields replace the
    spec's) through serve.start: (url, state)."""

    def start(code="from mlxtasks.runtime.server.__main__ import main; main()", model=None, **limits):
        port = free_port()
        state = tmp_path / "mlxtasks"  # as XDG_STATE_HOME=tmp_path makes it
        spec = ServeSpec(
            **{"alias": "tiny", "model": str(model or tiny_model), "names": [], **limits},
            port=port,
            log_file=str(serve.log_path(state)),
            exit_file=str(serve.exit_path(state)),
        )
        serve.start([str(mlx_python), "-c", code, spec.to_json()], state, "tiny", "127.0.0.1", port, timeout=300)
        return f"http://127.0.0.1:{port}", state

    started = []
    yield lambda *a, **k: started.append(start(*a, **k)) or started[-1]
    for _, state in started:
        serve.stop(state)


def test_a_full_queue_answers_429_with_retry_after(direct_server, tiny_model):
    url, state = direct_server(queue_limit=8)
    busy = start_and_hold(url, True, tiny_model)
    status, headers, reply = call(url, "POST", CHAT, {"messages": HI, "max_tokens": 1})
    busy.close()
    assert status == 429 and headers["Retry-After"] == "1" and reply["error"]["code"] == "queue_full"
    wait_for(lambda: requests(url) == 0, "the first request was not cancelled")
    assert call(url, "POST", CHAT, {"messages": HI, "max_tokens": 1})[0] == 200


BROKEN_ENGINE = """
import sys
from mlx_lm.generate import BatchGenerator
def fail(self):
    raise RuntimeError("the batch is broken")
BatchGenerator.next = fail  # a fault no request can cause: the engine's state is unknown after it
from mlxtasks.runtime.server.__main__ import main
main()
"""


def test_an_engine_fault_ends_the_process_and_status_reports_the_crash(direct_server, home):
    url, state = direct_server(BROKEN_ENGINE)
    server = serve.running(state)
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        call(url, "POST", CHAT, {"messages": HI, "max_tokens": 1})
    wait_for(
        lambda: not psutil.pid_exists(server.pid) or psutil.Process(server.pid).status() == psutil.STATUS_ZOMBIE,
        "the server lived on with a broken engine",
    )
    assert json.loads(serve.exit_path(state).read_text())["status"] == 70
    status = invoke("serve.status", home=home, XDG_STATE_HOME=str(state.parent))
    assert status.returncode == 1
    assert (
        f"The server for tiny (pid {server.pid}) crashed (exit status 70: RuntimeError: the batch is broken)."
        in status.stdout
    )
    assert "the engine failed, so the server ends" in status.stdout  # the log's last lines
    assert "No server is running." in invoke("serve.status", home=home, XDG_STATE_HOME=str(state.parent)).stdout


def test_a_crash_in_native_code_is_reported_with_its_signal_and_stop_ends_both_processes(direct_server, home):
    url, state = direct_server()
    server = serve.running(state)
    [child] = psutil.Process(server.pid).children()  # the server; its parent waits to say how it ended
    child.send_signal(signal.SIGSEGV)  # as a crash in libmlx would: faulthandler writes the stack, the signal kills
    wait_for(
        lambda: not psutil.pid_exists(server.pid) or psutil.Process(server.pid).status() == psutil.STATUS_ZOMBIE,
        "the supervisor lived on without its server",
    )
    status = invoke("serve.status", home=home, XDG_STATE_HOME=str(state.parent))
    assert status.returncode == 1
    assert f"(pid {server.pid}) crashed (exit status 139: killed by SIGSEGV, a crash in native code)." in status.stdout
    assert "Fatal Python error: Segmentation fault" in serve.log_path(state).read_text()  # and where it was
    assert serve.tail(state) in status.stdout
    url, state = direct_server()
    server = serve.running(state)
    [child] = psutil.Process(server.pid).children()
    assert call(url, "GET", "/health")[0] == 200
    serve.stop(state)
    assert not child.is_running() and not psutil.pid_exists(server.pid)
    assert json.loads(serve.exit_path(state).read_text())["status"] == 0  # a stop, not a crash


def test_the_log_is_rotated_and_holds_no_bodies(direct_server):
    url, state = direct_server(log_max_bytes=1000)
    secret = "my-secret-prompt"
    for _ in range(20):
        assert call(url, "POST", "/v1/completions", {"prompt": secret, "max_tokens": 1})[0] == 200
    assert call(url, "POST", CHAT, b"not json " + secret.encode())[0] == 400
    assert call(url, "GET", "/health")[0] == 200
    log, older = serve.log_path(state), serve.log_path(state).with_name("serve.log.1")
    both = lambda: (older.read_text() if older.exists() else "") + log.read_text()  # noqa: E731
    wait_for(lambda: "GET /health 200" in both(), "the access line went nowhere")  # written after the answer
    assert older.exists() and log.stat().st_size < 1000 + 500  # one line past the limit at most
    text = both()
    assert "POST /v1/completions 200" in text and "POST /v1/chat/completions 400" in text and secret not in text


def test_a_seed_repeats_its_answer_even_in_a_shared_batch(server, tiny_model):
    _, url, _ = server
    asked = {
        "model": "qwen7b",
        "prompt": "def",
        "max_tokens": 8,
        "temperature": 1,
        "logit_bias": no_special_tokens(tiny_model),
    }

    def texts(seed, **more):
        return [c["text"] for c in call(url, "POST", "/v1/completions", {**asked, "seed": seed, **more})[2]["choices"]]

    [alone] = texts(1)
    assert texts(1) == [alone]
    with ThreadPoolExecutor(4) as pool:  # choice 0 of seed 1 again, sharing the batch with 11 other streams
        shared = [
            pool.submit(texts, seed, n=3, prompt=prompt)
            for seed, prompt in [(1, "def"), (2, "x"), (3, "def"), (None, "a")]
        ]
        first, *others = [f.result() for f in shared]
    assert first[0] == alone and len(set(first)) == 3  # each choice draws from a key of its own
    assert texts(2) != [alone] and others[1][0] != alone


@pytest.fixture(scope="module")
def coder_model(mlx_python, tmp_path_factory):
    """The tiny model with Qwen2.5-Coder's fill-in-the-middle and tool-call tokens, and its template with tools."""
    out = tmp_path_factory.mktemp("coder-model") / "model"
    done = subprocess.run(
        [str(mlx_python), str(TINY_MODEL_SCRIPT), str(out), "--coder"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_suffix_fills_in_the_middle_with_the_models_own_tokens(direct_server, coder_model, mlx_run):
    url, _ = direct_server(model=coder_model)
    prefix, suffix = "def add(a, b):\n    return ", "\n\nprint(add(1, 2))"
    fim = "<|fim_prefix|>" + prefix + "<|fim_suffix|>" + suffix + "<|fim_middle|>"  # Qwen2.5-Coder's format
    encoded = mlx_run(
        "import sys; from mlx_lm import load; print(load(sys.argv[1])[1].encode(sys.argv[2]))", coder_model, fim
    )
    assert encoded.returncode == 0, encoded.stderr
    asked = {"max_tokens": 6, "temperature": 0}
    filled = call(url, "POST", "/v1/completions", {"prompt": prefix, "suffix": suffix, **asked})[2]
    by_hand = call(url, "POST", "/v1/completions", {"prompt": json.loads(encoded.stdout), **asked})[2]
    counts = lambda reply: (reply["usage"]["prompt_tokens"], reply["usage"]["completion_tokens"])  # noqa: E731
    assert counts(filled) == counts(by_hand) and filled["choices"][0]["text"] == by_hand["choices"][0]["text"]
    assert by_hand["usage"]["prompt_tokens_details"]["cached_tokens"] > 0  # the same prompt again
    ids = call(url, "POST", "/v1/completions", {"prompt": [1, 2], "suffix": suffix})
    assert ids[0] == 400 and "needs a text prompt" in ids[2]["error"]["message"]


WEATHER: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
CALLS = (
    'Let me look.<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
)


def scripted(answer: str) -> str:
    """The server's code with every answer forced to `answer`'s tokens, then the end of its turn (a logits processor
    after the request's own). The rest is the server as it runs."""
    return f"""
import mlx.core as mx
from mlxtasks.runtime.server.engine import Engine
made = Engine.processors
def scripted(self, *args):
    tokens = iter(self.tokenizer.encode({answer!r}, add_special_tokens=False))
    def force(_, logits):
        wanted = next(tokens, self.eos[0])
        return mx.where(mx.arange(logits.shape[-1]) == wanted, 0.0, -1e9)[None].astype(logits.dtype)
    return made(self, *args) + [force]
Engine.processors = scripted
from mlxtasks.runtime.server.__main__ import main
main()
"""


SCRIPTED = scripted(CALLS)  # the random-weight model never writes a tool call


def test_tool_calls_come_back_in_openai_shape_streamed_or_not(direct_server, coder_model):
    url, _ = direct_server(SCRIPTED, model=coder_model)
    openai_client = client(url + "/v1")
    asked = dict(model="tiny", messages=[{"role": "user", "content": "Weather in Paris and Rome?"}], tools=WEATHER)
    reply = openai_client.chat.completions.create(**asked).choices[0]
    assert reply.finish_reason == "tool_calls" and reply.message.content == "Let me look.\n"
    calls = reply.message.tool_calls
    assert [(c.type, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("function", "get_weather", {"city": "Paris"}),
        ("function", "get_weather", {"city": "Rome"}),
    ]
    assert len({c.id for c in calls}) == 2
    chunks = list(openai_client.chat.completions.create(stream=True, **asked))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Let me look.\n"
    streamed = [t for c in chunks for t in c.choices[0].delta.tool_calls or []]
    assert [(t.index, t.function.name, json.loads(t.function.arguments)) for t in streamed] == [
        (0, "get_weather", {"city": "Paris"}),
        (1, "get_weather", {"city": "Rome"}),
    ]
    assert all(t.id and t.type == "function" for t in streamed) and chunks[-1].choices[0].finish_reason == "tool_calls"
    cut = openai_client.chat.completions.create(max_tokens=12, **asked).choices[0]  # inside the first call
    assert cut.finish_reason == "length" and cut.message.tool_calls is None
    assert cut.message.content.startswith("Let me look.<tool_call>\n{")
    plain = openai_client.chat.completions.create(tool_choice="none", **asked)
    assert plain.choices[0].message.content == CALLS and plain.choices[0].finish_reason == "stop"
    assert plain.choices[0].message.tool_calls is None


def test_tool_calls_and_results_go_back_into_the_chat_template(direct_server, coder_model, mlx_run):
    url, _ = direct_server(SCRIPTED, model=coder_model)
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
    ]
    reply = client(url + "/v1").chat.completions.create(model="tiny", messages=history, tools=WEATHER)
    as_template_takes_it = json.loads(json.dumps(history))
    as_template_takes_it[1]["content"] = ""
    as_template_takes_it[1]["tool_calls"][0]["function"]["arguments"] = {"city": "Paris"}
    counted = mlx_run(
        "import json, sys; from mlx_lm import load; t = load(sys.argv[1])[1]; "
        "print(len(t.apply_chat_template(json.loads(sys.argv[2]), tools=json.loads(sys.argv[3]), "
        "add_generation_prompt=True)))",
        coder_model,
        json.dumps(as_template_takes_it),
        json.dumps(WEATHER),
    )
    assert counted.returncode == 0, counted.stderr
    assert reply.usage.prompt_tokens == int(counted.stdout)
    bad = call(
        url,
        "POST",
        CHAT,
        {
            "messages": [
                history[0],
                {**history[1], "tool_calls": [{"function": {"name": "get_weather", "arguments": "[1]"}}]},
            ],
            "tools": WEATHER,
        },
    )
    assert bad[0] == 400 and "tool call's arguments must be a JSON object" in bad[2]["error"]["message"]


PAGE = """<!doctype html><title>any page</title><script>
async function send(url, init) {
  try { await fetch(url, init); return "sent"; } catch (e) { return "failed: " + e.message; }
}
(async () => {
  const body = JSON.stringify({prompt: "x", max_tokens: 500, logit_bias: {"2000000000": 5}});
  const results = [
    await send("SERVER/v1/completions", {method: "POST", mode: "no-cors", body: body}),
    await send("SERVER/v1/chat/completions", {method: "POST", headers: {"Content-Type": "application/json"}, body: body}),
    await send("REBOUND/v1/completions", {method: "POST", mode: "no-cors", body: body}),
  ];
  document.body.id = "done";
  document.body.textContent = results.join(" | ");
})();
</script>"""


@pytest.mark.tools("chromium")
def test_a_web_page_in_chromium_gets_nothing_generated(direct_server, tmp_path):
    """A page the user visits, in a real browser: a no-cors text/plain POST (no preflight) gets 415, a JSON
    POST is stopped by the CORS preflight, and a DNS-rebinding name for this machine gets 403; nothing is
    generated and the server serves on."""
    url, state = direct_server()
    port = url.rsplit(":", 1)[1]
    page = PAGE.replace("SERVER", url).replace("REBOUND", f"http://rebound.test:{port}").encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page) as site:
        threading.Thread(target=site.serve_forever, daemon=True).start()
        shown = subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path / 'chromium'}",
                "--host-resolver-rules=MAP rebound.test 127.0.0.1",
                "--virtual-time-budget=20000",
                "--dump-dom",
                f"http://127.0.0.1:{site.server_address[1]}/",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        site.shutdown()
    assert 'id="done"' in shown.stdout, shown.stderr[-2000:]
    # The no-cors requests were sent (the page cannot read their answers); the JSON one failed at the preflight.
    assert "sent | failed: Failed to fetch | sent" in shown.stdout
    wait_for(
        lambda: "POST /v1/completions 403" in serve.log_path(state).read_text(), "the rebound request left no line"
    )
    log = serve.log_path(state).read_text()
    assert "POST /v1/completions 415" in log and "OPTIONS /v1/chat/completions 405" in log
    assert "POST /v1/chat/completions" not in log and "a request was" not in log
    assert requests(url) == 0
    assert call(url, "POST", CHAT, {"messages": HI, "max_tokens": 1})[0] == 200
