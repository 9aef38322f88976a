"""OpenAI's Responses API (POST /v1/responses, which Codex speaks) over the same checks and engine as the chat
endpoint in app.py: `instructions` and `input` items become chat-template messages (function_call items the
assistant's tool calls, function_call_output items tool messages), the answer becomes output items (a message
with output_text, and a function_call item per tool call read by app.py's ToolCalls). Nothing is stored: each
request carries its whole conversation. Errors keep OpenAI's shape."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Discriminator, Field, Tag
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .app import ApiError, Options, Server, ToolCalls, arguments_object, parse, refuse
from .engine import Engine, Job


# --- request bodies ---


class Part(BaseModel):
    type: Literal["input_text", "output_text"]
    text: str


class Said(BaseModel):
    role: Literal["user", "assistant", "system", "developer"]
    content: list[Part] | str  # a list first: its errors are the ones a bad list gets


class Called(BaseModel):
    call_id: str
    name: str
    arguments: str


class Returned(BaseModel):
    call_id: str
    output: list[Part] | str


class Thought(BaseModel):  # a reasoning item of an earlier turn: not shown to the model again
    pass


def item_type(value: Any) -> str | None:
    """A message item may leave its type out."""
    return value.get("type", "message") if isinstance(value, dict) else None


Item = Annotated[Union[Annotated[Said, Tag("message")], Annotated[Called, Tag("function_call")],
                       Annotated[Returned, Tag("function_call_output")], Annotated[Thought, Tag("reasoning")]],
                 Discriminator(item_type)]


class FunctionTool(BaseModel):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class OtherTool(BaseModel):  # web_search, local_shell, custom, ...: this server has none, the model never sees them
    type: str


def tool_type(value: Any) -> str:
    return "function" if isinstance(value, dict) and value.get("type") == "function" else "other"


Tool = Annotated[Union[Annotated[FunctionTool, Tag("function")], Annotated[OtherTool, Tag("other")]],
                 Discriminator(tool_type)]


class ResponsesRequest(BaseModel):
    model: str | None = None
    instructions: str | None = None
    input: list[Item] | str = Field(min_length=1)
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    stream: bool | None = None
    previous_response_id: str | None = None
    text: dict[str, Any] | None = None
    # read and ignored (Codex sends them)
    store: bool | None = None
    include: list[str] | None = None
    reasoning: dict[str, Any] | None = None
    prompt_cache_key: str | None = None
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = None


def text_of(content: str | list[Part]) -> str:
    return content if isinstance(content, str) else "".join(part.text for part in content)


def template_messages(body: ResponsesRequest) -> list[dict]:
    """The conversation as chat templates take it (app.py's template_message). Adjacent system (instructions,
    developer) or user messages become one, since many templates want roles to alternate."""
    out: list[dict] = []

    def add(role: str, content: str) -> None:
        if out and out[-1]["role"] == role in ("system", "user") and "tool_calls" not in out[-1]:
            out[-1]["content"] += "\n\n" + content
        else:
            out.append({"role": role, "content": content})

    if body.instructions:
        add("system", body.instructions)
    for item in [Said(role="user", content=body.input)] if isinstance(body.input, str) else body.input:
        if isinstance(item, Said):
            add("system" if item.role == "developer" else item.role, text_of(item.content))
        elif isinstance(item, Called):
            try:
                arguments = arguments_object(item.arguments)
            except ApiError:
                raise ApiError(400, "input: a function_call's arguments must be a JSON object.", param="input",
                               code="invalid_value") from None
            if not out or out[-1]["role"] != "assistant":
                out.append({"role": "assistant", "content": ""})
            out[-1].setdefault("tool_calls", []).append(
                {"id": item.call_id, "type": "function", "function": {"name": item.name, "arguments": arguments}})
        elif isinstance(item, Returned):
            out.append({"role": "tool", "tool_call_id": item.call_id, "content": text_of(item.output)})
    return out


class Answer:
    """One response as the model's text arrives: its output items (text goes into an open message item; each
    tool call closes it and is an item of its own; whitespace at the text's end waits, and a call drops it), and
    the stream's events, numbered in order."""

    def __init__(self, body: ResponsesRequest, server: Server, prompt_tokens: int, calls: ToolCalls | None,
                 tools: list[dict]):
        self.body, self.prompt_tokens, self.calls, self.tools = body, prompt_tokens, calls, tools
        self.model = body.model or server.served.alias
        self.temperature = server.served.temperature if body.temperature is None else body.temperature
        self.top_p = server.served.top_p if body.top_p is None else body.top_p
        self.ident, self.created = f"resp_{uuid.uuid4().hex}", int(time.time())
        self.items: list[dict] = []
        self.open: dict | None = None  # the message item text goes into
        self.held, self.sequence, self.result = "", 0, {}

    def event(self, kind: str, /, **data) -> str:
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data, 'sequence_number': self.sequence - 1})}\n\n"

    def response(self, status: str, usage: dict | None) -> dict:
        return {"id": self.ident, "object": "response", "created_at": self.created, "status": status, "error": None,
                "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
                "instructions": self.body.instructions, "max_output_tokens": self.body.max_output_tokens,
                "model": self.model, "output": self.items,
                "parallel_tool_calls": self.body.parallel_tool_calls is not False,
                "previous_response_id": None, "reasoning": {"effort": None, "summary": None}, "store": False,
                "temperature": self.temperature, "text": {"format": {"type": "text"}},
                "tool_choice": self.body.tool_choice or "auto", "tools": self.tools, "top_p": self.top_p,
                "truncation": "disabled", "usage": usage, "user": None, "metadata": self.body.metadata or {}}

    def start(self) -> list[str]:
        now = self.response("in_progress", None)
        return [self.event("response.created", response=now), self.event("response.in_progress", response=now)]

    def feed(self, what: str, value: Any) -> list[str]:
        """The events for one of the engine's events ("text", or "done" with its counts)."""
        if self.calls:
            text, calls = self.calls.feed(value) if what == "text" else self.calls.finish()
        else:
            text, calls = (value, []) if what == "text" else ("", [])
        text = self.held + text
        out, self.held = self.write(text.rstrip()), text[len(text.rstrip()):]
        for call in calls:
            out += self.close("completed")
            self.held = ""
            item = {"type": "function_call", "id": f"fc_{uuid.uuid4().hex}", "call_id": call["id"],
                    "name": call["function"]["name"], "arguments": call["function"]["arguments"], "status": "completed"}
            index, where = len(self.items), {"item_id": item["id"], "output_index": len(self.items)}
            self.items.append(item)
            out += [self.event("response.output_item.added", output_index=index,
                               item={**item, "arguments": "", "status": "in_progress"}),
                    self.event("response.function_call_arguments.delta", **where, delta=item["arguments"]),
                    self.event("response.function_call_arguments.done", **where, name=item["name"],
                               arguments=item["arguments"]),
                    self.event("response.output_item.done", output_index=index, item=item)]
        return out + (self.end(value) if what == "done" else [])

    def write(self, text: str) -> list[str]:
        if not text:
            return []
        out = self.begin() if self.open is None else []
        self.open["content"][0]["text"] += text
        return out + [self.event("response.output_text.delta", item_id=self.open["id"],
                                 output_index=len(self.items) - 1, content_index=0, delta=text, logprobs=[])]

    def begin(self) -> list[str]:
        item = {"type": "message", "id": f"msg_{uuid.uuid4().hex}", "status": "in_progress", "role": "assistant",
                "content": []}
        self.items.append(item)
        self.open, part = item, {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        out = [self.event("response.output_item.added", output_index=len(self.items) - 1, item=item),
               self.event("response.content_part.added", item_id=item["id"], output_index=len(self.items) - 1,
                          content_index=0, part=part)]
        item["content"].append(part)
        return out

    def close(self, status: str) -> list[str]:
        if self.open is None:
            return []
        item, self.open = self.open, None
        item["status"], part = status, item["content"][0]
        where = {"item_id": item["id"], "output_index": self.items.index(item), "content_index": 0}
        return [self.event("response.output_text.done", **where, text=part["text"], logprobs=[]),
                self.event("response.content_part.done", **where, part=part),
                self.event("response.output_item.done", output_index=where["output_index"], item=item)]

    def end(self, done: dict) -> list[str]:
        """The answer's end: the message closed (an empty one when there is nothing else), and the response."""
        status = "incomplete" if done["finish_reason"] == "length" else "completed"
        out = self.write(self.held) if self.open or not self.items else []  # not after a call
        out += (self.begin() if not self.items else []) + self.close(status)
        self.result = self.response(status, {
            "input_tokens": self.prompt_tokens, "input_tokens_details": {"cached_tokens": done["cached_tokens"]},
            "output_tokens": done["completion_tokens"], "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.prompt_tokens + done["completion_tokens"]})
        return out + [self.event(f"response.{status}", response=self.result)]


class Responses:
    """The endpoint on a Server: POST /v1/responses."""

    def __init__(self, server: Server):
        self.server = server

    def tools(self, body: ResponsesRequest) -> list[dict]:
        """The function tools as the chat template takes them; other kinds are left out."""
        functions = [tool for tool in body.tools or [] if isinstance(tool, FunctionTool)]
        if not functions or body.tool_choice == "none":
            return []
        if body.tool_choice not in (None, "auto"):
            raise refuse("tool_choice", 'only "auto" and "none": this server cannot force a tool call')
        self.server.check_tool_calling()
        return [{"type": "function", "function": tool.model_dump(exclude_none=True)} for tool in functions]

    async def create(self, request: Request) -> Response:
        server = self.server
        body = parse(ResponsesRequest, await server.read_json(request))
        await server.use_model(request, body.model and server.mapped(body.model), None)
        if body.previous_response_id is not None:
            raise refuse("previous_response_id", "this server stores no responses: send the whole conversation")
        if ((body.text or {}).get("format") or {}).get("type") not in (None, "text"):
            raise refuse("text.format", "only text responses are supported")
        tools = self.tools(body)
        prompt, max_tokens = await server.chat_prompt(template_messages(body), tools or None, body.max_output_tokens)
        jobs, events = server.jobs(Options(temperature=body.temperature, top_p=body.top_p), [prompt], max_tokens,
                                   continues=False, ends=[])
        server.submit(jobs)
        engine = server.engine  # the stream's end may run in another context
        answer = Answer(body, server, len(prompt), ToolCalls(engine.tokenizer, tools) if tools else None,
                        [{"type": "function", **tool["function"]} for tool in tools])
        if body.stream:
            return StreamingResponse(self.stream(answer, engine, jobs, events), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        texts = {0: ""}
        done = await server.gather(request, jobs, events, texts)
        if done is None:
            return Response(status_code=499)  # nobody reads it
        answer.feed("text", texts[0])
        answer.feed("done", done[0])
        return JSONResponse(answer.result)

    async def stream(self, answer: Answer, engine: Engine, jobs: list[Job], events: asyncio.Queue):
        try:
            for line in answer.start():
                yield line
            what = ""
            while what != "done":
                _, what, value = await events.get()
                for line in answer.feed(what, value):
                    yield line
        finally:
            engine.cancel(jobs)  # a client gone mid-stream: its job leaves the batch


def routes(server: Server) -> list[Route]:
    create = Responses(server).create
    return [Route(path, create, methods=["POST"]) for path in
            ("/v1/responses", "/v1/responses/", "/responses", "/responses/")]
