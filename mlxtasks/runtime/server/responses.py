"""OpenAI's Responses API (POST /v1/responses, which Codex speaks): `instructions` and `input` items become an
Ask's messages (function_call items the assistant's tool calls, function_call_output items tool messages), and
the Run's pieces become output items (a message with output_text, and a function_call item per tool call), in
the order they came, streamed or whole. Nothing is stored: each request carries its whole conversation.
Errors have OpenAI's shape (openai.error)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictBool, StrictFloat, StrictInt, Tag
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import openai
from .calls import arguments_object
from .core import Core, Piece, Run
from .problems import invalid, refuse
from .request import Ask, Sampling, answer_format, chosen_tools, forced_call, joined, json_format, text_only
from .web import disconnected, event_stream, held, parse, read_json

PREFIXES = ("/v1/responses", "/responses")
error = openai.error


# --- request bodies ---


class Part(BaseModel):
    type: Literal["input_text", "output_text"]
    text: str


class MediaPart(BaseModel):  # refused: the models served read text only
    model_config = ConfigDict(extra="allow")
    type: Literal["input_image", "input_file", "input_audio"]


Content = list[Annotated[Part | MediaPart, Field(discriminator="type")]] | str  # a list first: its errors


class Said(BaseModel):
    role: Literal["user", "assistant", "system", "developer"]
    content: Content


class Called(BaseModel):
    call_id: str
    name: str
    arguments: str


class Returned(BaseModel):
    call_id: str
    output: Content


class Thought(BaseModel):  # a reasoning item of an earlier turn: not shown to the model again
    pass


def item_type(value: Any) -> str | None:
    """A message item may leave its type out."""
    return value.get("type", "message") if isinstance(value, dict) else None


Item = Annotated[
    Annotated[Said, Tag("message")]
    | Annotated[Called, Tag("function_call")]
    | Annotated[Returned, Tag("function_call_output")]
    | Annotated[Thought, Tag("reasoning")],
    Discriminator(item_type),
]


class FunctionTool(BaseModel):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class OtherTool(BaseModel):  # web_search, local_shell, custom, ...: this server has none, the model never sees them
    type: str


def tool_type(value: Any) -> str:
    return "function" if isinstance(value, dict) and value.get("type") == "function" else "other"


Tool = Annotated[
    Annotated[FunctionTool, Tag("function")] | Annotated[OtherTool, Tag("other")], Discriminator(tool_type)
]


class ResponsesRequest(BaseModel):
    model: str | None = None
    instructions: str | None = None
    input: list[Item] | str = Field(min_length=1)
    max_output_tokens: StrictInt | None = Field(None, ge=1)
    temperature: StrictFloat | StrictInt | None = Field(None, ge=0, le=2)
    top_p: StrictFloat | StrictInt | None = Field(None, gt=0, le=1)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    stream: StrictBool | None = None
    previous_response_id: str | None = None
    text: dict[str, Any] | None = None
    # read and ignored (Codex sends them)
    store: bool | None = None
    include: list[str] | None = None
    reasoning: dict[str, Any] | None = None
    prompt_cache_key: str | None = None
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = None


def text_of(content: Content, where: str) -> str:
    if isinstance(content, str):
        return content
    for number, part in enumerate(content):
        if isinstance(part, MediaPart):
            raise text_only(f"{where}.content.{number}", part.type)
    return joined([part.text for part in content if isinstance(part, Part)])


def template_messages(body: ResponsesRequest) -> list[dict]:
    """The conversation as chat templates take it. Adjacent system (instructions, developer) or user messages
    become one, since many templates want roles to alternate."""
    out: list[dict] = []

    def add(role: str, content: str) -> None:
        if out and out[-1]["role"] == role in ("system", "user") and "tool_calls" not in out[-1]:
            out[-1]["content"] += "\n\n" + content
        else:
            out.append({"role": role, "content": content})

    if body.instructions:
        add("system", body.instructions)
    items = [Said(role="user", content=body.input)] if isinstance(body.input, str) else body.input
    for number, item in enumerate(items):
        if isinstance(item, Said):
            add("system" if item.role == "developer" else item.role, text_of(item.content, f"input.{number}"))
        elif isinstance(item, Called):
            arguments = arguments_object(item.arguments, f"input.{number}.arguments")
            if not out or out[-1]["role"] != "assistant":
                out.append({"role": "assistant", "content": ""})
            out[-1].setdefault("tool_calls", []).append(
                {"id": item.call_id, "type": "function", "function": {"name": item.name, "arguments": arguments}}
            )
        elif isinstance(item, Returned):
            out.append(
                {"role": "tool", "tool_call_id": item.call_id, "content": text_of(item.output, f"input.{number}")}
            )
    return out


class Answer:
    """One response as the model's text arrives: its output items (text goes into an open message item; each
    tool call closes it and is an item of its own; whitespace at the text's end waits, and a call drops it), and
    the stream's events, numbered in order."""

    def __init__(self, body: ResponsesRequest, run: Run):
        self.body, self.run = body, run
        self.tools = [{"type": "function", **tool["function"]} for tool in run.ask.tools or []]
        self.ident, self.created = f"resp_{uuid.uuid4().hex}", int(time.time())
        self.items: list[dict] = []
        self.open: dict | None = None  # the message item text goes into
        self.held, self.sequence, self.result = "", 0, dict[str, Any]()

    def event(self, kind: str, /, **data) -> str:
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data, 'sequence_number': self.sequence - 1})}\n\n"

    def response(self, status: str, usage: dict | None) -> dict:
        return {
            "id": self.ident,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": self.body.instructions,
            "max_output_tokens": self.body.max_output_tokens,
            "model": self.run.model,
            "output": self.items,
            "parallel_tool_calls": self.body.parallel_tool_calls is not False,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "store": False,
            "temperature": self.run.temperature,
            "text": {"format": (self.body.text or {}).get("format") or {"type": "text"}},
            "tool_choice": self.body.tool_choice or "auto",
            "tools": self.tools,
            "top_p": self.run.top_p,
            "truncation": "disabled",
            "usage": usage,
            "user": None,
            "metadata": self.body.metadata or {},
        }

    def start(self) -> list[str]:
        now = self.response("in_progress", None)
        return [self.event("response.created", response=now), self.event("response.in_progress", response=now)]

    def feed(self, piece: Piece) -> list[str]:
        """The events for one piece of the answer."""
        text, calls = self.held + piece.text, piece.calls or []
        out, self.held = self.write(text.rstrip()), text[len(text.rstrip()) :]
        for call in calls:
            out += self.close("completed")
            self.held = ""
            item = {
                "type": "function_call",
                "id": f"fc_{uuid.uuid4().hex}",
                "call_id": call["id"],
                "name": call["function"]["name"],
                "arguments": call["function"]["arguments"],
                "status": "completed",
            }
            index, where = len(self.items), {"item_id": item["id"], "output_index": len(self.items)}
            self.items.append(item)
            out += [
                self.event(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "arguments": "", "status": "in_progress"},
                ),
                self.event("response.function_call_arguments.delta", **where, delta=item["arguments"]),
                self.event(
                    "response.function_call_arguments.done", **where, name=item["name"], arguments=item["arguments"]
                ),
                self.event("response.output_item.done", output_index=index, item=item),
            ]
        return out + (self.end(piece.done) if piece.done else [])

    def write(self, text: str) -> list[str]:
        if not text:
            return []
        out = self.begin() if self.open is None else []
        item = self.open
        assert item is not None  # begun above
        item["content"][0]["text"] += text
        return out + [
            self.event(
                "response.output_text.delta",
                item_id=item["id"],
                output_index=len(self.items) - 1,
                content_index=0,
                delta=text,
                logprobs=[],
            )
        ]

    def begin(self) -> list[str]:
        item: dict[str, Any] = {
            "type": "message",
            "id": f"msg_{uuid.uuid4().hex}",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        self.items.append(item)
        self.open, part = item, {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        out = [
            self.event("response.output_item.added", output_index=len(self.items) - 1, item=item),
            self.event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=len(self.items) - 1,
                content_index=0,
                part=part,
            ),
        ]
        item["content"].append(part)
        return out

    def close(self, status: str) -> list[str]:
        if self.open is None:
            return []
        item, self.open = self.open, None
        item["status"], part = status, item["content"][0]
        where = {"item_id": item["id"], "output_index": self.items.index(item), "content_index": 0}
        return [
            self.event("response.output_text.done", **where, text=part["text"], logprobs=[]),
            self.event("response.content_part.done", **where, part=part),
            self.event("response.output_item.done", output_index=where["output_index"], item=item),
        ]

    def end(self, done: dict) -> list[str]:
        """The answer's end: the message closed (an empty one when there is nothing else), and the response."""
        status = "incomplete" if done["finish_reason"] == "length" else "completed"
        out = self.write(self.held) if self.open or not self.items else []  # not after a call
        out += (self.begin() if not self.items else []) + self.close(status)
        counts = self.run.usage()
        self.result = self.response(
            status,
            {
                "input_tokens": counts["prompt_tokens"],
                "input_tokens_details": {"cached_tokens": counts["cached_tokens"]},
                "output_tokens": counts["completion_tokens"],
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": counts["prompt_tokens"] + counts["completion_tokens"],
            },
        )
        return out + [self.event(f"response.{status}", response=self.result)]


def ask(body: ResponsesRequest) -> Ask:
    if body.previous_response_id is not None:
        raise refuse("previous_response_id", "this server stores no responses: send the whole conversation")
    given = (body.text or {}).get("format") or {}
    if not isinstance(given, dict):
        raise invalid("text.format", 'an object such as {"type": "json_schema", "name": ..., "schema": {...}}.')
    structured = json_format(given.get("type"), given.get("schema"), "text.format", "text.format.schema")
    choice = body.tool_choice if isinstance(body.tool_choice, str) or body.tool_choice is None else "required"
    named = body.tool_choice.get("name") if isinstance(body.tool_choice, dict) else None
    functions = [
        {"type": "function", "function": tool.model_dump(exclude_none=True)}
        for tool in body.tools or []
        if isinstance(tool, FunctionTool)
    ]  # other kinds are left out
    tools = chosen_tools(functions, choice)
    return Ask(
        model=body.model,
        messages=template_messages(body),
        tools=tools,
        format=answer_format(structured, forced_call(tools, choice, named)),
        max_tokens=body.max_output_tokens,
        stream=bool(body.stream),
        sampling=Sampling(temperature=body.temperature, top_p=body.top_p),
    )


async def events(answer: Answer) -> AsyncIterator[str]:
    for line in answer.start():
        yield line
    async for piece in answer.run.stream():
        for line in [openai.PING] if piece is None else answer.feed(piece):
            yield line


def routes(core: Core) -> list[Route]:
    async def create(request: Request) -> Response:
        body = parse(ResponsesRequest, await read_json(request, core.spec.max_body_bytes))
        answer = Answer(body, await core.start(ask(body), held(request)))
        if body.stream:
            return event_stream(events(answer))
        pieces = await answer.run.collect(disconnected(request))
        if pieces is None:
            return Response(status_code=499)  # nobody reads it
        for piece in pieces:
            answer.feed(piece)
        return JSONResponse(answer.result)

    return [
        Route(path, create, methods=["POST"])
        for path in ("/v1/responses", "/v1/responses/", "/responses", "/responses/")
    ]
