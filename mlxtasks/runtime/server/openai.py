"""OpenAI's chat and text completions (POST /v1/chat/completions, /v1/completions) and models (GET /v1/models,
/v1/models/{id}): each body becomes an Ask (request.py), and the Run's pieces become OpenAI's answers and
server-sent chunks. Every error has OpenAI's shape {"error": {"message", "type", "param", "code"}}.
None (JSON null) always means "the default"; a number or a flag must be one (true is not 1, "yes" not true)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .calls import arguments_object
from .core import Core, Run, keep_alive
from .problems import INVALID, UNSUPPORTED, Problem
from .request import (
    Ask,
    Sampling,
    answer_format,
    chosen_tools,
    forced_call,
    joined,
    openai_format,
    stops,
    text_only,
)
from .web import STATUS, disconnected, event_stream, held, parse, read_json

PREFIXES = ("/v1/chat", "/v1/completions", "/v1/models", "/chat", "/completions", "/models")
TYPES = {
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}
PING = ": ping\n\n"  # an SSE comment: clients skip it


def error(problem: Problem) -> Response:
    status = STATUS[problem.kind]
    body = {
        "message": problem.message,
        "type": TYPES.get(status, "invalid_request_error"),
        "param": problem.param,
        "code": problem.code,
    }
    return JSONResponse({"error": body}, status_code=status, headers=problem.headers)


# --- request bodies ---


class StreamOptions(BaseModel):
    include_usage: StrictBool | None = None


class Options(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    max_tokens: StrictInt | None = Field(None, ge=1)
    temperature: StrictFloat | StrictInt | None = Field(None, ge=0, le=2)
    top_p: StrictFloat | StrictInt | None = Field(None, gt=0, le=1)
    top_k: StrictInt | None = Field(None, ge=0)
    min_p: StrictFloat | StrictInt | None = Field(None, ge=0, le=1)
    n: StrictInt | None = Field(None, ge=1)
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    presence_penalty: StrictFloat | StrictInt | None = Field(None, ge=-2, le=2)
    frequency_penalty: StrictFloat | StrictInt | None = Field(None, ge=-2, le=2)
    repetition_penalty: StrictFloat | StrictInt | None = Field(None, gt=0, le=10)
    logit_bias: dict[int, StrictFloat | StrictInt] | None = None
    seed: StrictInt | None = None
    user: str | None = None
    keep_alive: StrictFloat | StrictInt | str | None = None  # seconds or "5m" the model stays loaded after this

    def ask(self, **rest: Any) -> Ask:
        return Ask(
            model=self.model,
            n=self.n or 1,
            stop=stops(self.stop, "stop"),
            stream=bool(self.stream),
            keep_alive=keep_alive(self.keep_alive),
            sampling=Sampling(
                temperature=self.temperature,
                top_p=self.top_p,
                top_k=self.top_k,
                min_p=self.min_p,
                seed=self.seed,
                presence_penalty=self.presence_penalty,
                frequency_penalty=self.frequency_penalty,
                repetition_penalty=self.repetition_penalty,
                logit_bias={int(k): v for k, v in self.logit_bias.items()} if self.logit_bias else None,
            ),
            **rest,
        )


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class MediaPart(BaseModel):  # refused: the models served read text only
    model_config = ConfigDict(extra="allow")
    type: Literal["image_url", "input_audio", "file", "image"]


Part = Annotated[TextPart | MediaPart, Field(discriminator="type")]


class FunctionCall(BaseModel):
    name: str
    arguments: str | dict[str, Any] = "{}"  # a JSON object, as a string (OpenAI) or not


class ToolCall(BaseModel):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[Part] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class Function(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["function"]
    function: Function


class ChatRequest(Options):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: StrictInt | None = Field(None, ge=1)
    logprobs: StrictBool | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None


class CompletionRequest(Options):
    prompt: str | list[str] | list[StrictInt] | list[list[StrictInt]] = ""
    suffix: str | None = None
    echo: StrictBool | None = None
    logprobs: StrictInt | None = None
    best_of: StrictInt | None = Field(None, ge=1, le=1)
    response_format: dict[str, Any] | None = None


def template_message(message: ChatMessage, where: str) -> dict:
    """A message as chat templates take it: text content ("" for none), and tool calls' arguments as objects."""
    parts = [message.content] if isinstance(message.content, str) else message.content or []
    for number, part in enumerate(parts):
        if isinstance(part, MediaPart):
            raise text_only(f"{where}.content.{number}", part.type)
    out: dict[str, Any] = {
        "role": "system" if message.role == "developer" else message.role,
        "content": joined([p if isinstance(p, str) else p.text for p in parts if not isinstance(p, MediaPart)]),
    }
    if message.name is not None:
        out["name"] = message.name
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.function.name, "arguments": arguments_object(call.function.arguments, where)},
            }
            for call in message.tool_calls
        ]
    return out


def chat_ask(body: ChatRequest) -> Ask:
    if body.logprobs:
        raise Problem(
            UNSUPPORTED,
            "logprobs: log probabilities are not supported by this server",
            param="logprobs",
            code="unsupported_parameter",
        )
    choice = body.tool_choice if isinstance(body.tool_choice, str) or body.tool_choice is None else "required"
    function = body.tool_choice.get("function") if isinstance(body.tool_choice, dict) else None
    named = function.get("name") if isinstance(function, dict) else None  # {"type": "function", "function": {...}}
    tools = chosen_tools([tool.model_dump(exclude_none=True) for tool in body.tools or []], choice)
    return body.ask(
        messages=[template_message(m, f"messages.{i}") for i, m in enumerate(body.messages)],
        tools=tools,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        format=answer_format(openai_format(body.response_format), forced_call(tools, choice, named)),
    )


def completion_ask(body: CompletionRequest) -> Ask:
    if body.logprobs is not None:
        raise Problem(
            UNSUPPORTED,
            "logprobs: log probabilities are not supported by this server",
            param="logprobs",
            code="unsupported_parameter",
        )
    prompt = body.prompt
    if prompt == []:
        raise Problem(INVALID, "prompt: an empty list.", param="prompt", code="invalid_value")
    prompts = [prompt] if isinstance(prompt, str) or isinstance(prompt[0], int) else prompt
    return body.ask(
        prompts=prompts,
        suffix=body.suffix or None,
        echo=bool(body.echo),
        max_tokens=body.max_tokens,
        format=openai_format(body.response_format),
    )


# --- answers ---


def usage(run: Run) -> dict:
    counts = run.usage()
    return {
        "prompt_tokens": counts["prompt_tokens"],
        "completion_tokens": counts["completion_tokens"],
        "total_tokens": counts["prompt_tokens"] + counts["completion_tokens"],
        "prompt_tokens_details": {"cached_tokens": counts["cached_tokens"]},
    }


class Answer:
    """One chat or text completion's answer, whole or streamed."""

    def __init__(self, run: Run, chat: bool, include_usage: bool):
        self.run, self.chat, self.include_usage = run, chat, include_usage
        self.ident, self.created = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}", int(time.time())
        self.texts: dict[int, tuple[str, str]] = {}  # a choice's text chunk around its text, made once

    def head(self, whole: bool = False) -> dict:
        kind = (
            ("chat.completion" if self.chat else "text_completion")
            if whole
            else ("chat.completion.chunk" if self.chat else "text_completion")
        )
        return {"id": self.ident, "object": kind, "created": self.created, "model": self.run.model}

    def text(self, index: int, text: str) -> str:
        """chunk(index, text), with only the text encoded per token: the rest of the chunk is the same each time."""
        if index not in self.texts:
            before, _, after = self.chunk(index, "\0").partition(json.dumps("\0"))
            self.texts[index] = before, after
        before, after = self.texts[index]
        return before + json.dumps(text) + after

    def chunk(self, index: int, text: str | None, finish: str | None = None, **delta: Any) -> str:
        if self.chat:
            choice = {
                "index": index,
                "delta": {**({} if text is None else {"content": text}), **delta},
                "logprobs": None,
                "finish_reason": finish,
            }
        else:
            choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
        return sse({**self.head(), "choices": [choice]})

    async def stream(self) -> AsyncIterator[str]:
        run = self.run
        for job in run.jobs:
            if self.chat or run.echo(job.index):
                yield self.chunk(job.index, run.echo(job.index), **({"role": "assistant"} if self.chat else {}))
        async for piece in run.stream():
            if piece is None:
                yield PING
                continue
            if piece.text:
                yield self.text(piece.index, piece.text)
            if piece.calls:
                first = run.calls[piece.index].count - len(piece.calls)
                yield self.chunk(
                    piece.index, None, tool_calls=[{"index": first + k, **call} for k, call in enumerate(piece.calls)]
                )
            if piece.done:
                yield self.chunk(piece.index, None, piece.done["finish_reason"])
        if self.include_usage:
            yield sse({**self.head(), "choices": [], "usage": usage(run)})
        yield "data: [DONE]\n\n"

    def whole(self, pieces) -> dict:
        choices = []
        for piece in pieces:
            if self.chat:
                message: dict[str, Any] = {"role": "assistant", "content": piece.text}
                if piece.calls:
                    message["content"] = piece.text if piece.text.strip() else None
                    message["tool_calls"] = piece.calls
                choices.append(
                    {
                        "index": piece.index,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": piece.done["finish_reason"],
                    }
                )
            else:
                choices.append(
                    {
                        "index": piece.index,
                        "text": piece.text,
                        "logprobs": None,
                        "finish_reason": piece.done["finish_reason"],
                    }
                )
        return {**self.head(whole=True), "choices": choices, "usage": usage(self.run)}


def sse(data: dict) -> str:
    return f"data: {json.dumps(data)}\n\n"


async def answer(core: Core, request: Request, ask: Ask, chat: bool, include_usage: bool) -> Response:
    run = await core.start(ask, held(request))
    replying = Answer(run, chat, include_usage)
    if ask.stream:
        return event_stream(replying.stream())
    pieces = await run.collect(disconnected(request))
    if pieces is None:
        return Response(status_code=499)  # nobody reads it
    return JSONResponse(replying.whole(run.whole(pieces)))


def routes(core: Core) -> list[Route]:
    async def chat(request: Request) -> Response:
        body = parse(ChatRequest, await read_json(request, core.spec.max_body_bytes))
        return await answer(
            core, request, chat_ask(body), True, bool(body.stream_options and body.stream_options.include_usage)
        )

    async def completions(request: Request) -> Response:
        body = parse(CompletionRequest, await read_json(request, core.spec.max_body_bytes))
        return await answer(
            core, request, completion_ask(body), False, bool(body.stream_options and body.stream_options.include_usage)
        )

    def card(alias: str) -> dict:
        return {"id": alias, "object": "model", "created": created, "owned_by": "mlxtasks"}

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [card(alias) for alias in core.pool.entries]})

    async def model(request: Request) -> Response:
        return JSONResponse(card(core.pool.find(request.path_params["name"].rstrip("/")).alias))

    created = int(time.time())
    out = []
    for path, endpoint, methods in [
        ("/v1/models", models, ["GET"]),
        ("/v1/chat/completions", chat, ["POST"]),
        ("/v1/completions", completions, ["POST"]),
    ]:
        for variant in {path, path + "/", path.removeprefix("/v1"), path.removeprefix("/v1") + "/"}:
            out.append(Route(variant, endpoint, methods=methods))
    return out + [Route(path, model, methods=["GET"]) for path in ("/v1/models/{name:path}", "/models/{name:path}")]
