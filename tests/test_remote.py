"""A one-shot's or chat's answer from a running server (mlxtasks/runtime/remote.py) never waits without a
bound: against real sockets that take a connection and say nothing, that stop mid-answer, or that close."""

import dataclasses
import http.server
import json
import os
import socket
import threading

import psutil
import pytest

from mlxtasks import chat, config, serve
from mlxtasks.runtime import remote

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def event(text: str) -> bytes:
    return chunk(b"data: " + json.dumps({"choices": [{"delta": {"content": text}}]}).encode() + b"\n\n")


class Peer:
    """A loopback listener that reads the request and then plays `script`: bytes to send, or a float to wait
    (None: wait until the test ends)."""

    def __init__(self, *script):
        self.script, self.done = script, threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1"
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        connection, _ = self.listener.accept()
        with connection:
            connection.recv(65536)
            for step in self.script:
                if step is None:
                    self.done.wait(60)
                elif isinstance(step, float):
                    self.done.wait(step)
                else:
                    connection.sendall(step)

    def close(self):
        self.done.set()
        self.listener.close()


@pytest.fixture
def peer():
    made = []

    def make(*script):
        made.append(Peer(*script))
        return made[-1]

    yield make
    for one in made:
        one.close()


@pytest.fixture
def bounds(monkeypatch):
    """Short bounds for the answer's start and its gaps: bounds(answer_s=..., stall_s=...)."""

    def set_bounds(answer_s=remote.ANSWER_S, stall_s=remote.STALL_S):
        monkeypatch.setattr(remote, "ANSWER_S", answer_s)
        monkeypatch.setattr(remote, "STALL_S", stall_s)

    return set_bounds


def ask(url):
    """(what was written, the exception or the Streamed) of one chat against url, in a thread that must end."""
    written, outcome = [], []

    def run():
        try:
            outcome.append(remote.chat(url, {"messages": []}, written.append))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the answer waited past every bound"
    return "".join(written), outcome[0]


def test_a_server_that_takes_the_request_and_never_answers_is_given_up(peer, bounds):
    bounds(answer_s=0.3)
    _, outcome = ask(peer(None).url)
    assert isinstance(outcome, remote.Failed) and "did not begin its answer in 0 s" in str(outcome)


def test_a_server_that_stalls_mid_answer_is_given_up_with_what_came_kept(peer, bounds):
    bounds(stall_s=0.3)
    written, outcome = ask(peer(HEAD, event("Hello"), None).url)
    assert written == "Hello"
    assert isinstance(outcome, remote.Failed) and "nothing came for 0 s" in str(outcome)


def test_keep_alives_hold_a_slow_answer_open(peer, bounds):
    bounds(stall_s=0.3)
    pings = [step for _ in range(4) for step in (0.1, chunk(b": ping\n\n"))]
    done = (
        chunk(b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}\n\n')
        + chunk(b"data: [DONE]\n\n")
        + b"0\r\n\r\n"
    )
    written, outcome = ask(peer(HEAD, *pings, event("late"), done).url)
    assert written == "late" and outcome.completion_tokens == 1


def test_a_server_that_closes_mid_answer_fails_the_answer(peer):
    written, outcome = ask(peer(HEAD, event("Hel")).url)
    assert written == "Hel" and isinstance(outcome, remote.Failed)


def test_no_server_is_unserved_so_the_model_answers_here():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _, outcome = ask(f"http://127.0.0.1:{port}/v1")
    assert isinstance(outcome, remote.Unserved)


class Stalling(http.server.BaseHTTPRequestHandler):
    """A server whose /health answers and whose chat answer stops after its first words."""

    protocol_version = "HTTP/1.1"
    release = threading.Event()

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.wfile.write(HEAD + event("Hello"))
        self.wfile.flush()
        self.release.wait(60)

    def log_message(self, *args):
        pass


def test_a_one_shot_from_a_server_that_stalls_is_one_sentence_and_status_1(tmp_path, bounds, capsys):
    """The tool's own path (chat.served, as `mlx-ALIAS "..."` takes it while a server runs): the part that came is
    shown, then one sentence and its fix, within the bound."""
    bounds(stall_s=0.3)
    listener = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    try:
        port = listener.server_address[1]
        s = config.resolve({}, home=tmp_path, serve_port=str(port))
        (s.models / "tiny").mkdir(parents=True)
        (s.models / "tiny" / "config.json").write_text("{}")
        s.state.mkdir(parents=True)
        record = serve.Server(os.getpid(), "tiny", "127.0.0.1", port, psutil.Process().create_time())
        serve.record_path(s.state).write_text(json.dumps(dataclasses.asdict(record)))
        assert chat.served(s, "tiny", "hi", chat.Flags(), False) == 1
    finally:
        Stalling.release.set()
        listener.shutdown()
    out, err = capsys.readouterr()
    assert out.startswith("Hello")
    assert "The server stopped in the middle of the answer: nothing came for 0 s" in err and "--local" in err
