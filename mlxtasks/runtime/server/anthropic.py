"""Anthropic's Messages API (POST /v1/messages and /v1/messages/count_tokens, for Claude Code and other
agents): the body becomes an Ask (tool_result blocks tool messages, tool_use blocks the assistant's tool
calls), and the Run's pieces become content blocks: text, and a tool_use block per call. Every error of these
paths has Anthropic's shape {"type": "error", "error": {"type", "message"}}."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .calls import arguments_input
from .core import Core, Run
from .problems import BUSY, Problem, invalid
from .request import Ask, Sampling, answer_format, chosen_tools, forced_call, joined, json_format, stops, text_only
from .web import STATUS, disconnected, event_stream, held, parse, read_json

PREFIXES = ("/v1/messages",)
TYPES = {403: "permission_error", 404: "not_found_error", 413: "request_too_large", 529: "overloaded_error"}
PING = 'event: ping\ndata: {"type": "ping"}\n\n'
TOOL_CHOICES = {"auto": "auto", "none": "none", "any": "required", "tool": "required"}


def error(problem: Problem) -> Response:
    """A full queue is Anthropic's 529 "overloaded", which its clients retry."""
    status = 529 if problem.kind == BUSY else STATUS[problem.kind]
    kind = "api_error" if status >= 500 and status != 529 else TYPES.get(status, "invalid_request_error")
    return JSONResponse(
        {"type": "error", "error": {"type": kind, "message": problem.message}},
        status_code=status,
        headers=problem.headers,
    )


# --- request bodies ---


class Text(BaseModel):
    type: Literal["text"]
    text: str


class ToolUse(BaseModel):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class ToolResult(BaseModel):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[Text] = ""


class Thinking(BaseModel):  # an earlier turn's reasoning: not shown to the model again
    type: Literal["thinking", "redacted_thinking"]


class Media(BaseModel):  # refused: the models served read text only
    model_config = ConfigDict(extra="allow")
    type: Literal["image", "document"]


Block = Annotated[Text | ToolUse | ToolResult | Thinking | Media, Field(discriminator="type")]


class Turn(BaseModel):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class Tool(BaseModel):
    name: str = Field(min_length=1)
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class CountRequest(BaseModel):
    model: str
    messages: list[Turn] = Field(min_length=1)
    system: str | list[Text] | None = None
    tools: list[Tool] | None = None
    tool_choice: dict[str, Any] | None = None
    output_format: dict[str, Any] | None = None  # {"type": "json_schema", "schema": {...}}: the beta's name
    output_config: dict[str, Any] | None = None  # {"format": {...}}, the same format's name since

    def ask(self, **rest: Any) -> Ask:
        choice = TOOL_CHOICES.get((self.tool_choice or {}).get("type", "auto"), "auto")
        named = (self.tool_choice or {}).get("name") if (self.tool_choice or {}).get("type") == "tool" else None
        tools = chosen_tools(
            [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "parameters": t.input_schema,
                        **({"description": t.description} if t.description else {}),
                    },
                }
                for t in self.tools or []
            ],
            choice,
        )
        if self.output_format is not None:
            given, param = self.output_format, "output_format"
        else:
            given, param = (self.output_config or {}).get("format") or {}, "output_config.format"
        if not isinstance(given, dict):
            raise invalid(param, 'an object such as {"type": "json_schema", "schema": {...}}.')
        structured = json_format(given.get("type"), given.get("schema"), param, f"{param}.schema")
        return Ask(
            model=self.model,
            messages=template_messages(self),
            tools=tools,
            format=answer_format(structured, forced_call(tools, choice, named)),
            **rest,
        )


class MessagesRequest(CountRequest):
    max_tokens: StrictInt = Field(ge=1)  # required, as Anthropic requires it
    stop_sequences: list[str] | None = None
    stream: StrictBool | None = None
    temperature: StrictFloat | StrictInt | None = Field(None, ge=0, le=1)
    top_p: StrictFloat | StrictInt | None = Field(None, gt=0, le=1)
    top_k: StrictInt | None = Field(None, ge=0)


def text_of(content: str | list[Text] | None) -> str:
    return content if isinstance(content, str) else joined([block.text for block in content or []])


def template_messages(body: CountRequest) -> list[dict]:
    """The conversation as chat templates take it: a turn's tool results become tool messages before its text,
    and tool_use blocks the assistant's tool calls."""
    out: list[dict[str, Any]] = [{"role": "system", "content": text_of(body.system)}] if body.system else []
    for number, turn in enumerate(body.messages):
        if isinstance(turn.content, str):
            out.append({"role": turn.role, "content": turn.content})
            continue
        for at, block in enumerate(turn.content):
            if isinstance(block, Media):
                raise text_only(f"messages.{number}.content.{at}", block.type)
        results = [b for b in turn.content if isinstance(b, ToolResult)]
        out += [{"role": "tool", "tool_call_id": b.tool_use_id, "content": text_of(b.content)} for b in results]
        text = text_of([b for b in turn.content if isinstance(b, Text)])
        calls = [
            {"id": b.id, "type": "function", "function": {"name": b.name, "arguments": b.input}}
            for b in turn.content
            if isinstance(b, ToolUse)
        ]
        if text or calls or not results:
            out.append({"role": turn.role, "content": text, **({"tool_calls": calls} if calls else {})})
    return out


def tool_use(call: dict) -> dict:
    return {"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": arguments_input(call)}


def event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"


class Blocks:
    """A streamed answer's content blocks: text deltas go into an open text block, each tool call is a block.
    After a tool call, whitespace waits for more text (before the next call, it is dropped)."""

    def __init__(self):
        self.count, self.open, self.held = 0, False, ""

    def add(self, text: str, calls: list[dict]) -> list[str]:
        out = []
        if not self.open and self.count:
            text, self.held = ("", self.held + text) if not text.strip() else (self.held + text, "")
        if text and not self.open:
            out.append(
                event("content_block_start", {"index": self.count, "content_block": {"type": "text", "text": ""}})
            )
            self.open = True
        if text:
            out.append(
                event("content_block_delta", {"index": self.count, "delta": {"type": "text_delta", "text": text}})
            )
        for call in calls:
            block = tool_use(call)
            self.held = ""
            out += self.close() + [
                event("content_block_start", {"index": self.count, "content_block": {**block, "input": {}}}),
                event(
                    "content_block_delta",
                    {
                        "index": self.count,
                        "delta": {
                            "type": "input_json_delta",
                            "partial_json": json.dumps(block["input"], ensure_ascii=False),
                        },
                    },
                ),
                event("content_block_stop", {"index": self.count}),
            ]
            self.count += 1
        return out

    def close(self) -> list[str]:
        if not self.open:
            return []
        self.open, self.count = False, self.count + 1
        return [event("content_block_stop", {"index": self.count - 1})]


class Reply:
    """What a message's answer says besides its content."""

    def __init__(self, body: MessagesRequest, run: Run):
        self.body, self.run = body, run
        self.ident = f"msg_{uuid.uuid4().hex[:24]}"

    def message(self, content: list[dict]) -> dict:
        return {"id": self.ident, "type": "message", "role": "assistant", "model": self.body.model, "content": content}

    def ending(self, done: dict) -> dict:
        """stop_reason, stop_sequence and usage, from the choice's end."""
        reason = {"length": "max_tokens", "tool_calls": "tool_use"}.get(done["finish_reason"]) or (
            "stop_sequence" if done["stop_sequence"] else "end_turn"
        )
        counts = self.run.usage()  # Anthropic counts the cached tokens apart from input_tokens
        return {
            "stop_reason": reason,
            "stop_sequence": done["stop_sequence"] if reason == "stop_sequence" else None,
            "usage": {
                "input_tokens": counts["prompt_tokens"] - counts["cached_tokens"],
                "cache_read_input_tokens": counts["cached_tokens"],
                "cache_creation_input_tokens": 0,
                "output_tokens": counts["completion_tokens"],
            },
        }

    async def stream(self) -> AsyncIterator[str]:
        blocks = Blocks()
        yield event(
            "message_start",
            {
                "message": {
                    **self.message([]),
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": self.run.prompt_tokens, "output_tokens": 0},
                }
            },
        )
        yield event("ping", {})
        async for piece in self.run.stream():
            if piece is None:
                yield PING
                continue
            for line in blocks.add(piece.text, piece.calls or []):
                yield line
            if piece.done:
                for line in blocks.close():
                    yield line
                ending = self.ending(piece.done)
                yield event(
                    "message_delta",
                    {"delta": {key: ending[key] for key in ("stop_reason", "stop_sequence")}, "usage": ending["usage"]},
                )  # input and cache counts as known now
                yield event("message_stop", {})

    def whole(self, piece) -> dict:
        text, calls = piece.text, piece.calls or []
        content = ([{"type": "text", "text": text}] if text.strip() or (text and not calls) else []) + [
            tool_use(call) for call in calls
        ]
        return {**self.message(content), **self.ending(piece.done)}


def routes(core: Core) -> list[Route]:
    async def create(request: Request) -> Response:
        body = parse(MessagesRequest, await read_json(request, core.spec.max_body_bytes))
        ask = body.ask(
            max_tokens=body.max_tokens,
            stop=stops(body.stop_sequences, "stop_sequences"),
            stream=bool(body.stream),
            sampling=Sampling(temperature=body.temperature, top_p=body.top_p, top_k=body.top_k),
        )
        reply = Reply(body, await core.start(ask, held(request)))
        if body.stream:
            return event_stream(reply.stream())
        pieces = await reply.run.collect(disconnected(request))
        if pieces is None:
            return Response(status_code=499)  # nobody reads it
        return JSONResponse(reply.whole(reply.run.whole(pieces)[0]))

    async def count_tokens(request: Request) -> Response:
        body = parse(CountRequest, await read_json(request, core.spec.max_body_bytes))
        run = await core.start(body.ask(count_only=True), held(request))
        return JSONResponse({"input_tokens": run.prompt_tokens})

    return [
        Route("/v1/messages", create, methods=["POST"]),
        Route("/v1/messages/", create, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    ]
