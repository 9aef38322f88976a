"""A stand-in for an Ollama server: a real HTTP server on 127.0.0.1 speaking the two endpoints
`invoke bench --compare ollama` uses.

    GET  /api/tags       {"models": [{"name": "qwen2.5-coder:7b", "model": ..., "size": ...}, ...]}
    POST /api/generate   with "stream": false: one JSON answer with Ollama's counts and durations (ns)

Answers follow fixed rates, so a test knows the numbers the client must derive: the prompt's words
count as its tokens, evaluated at PROMPT_TPS; num_predict tokens are generated at EVAL_TPS; the first
request for a model loads it (LOAD_NS), later ones do not. An unknown model gets Ollama's 404.
`requests` keeps every request's path and JSON body.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROMPT_TPS = 400.0
EVAL_TPS = 25.0
LOAD_NS = 1_500_000_000


class FakeOllama:
    def __init__(self, pulled: list[str]):
        self.pulled = pulled
        self.loaded: set[str] = set()
        self.requests: list[tuple[str, dict | None]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeOllama:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, body: dict) -> tuple[int, dict]:
        model = body.get("model", "")
        if model not in self.pulled:
            return 404, {"error": f"model '{model}' not found"}
        prompt_tokens = len(body["prompt"].split())
        generated = body["options"]["num_predict"]
        load = 0 if model in self.loaded else LOAD_NS
        self.loaded.add(model)
        prompt_ns, eval_ns = int(prompt_tokens / PROMPT_TPS * 1e9), int(generated / EVAL_TPS * 1e9)
        return 200, {
            "model": model,
            "created_at": "2026-11-26T10:00:00Z",
            "response": "word " * generated,
            "done": True,
            "done_reason": "length",
            "context": [1, 2, 3],
            "total_duration": load + prompt_ns + eval_ns,
            "load_duration": load,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": prompt_ns,
            "eval_count": generated,
            "eval_duration": eval_ns,
        }

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                fake.requests.append((self.path, None))
                if self.path != "/api/tags":
                    return self._send(404, {"error": "not found"})
                self._send(
                    200, {"models": [{"name": name, "model": name, "size": 4_683_087_332} for name in fake.pulled]}
                )

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append((self.path, body))
                if self.path != "/api/generate" or body.get("stream") is not False:
                    return self._send(400, {"error": "this stand-in answers /api/generate with stream false only"})
                self._send(*fake.answer(body))

        return Handler
