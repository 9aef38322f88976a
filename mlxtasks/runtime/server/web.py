"""The HTTP layer: the Starlette app, the checks every request gets before any work (Host while bound to
loopback, content type, size, JSON, the body's types), one access line per request, and every Problem said
in the shape of the API its path belongs to. The APIs themselves (openai.py, anthropic.py, responses.py,
ollama.py) are given to build() as dialects: each has PREFIXES (its paths), routes(core) and error(problem)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ...protocol import ServeSpec, host_name, is_loopback
from .core import Core
from .problems import (
    BUSY,
    FAILED,
    FORBIDDEN,
    INVALID,
    MEDIA_TYPE,
    METHOD,
    MODEL_CANNOT,
    NOT_FOUND,
    TOO_LARGE,
    UNAVAILABLE,
    UNSUPPORTED,
    Problem,
    invalid,
)

HELD = "mlxtasks.held"  # the scope's list of the models its request holds, released when the response is sent
STATUS = {
    INVALID: 400,
    UNSUPPORTED: 400,
    MODEL_CANNOT: 422,
    NOT_FOUND: 404,
    FORBIDDEN: 403,
    TOO_LARGE: 413,
    MEDIA_TYPE: 415,
    METHOD: 405,
    BUSY: 429,
    UNAVAILABLE: 503,
    FAILED: 500,
}  # each kind's HTTP status
LOGGED_TEXT = 300  # characters of a client's text (a path) an access line keeps


def parse(kind: type[BaseModel], data: Any) -> Any:
    """A body as its pydantic model, or the first error as one sentence naming the field."""
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"] if not type_tag(str(part)))
        raise Problem(
            INVALID, f"{where or 'body'}: {first['msg']}", param=where or None, code="invalid_value"
        ) from None


def type_tag(part: str) -> bool:
    """A part of pydantic's error location that names one of a union's types (str, list[int], ...), not a field."""
    return part in ("str", "int", "float", "bool") or "[" in part or part.startswith("function-")


async def read_json(request: Request, limit: int, typed: bool = True) -> dict:
    """The body as a JSON object; typed: it must say so (Content-Type: application/json)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if typed and kind != "application/json":
        raise Problem(
            MEDIA_TYPE,
            f"Send the body as JSON with the header Content-Type: application/json (got {kind or 'none'!r}).",
            code="unsupported_media_type",
        )
    too_big = Problem(
        TOO_LARGE, f"The body is larger than this server's limit of {limit} bytes.", code="body_too_large"
    )
    if int(request.headers.get("content-length") or 0) > limit:
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_big
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested past Python's limit
        raise Problem(INVALID, "The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise Problem(INVALID, "The body must be a JSON object.", code="invalid_json")
    return data


def held(request: Request) -> list:
    return request.scope[HELD]


async def disconnected(request: Request) -> None:
    """Returns once the client has gone (the body was read already, so the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def event_stream(lines: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        lines, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


def printable(text: str, limit: int = LOGGED_TEXT) -> str:
    """A client's text as one log line may hold it: control characters (newlines, terminal escapes, NUL) and
    backslashes escaped, cut at `limit`."""
    out = "".join(
        c if c.isprintable() and c != "\\" else c.encode("unicode_escape").decode("ascii") for c in text[:limit]
    )
    return out + ("..." if len(text) > limit else "")


def admin_routes(core: Core) -> list[Route]:
    """The server's own endpoints: /health, and serve.ps's and serve.unload's."""

    async def health(request: Request) -> Response:
        if any(loaded.engine.fault is not None for loaded in list(core.pool.loaded.values())):
            raise Problem(UNAVAILABLE, "The engine has failed; the server is ending.", code="engine_failed")
        return JSONResponse({"status": "ok", "requests": core.pool.requests})

    async def ps(request: Request) -> Response:
        return JSONResponse(
            {"budget": core.spec.budget, "models": core.pool.table(), "waiting": dict(core.pool.waiting)}
        )

    async def unload(request: Request) -> Response:
        name = (await read_json(request, core.spec.max_body_bytes)).get("model")
        if not isinstance(name, str):
            raise invalid("model", "the name of a loaded model.")
        now = await asyncio.to_thread(core.pool.unload, name)
        return JSONResponse({"model": core.pool.find(name).alias, "unloaded": now})

    return [
        Route("/health", health, methods=["GET"]),
        Route("/health/", health, methods=["GET"]),
        Route("/v1/mlxtasks/ps", ps, methods=["GET"]),
        Route("/v1/mlxtasks/unload", unload, methods=["POST"]),
    ]


def build(spec: ServeSpec, pool, log, dialects: list[ModuleType]) -> Any:
    """The app: each dialect's routes and the server's own; a Problem anywhere is answered in the shape of the
    dialect whose PREFIXES its path starts with (the first dialect's otherwise)."""
    core = Core(spec, pool)
    routes = admin_routes(core) + [route for dialect in dialects for route in dialect.routes(core)]

    def error(path: str, problem: Problem) -> Response:
        return next((d for d in dialects if path.startswith(d.PREFIXES)), dialects[0]).error(problem)

    async def problem(request: Request, exc: Problem) -> Response:
        return error(request.url.path, exc)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 405:
            said = Problem(
                METHOD,
                f"{request.method} is not allowed here.",
                code="method_not_allowed",
                allow=(exc.headers or {}).get("Allow"),
            )
        else:
            said = Problem(NOT_FOUND, "No such path.", code="not_found")
        return error(request.url.path, said)

    async def crash(request: Request, exc: Exception) -> Response:
        log.exception("request failed")
        return error(
            request.url.path,
            Problem(FAILED, f"The server failed on this request: {type(exc).__name__}.", code="internal_error"),
        )

    handlers: dict[Any, Any] = {Problem: problem, HTTPException: http_error, Exception: crash}  # each its kind
    app: Any = Starlette(routes=routes, exception_handlers=handlers)
    app.router.redirect_slashes = False
    if spec.allowed_origins:
        app = CORSMiddleware(
            app, allow_origins=spec.allowed_origins, allow_methods=["GET", "POST"], allow_headers=["*"]
        )
    return Guard(releasing(app, pool), is_loopback(spec.host), log, error)


def releasing(app, pool):
    """The models a request holds (Core.hold) are released once its response is sent or it fails."""

    async def held_app(scope, receive, send):
        scope[HELD] = models = []
        try:
            await app(scope, receive, send)
        finally:
            for one in models:
                pool.release(one)

    return held_app


class Guard:
    """Outermost: the Host check while bound to loopback (a DNS-rebinding page is refused), and one access
    line per request (method, path, status, sizes, time), never a body; the path as printable() keeps it."""

    def __init__(self, app, loopback: bool, log, error):
        self.app, self.loopback, self.log, self.error = app, loopback, log, error

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.monotonic()
        seen = {"in": 0, "out": 0, "status": 0}

        async def counted_receive():
            message = await receive()
            seen["in"] += len(message.get("body", b""))
            return message

        async def counted_send(message):
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            seen["out"] += len(message.get("body", b""))
            await send(message)

        try:
            host = host_name(dict(scope["headers"]).get(b"host", b"").decode("latin-1"))
            if self.loopback and host and not is_loopback(host):
                refused = Problem(
                    FORBIDDEN, "This server answers only requests addressed to localhost.", code="host_not_allowed"
                )
                await self.error(scope["path"], refused)(scope, receive, counted_send)
            else:
                await self.app(scope, counted_receive, counted_send)
        finally:
            self.log.info(
                "%s %s %s in=%dB out=%dB %.3fs",
                printable(scope["method"], 20),
                printable(scope["path"]),
                seen["status"] or "-",
                seen["in"],
                seen["out"],
                time.monotonic() - started,
            )
