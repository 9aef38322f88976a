"""Anthropic's Messages API (POST /v1/messages, for Claude Code and other agents) over the same checks and engine
as the OpenAI endpoints in app.py: the request becomes chat-template messages (tool_result blocks as tool
messages), tool calls come back as tool_use blocks through app.py's ToolCalls, and every error of these
endpoints has Anthropic's shape {"type": "error", "error": {"type", "message"}}."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .app import ApiError, Options, Server, ToolCalls, parse, refuse
from .engine import Engine, Job

MAX_STOPS = 4  # as the engine's stop strings


def error(exc: ApiError) -> JSONResponse:
    """An ApiError in Anthropic's shape; a full queue is Anthropic's 529 "overloaded", which its clients retry."""
    status, kind = {403: (403, "permission_error"), 404: (404, "not_found_error"), 413: (413, "request_too_large"),
                    429: (529, "overloaded_error")}.get(exc.status, (exc.status, "invalid_request_error"))
    if status >= 500:
        kind = "api_error"
    return JSONResponse({"type": "error", "error": {"type": kind, "message": exc.message}}, status_code=status,
                        headers=exc.headers)


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


Block = Annotated[Union[Text, ToolUse, ToolResult, Thinking], Field(discriminator="type")]


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


class MessagesRequest(CountRequest):
    max_tokens: int = Field(ge=1)  # required, as Anthropic requires it
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)


def text_of(content: str | list[Text] | None) -> str:
    return content if isinstance(content, str) else "\n\n".join(block.text for block in content or [])


def template_messages(body: CountRequest) -> list[dict]:
    """The conversation as chat templates take it (app.py's template_message): a turn's tool results become tool
    messages before its text, and tool_use blocks the assistant's tool calls."""
    out = [{"role": "system", "content": text_of(body.system)}] if body.system else []
    for turn in body.messages:
        if isinstance(turn.content, str):
            out.append({"role": turn.role, "content": turn.content})
            continue
        results = [b for b in turn.content if isinstance(b, ToolResult)]
        out += [{"role": "tool", "tool_call_id": b.tool_use_id, "content": text_of(b.content)} for b in results]
        text = text_of([b for b in turn.content if isinstance(b, Text)])
        calls = [{"id": b.id, "type": "function", "function": {"name": b.name, "arguments": b.input}}
                 for b in turn.content if isinstance(b, ToolUse)]
        if text or calls or not results:
            out.append({"role": turn.role, "content": text, **({"tool_calls": calls} if calls else {})})
    return out


def tool_use(call: dict) -> dict:
    """One of ToolCalls' calls (OpenAI's shape) as a tool_use block."""
    try:
        given = json.loads(call["function"]["arguments"])
    except ValueError:
        given = None
    return {"type": "tool_use", "id": call["id"], "name": call["function"]["name"],
            "input": given if isinstance(given, dict) else {}}


def first_stop(text: str, stops: list[str]) -> str | None:
    """The stop sequence that ends text first (the one the engine stopped at), if any."""
    return min(((text.find(s), s) for s in stops if s in text), default=(0, None))[1]


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
            out.append(event("content_block_start", {"index": self.count, "content_block": {"type": "text", "text": ""}}))
            self.open = True
        if text:
            out.append(event("content_block_delta", {"index": self.count, "delta": {"type": "text_delta", "text": text}}))
        for call in calls:
            block = tool_use(call)
            self.held = ""
            out += self.close() + [
                event("content_block_start", {"index": self.count, "content_block": {**block, "input": {}}}),
                event("content_block_delta", {"index": self.count, "delta": {
                    "type": "input_json_delta", "partial_json": json.dumps(block["input"], ensure_ascii=False)}}),
                event("content_block_stop", {"index": self.count})]
            self.count += 1
        return out

    def close(self) -> list[str]:
        if not self.open:
            return []
        self.open, self.count = False, self.count + 1
        return [event("content_block_stop", {"index": self.count - 1})]


class Messages:
    """The endpoints on a Server: POST /v1/messages and /v1/messages/count_tokens."""

    def __init__(self, server: Server):
        self.server = server

    async def use_model(self, request: Request, name: str) -> None:
        await self.server.use_model(request, self.server.mapped(name), None)

    def tools(self, body: CountRequest) -> list[dict] | None:
        kind = (body.tool_choice or {}).get("type", "auto")
        if not body.tools or kind == "none":
            return None
        if kind != "auto":
            raise refuse("tool_choice", 'only "auto" and "none": this server cannot force a tool call')
        self.server.check_tool_calling()
        return [{"type": "function", "function": {"name": t.name, "parameters": t.input_schema,
                                                  **({"description": t.description} if t.description else {})}}
                for t in body.tools]

    async def count_tokens(self, request: Request) -> Response:
        try:
            body = parse(CountRequest, await self.server.read_json(request))
            await self.use_model(request, body.model)
            prompt, _ = await self.server.chat_prompt(template_messages(body), self.tools(body), 1)
        except ApiError as exc:
            return error(exc)
        return JSONResponse({"input_tokens": len(prompt)})

    async def create(self, request: Request) -> Response:
        try:
            body = parse(MessagesRequest, await self.server.read_json(request))
            await self.use_model(request, body.model)
            stops = body.stop_sequences or []
            if len(stops) > MAX_STOPS or not all(stops):
                raise ApiError(400, f"stop_sequences: up to {MAX_STOPS} strings, none of them empty.")
            tools = self.tools(body)
            prompt, max_tokens = await self.server.chat_prompt(template_messages(body), tools, body.max_tokens)
            options = Options(temperature=body.temperature, top_p=body.top_p, top_k=body.top_k, stop=stops)
            jobs, events = self.server.jobs(options, [prompt], max_tokens, continues=False, ends=[])
            self.server.submit(jobs)
        except ApiError as exc:
            return error(exc)
        engine = self.server.engine  # the stream's end may run in another context
        reply = Reply(body, len(prompt), jobs[0], ToolCalls(engine.tokenizer, tools) if tools else None)
        if body.stream:
            return StreamingResponse(self.stream(reply, engine, jobs, events), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        texts = {0: ""}
        done = await self.server.gather(request, jobs, events, texts)
        if done is None:
            return Response(status_code=499)  # nobody reads it
        text, calls = reply.calls.split(texts[0]) if reply.calls else (texts[0], [])
        content = ([{"type": "text", "text": text}] if text.strip() or (text and not calls) else []) + [tool_use(call) for call in calls]
        return JSONResponse({**reply.message(content), **reply.ending(done[0], bool(calls))})

    async def stream(self, reply: Reply, engine: Engine, jobs: list[Job], events: asyncio.Queue):
        blocks, called = Blocks(), False
        try:
            yield event("message_start", {"message": {**reply.message([]), "stop_reason": None, "stop_sequence": None,
                                                      "usage": {"input_tokens": reply.prompt_tokens, "output_tokens": 0}}})
            yield event("ping", {})
            while True:
                _, what, value = await events.get()
                if what == "text":
                    text, calls = reply.calls.feed(value) if reply.calls else (value, [])
                else:
                    text, calls = reply.calls.finish() if reply.calls else ("", [])
                called = called or bool(calls)
                for line in blocks.add(text, calls):
                    yield line
                if what == "done":
                    break
            for line in blocks.close():
                yield line
            ending = reply.ending(value, called)
            yield event("message_delta", {"delta": {key: ending[key] for key in ("stop_reason", "stop_sequence")},
                                          "usage": ending["usage"]})  # input and cache counts as known now
            yield event("message_stop", {})
        finally:
            engine.cancel(jobs)  # a client gone mid-stream: its job leaves the batch


class Reply:
    """What a message's answer says besides its content."""

    def __init__(self, body: MessagesRequest, prompt_tokens: int, job: Job, calls: ToolCalls | None):
        self.body, self.prompt_tokens, self.job, self.calls = body, prompt_tokens, job, calls
        self.ident = f"msg_{uuid.uuid4().hex[:24]}"

    def message(self, content: list[dict]) -> dict:
        return {"id": self.ident, "type": "message", "role": "assistant", "model": self.body.model, "content": content}

    def ending(self, done: dict, called: bool) -> dict:
        """stop_reason, stop_sequence and usage, from the job's "done" value."""
        stop = None
        if done["finish_reason"] == "length":
            reason = "max_tokens"
        elif called:
            reason = "tool_use"
        else:
            # The engine cut the text before a stop string; its detokenizer still holds all it decoded.
            stop = first_stop(self.job.detokenizer.text, self.body.stop_sequences or [])
            reason = "stop_sequence" if stop else "end_turn"
        cached = done["cached_tokens"]  # Anthropic counts them apart from input_tokens
        return {"stop_reason": reason, "stop_sequence": stop,
                "usage": {"input_tokens": self.prompt_tokens - cached, "cache_read_input_tokens": cached,
                          "cache_creation_input_tokens": 0, "output_tokens": done["completion_tokens"]}}


def routes(server: Server) -> list[Route]:
    messages = Messages(server)
    return [Route(path, endpoint, methods=["POST"]) for path, endpoint in
            [("/v1/messages", messages.create), ("/v1/messages/", messages.create),
             ("/v1/messages/count_tokens", messages.count_tokens)]]
