"""Embeddings: OpenAI's POST /v1/embeddings (input a text, texts, token ids or lists of them; dimensions;
encoding_format float or base64) and Ollama's POST /api/embed (input a text or texts, truncate, dimensions,
keep_alive) and its older POST /api/embeddings ({prompt} -> {embedding}). Each body becomes an Embed
(request.py) that Core.embed answers from an embedding model. Errors on /v1/embeddings have OpenAI's shape;
those on /api/ paths take the shape of the dialect that owns /api/ (OpenAI's until there is one)."""

from __future__ import annotations

import base64
import sys
import time
from array import array
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import ollama
from .core import Core, keep_alive
from .openai import error
from .request import Embed
from .web import held, parse, read_json

PREFIXES = ("/v1/embeddings", "/embeddings")
__all__ = ["PREFIXES", "error", "routes"]

Duration = StrictFloat | StrictInt | str | None  # seconds, or "5m" (negative: forever)


class OpenAIEmbedding(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    input: str | list[str] | list[StrictInt] | list[list[StrictInt]]
    dimensions: StrictInt | None = Field(None, ge=1)
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None
    keep_alive: Duration = None


class OllamaEmbed(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    input: str | list[str]
    truncate: StrictBool | None = None
    dimensions: StrictInt | None = Field(None, ge=1)
    keep_alive: Duration = None
    options: dict[str, Any] | None = None  # sampling options: nothing to sample here


class OllamaEmbeddings(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    prompt: str
    keep_alive: Duration = None
    options: dict[str, Any] | None = None


def packed(vector: list[float]) -> str:
    """OpenAI's base64: the vector's float32 values, little-endian."""
    values = array("f", vector)
    if sys.byteorder == "big":
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")


def nanoseconds(seconds: float) -> int:
    return int(seconds * 1e9)


def routes(core: Core) -> list[Route]:
    async def openai_embeddings(request: Request) -> Response:
        body = parse(OpenAIEmbedding, await read_json(request, core.spec.max_body_bytes))
        given = body.input
        inputs = [given] if isinstance(given, str) or (given and isinstance(given[0], int)) else given
        embed = Embed(body.model, inputs, body.dimensions, keep_alive(body.keep_alive), truncate=False)  # type: ignore[arg-type]
        done = await core.embed(embed, held(request))
        encode = packed if body.encoding_format == "base64" else list
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": encode(vector)}
                    for i, vector in enumerate(done.vectors)
                ],
                "model": done.model,
                "usage": {"prompt_tokens": done.prompt_tokens, "total_tokens": done.prompt_tokens},
            }
        )

    async def ollama_embed(request: Request) -> Response:
        started = time.monotonic()
        body = parse(OllamaEmbed, await ollama.body_of(request, core))
        inputs = [body.input] if isinstance(body.input, str) else body.input
        name = ollama.resolve(core, body.model)
        embed = Embed(name, inputs, body.dimensions, keep_alive(body.keep_alive), body.truncate is not False)
        with ollama.named(body.model):
            done = await core.embed(embed, held(request))
        return JSONResponse(
            {
                "model": body.model,
                "embeddings": done.vectors,
                "total_duration": nanoseconds(time.monotonic() - started),
                "load_duration": nanoseconds(done.load_s),
                "prompt_eval_count": done.prompt_tokens,
            }
        )

    async def ollama_embeddings(request: Request) -> Response:
        body = parse(OllamaEmbeddings, await ollama.body_of(request, core))
        embed = Embed(ollama.resolve(core, body.model), [body.prompt], keep_alive=keep_alive(body.keep_alive))
        with ollama.named(body.model):
            done = await core.embed(embed, held(request))
        return JSONResponse({"embedding": done.vectors[0]})

    out = []
    for path, endpoint in [
        ("/v1/embeddings", openai_embeddings),
        ("/embeddings", openai_embeddings),
        ("/api/embed", ollama_embed),
        ("/api/embeddings", ollama_embeddings),
    ]:
        out += [Route(path, endpoint, methods=["POST"]), Route(path + "/", endpoint, methods=["POST"])]
    return out
