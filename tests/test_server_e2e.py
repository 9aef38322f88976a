"""Our server against the requests that broke mlx_lm.server (issue 18's list), on a real running server with
the tiny model: each gets its OpenAI-shaped 4xx or a correct answer, the next normal request succeeds, and
the process lives throughout. Also: a client that leaves stops its generation, a full queue answers 429,
and an engine fault ends the process, which serve.status reports as a crash."""

import http.client
import json
import socket
import time

import psutil
import pytest

from mlxtasks import serve
from mlxtasks.protocol import ServeSpec

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
    ("a logit_bias token id beyond the vocabulary", CHAT,
     {"messages": HI, "logit_bias": {"2000000000": 5}}, 400, "invalid_token_id", "token id 2000000000 is outside"),
    ("a prompt token id beyond the vocabulary", "/v1/completions", {"prompt": [1, 2, 99999]}, 400,
     "invalid_token_id", "token id 99999"),
    ("stop that is not a string", CHAT, {"messages": HI, "stop": [1]}, 400, "invalid_value", "stop"),
    ("a wrong type", CHAT, {"messages": HI, "max_tokens": "many"}, 400, "invalid_value", "max_tokens"),
    ("prompt and max_tokens past the context", CHAT, {"messages": HI, "max_tokens": 5000}, 400,
     "context_length_exceeded", "context is 4096 tokens"),
    ("a prompt far past the context", "/v1/completions", {"prompt": TOO_LONG, "max_tokens": 5}, 400,
     "context_length_exceeded", "context is 4096 tokens"),
    ("suffix (fill-in-the-middle)", "/v1/completions", {"prompt": "def f(", "suffix": "):"}, 400,
     "unsupported_parameter", "suffix"),
    ("n past the limit", CHAT, {"messages": HI, "n": 9}, 400, "invalid_value", "n"),
    ("an unknown model", CHAT, {"model": "gpt-4o", "messages": HI}, 404, "model_not_found", "gpt-4o"),
    ("tools, not supported yet", CHAT, {"messages": HI, "tools": [{"type": "function"}]}, 400,
     "unsupported_parameter", "tools"),
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
    for body, headers, status in [(b'{"messages": [', {}, 400), (b"[1, 2]", {}, 400), (b"[" * 100_000, {}, 400),
                                  (b'{"messages": []}', {"Content-Type": "text/plain"}, 415),
                                  (b"x" * (5 * 1024 * 1024), {}, 413)]:
        got, _, reply = call(url, "POST", CHAT, body, **headers)
        assert got == status and reply["error"]["message"], (body[:20], reply)
    normal_request_works(url, home)


def test_a_no_cors_page_from_another_origin_gets_415_and_nothing_is_generated(server):
    home, url, _ = server
    body = json.dumps({"model": "qwen7b", "messages": HI, "max_tokens": 2}).encode()
    status, headers, reply = call(url, "POST", CHAT, body, **{"Content-Type": "text/plain;charset=UTF-8",
                                                              "Origin": "http://evil.example"})
    assert status == 415 and reply["error"]["code"] == "unsupported_media_type"
    assert "access-control-allow-origin" not in {k.lower() for k in headers}
    assert call(url, "GET", "/health")[2] == {"status": "ok", "requests": 0}
    normal_request_works(url, home)


def test_requests_mlx_lm_got_wrong_are_answered(server, tiny_model):
    home, url, _ = server
    empty = call(url, "POST", "/v1/completions", {"model": "qwen7b", "prompt": "", "max_tokens": 3,
                                                  "logit_bias": no_special_tokens(tiny_model)})[2]
    assert empty["usage"]["completion_tokens"] == 3 and empty["choices"][0]["finish_reason"] == "length"
    two = call(url, "POST", "/v1/completions", {"model": "qwen7b", "prompt": ["a", "b"], "max_tokens": 2,
                                                "temperature": 0})[2]
    assert [c["index"] for c in two["choices"]] == [0, 1] and two["usage"]["completion_tokens"] == 4
    three = call(url, "POST", CHAT, {"model": "qwen7b", "messages": HI, "n": 3, "max_tokens": 2})[2]
    assert [c["index"] for c in three["choices"]] == [0, 1, 2]
    nulls = call(url, "POST", CHAT, {"model": "qwen7b", "messages": HI, "max_tokens": 2, "temperature": None,
                                     "top_p": None, "stop": None, "n": None, "logit_bias": None, "seed": None})
    assert nulls[0] == 200
    echoed = call(url, "POST", "/v1/completions", {"model": "qwen7b", "prompt": "def add(", "echo": True,
                                                   "max_tokens": 2})[2]
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
    status, _, raw = call(url, "POST", CHAT, {"model": "qwen7b", "messages": HI, "max_tokens": 3, "stream": True,
                                              "stream_options": {"include_usage": True},
                                              "logit_bias": no_special_tokens(tiny_model)})
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
    body = json.dumps({"prompt": "a", "max_tokens": 4000, "n": 8, "stream": stream,
                       "logit_bias": no_special_tokens(model)}).encode()
    raw = socket.create_connection(("127.0.0.1", port))
    raw.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
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
    """Start the runtime server itself with a spec (queue limit 1) through serve.start: (url, state)."""

    def start(code="from mlxtasks.runtime.server.__main__ import main; main()", **limits):
        port = free_port()
        state = tmp_path / "mlxtasks"  # as XDG_STATE_HOME=tmp_path makes it
        spec = ServeSpec(alias="tiny", model=str(tiny_model), names=[], port=port, log_file=str(serve.log_path(state)),
                         exit_file=str(serve.exit_path(state)), **limits)
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
    wait_for(lambda: not psutil.pid_exists(server.pid) or psutil.Process(server.pid).status() == psutil.STATUS_ZOMBIE,
             "the server lived on with a broken engine")
    assert json.loads(serve.exit_path(state).read_text())["status"] == 70
    status = invoke("serve.status", home=home, XDG_STATE_HOME=str(state.parent))
    assert status.returncode == 1
    assert f"The server for tiny (pid {server.pid}) crashed (exit status 70: RuntimeError: the batch is broken)." \
        in status.stdout
    assert "the engine failed, so the server ends" in status.stdout  # the log's last lines
    assert "No server is running." in invoke("serve.status", home=home, XDG_STATE_HOME=str(state.parent)).stdout


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
