"""One streamed answer from a running mlxtasks server (`invoke serve`), with the standard library only: the
chat's and chat.ask's answers when a server is up, so nothing is imported or loaded here.

POST /v1/chat/completions with "stream": true and stream_options.include_usage; the text arrives as
server-sent events, and the usage (token counts) in the last one. Closing the connection (Ctrl-C) stops the
generation: the server cancels a request whose client has gone.

Every wait is bounded: the connection (CONNECT_S), the answer's start (ANSWER_S: a model may load first), and
each gap in the stream (STALL_S: the server says something at least every 5 s, even while a long prompt is
read). A server that is stopped, swapping or deadlocked gives a sentence, not a hang.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

BUSY = (
    429  # the one refusal that is said, not answered here: loading a second copy of a model under load would not help
)
CONNECT_S = 5.0  # a server on this machine takes a connection at once, or has stalled
ANSWER_S = 180.0  # until the answer begins: the server may load the model first
STALL_S = 30.0  # between two events of the answer (the server's keep-alive comes every 5 s)


class Unserved(Exception):
    """The server refused before answering (it does not serve this model, the prompt does not fit its context,
    a value it does not take, a fault) or could not be reached: the model answers here instead, as it would
    with no server."""


class Failed(Exception):
    """The server is busy, or stopped in the middle of an answer."""


@dataclass(frozen=True)
class Streamed:
    prompt_tokens: int
    completion_tokens: int
    first_token_seconds: float  # from sending the request
    seconds: float  # to the end of the answer


def chat(url: str, body: dict, write: Callable[[str], None]) -> Streamed:
    """Stream the answer to a chat request (OpenAI's body, without "stream") from the server at `url` (its base
    URL, ending in /v1) through write(text)."""
    where = urlsplit(url)
    connection = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=CONNECT_S)
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    try:
        try:
            connection.connect()
        except OSError as exc:  # it stopped since it was found
            raise Unserved(f"the server at {url} is not answering: {exc}") from None
        sock = connection.sock  # kept: a response that closes the connection after it takes the socket over
        sock.settimeout(ANSWER_S)
        try:
            connection.request(
                "POST", where.path + "/chat/completions", json.dumps(body), {"Content-Type": "application/json"}
            )
            answer = connection.getresponse()
        except TimeoutError:
            raise Failed(
                f"The server at {url} took the request but did not begin its answer in {ANSWER_S:.0f} s "
                "(see `mlxtasks serve.logs`)."
            ) from None
        except OSError as exc:  # it stopped since it was found
            raise Unserved(f"the server at {url} is not answering: {exc}") from None
        if answer.status == BUSY:
            raise Failed(_message(answer))
        if answer.status != 200:
            raise Unserved(_message(answer))
        sock.settimeout(STALL_S)
        return _read(answer, write, start)
    finally:
        connection.close()


def _read(answer: http.client.HTTPResponse, write: Callable[[str], None], start: float) -> Streamed:
    first, usage = None, dict[str, int]()
    try:
        for line in answer:
            if line.startswith(b"data: [DONE]"):
                return Streamed(
                    usage.get("prompt_tokens", 0),
                    usage.get("completion_tokens", 0),
                    first or 0.0,
                    time.perf_counter() - start,
                )
            if not line.startswith(b"data: "):
                continue
            event = json.loads(line[6:])
            usage = event.get("usage") or usage
            for choice in event["choices"]:
                text = choice["delta"].get("content")
                if text:
                    first = first or time.perf_counter() - start
                    write(text)
    except TimeoutError:
        raise Failed(
            f"The server stopped in the middle of the answer: nothing came for {STALL_S:.0f} s "
            "(see `mlxtasks serve.logs`)."
        ) from None
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError, AttributeError):
        pass  # cut off, or not an answer of ours
    raise Failed("The server stopped in the middle of the answer.")


def _message(answer: http.client.HTTPResponse) -> str:
    """The message of an OpenAI-shaped error, or the status."""
    try:
        return json.loads(answer.read())["error"]["message"]
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError):
        return f"The server answered with status {answer.status}."
