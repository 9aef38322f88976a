"""The HTTP side: OpenAI's endpoints on Starlette. Every request is checked before any work (Host, content
type, size, JSON, types, model, token ids, context), and every error has OpenAI's shape
{"error": {"message", "type", "param", "code"}}. Anthropic's Messages API (anthropic.py) and OpenAI's Responses API
(responses.py) build on it."""

from __future__ import annotations

import asyncio
import contextvars
import fnmatch
import json
import time
import uuid
from typing import Any, Callable, Iterable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ...protocol import ServedModel, ServeSpec, duration, host_name, is_loopback
from .engine import Busy, Engine, Job, split_at_stop

MAX_CHOICES = 8  # n times the number of prompts
# The loaded model a request named (a pool.Loaded), set by Server.use_model for the rest of the request.
SERVING: contextvars.ContextVar = contextvars.ContextVar("serving")
HELD = "mlxtasks.held"  # the scope's list of what its request holds, released when the response is sent


class ApiError(Exception):
    KINDS = {400: "invalid_request_error", 403: "permission_error", 404: "not_found_error", 405: "invalid_request_error",
             413: "invalid_request_error", 415: "invalid_request_error", 422: "invalid_request_error",
             429: "rate_limit_error", 500: "server_error", 503: "server_error"}

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers

    def response(self) -> JSONResponse:
        body = {"message": self.message, "type": self.KINDS.get(self.status, "invalid_request_error"),
                "param": self.param, "code": self.code}
        return JSONResponse({"error": body}, status_code=self.status, headers=self.headers)


# --- request bodies: None (or JSON null) always means "the default" ---


class StreamOptions(BaseModel):
    include_usage: bool | None = None


class Options(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1)
    n: int | None = Field(None, ge=1, le=MAX_CHOICES)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    repetition_penalty: float | None = Field(None, gt=0, le=10)
    logit_bias: dict[int, float] | None = None
    seed: int | None = None
    user: str | None = None
    keep_alive: float | str | None = None  # seconds or "5m" the model stays loaded after this; negative: forever


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


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
    content: str | list[TextPart] | None = None
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
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None


class CompletionRequest(Options):
    prompt: Union[str, list[str], list[int], list[list[int]]] = ""
    suffix: str | None = None
    echo: bool | None = None
    logprobs: int | None = None
    best_of: int | None = Field(None, ge=1, le=1)


def parse(kind: type[BaseModel], data: Any) -> Any:
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"] if not type_tag(str(part)))
        raise ApiError(400, f"{where or 'body'}: {first['msg']}", param=where or None, code="invalid_value") from None


def type_tag(part: str) -> bool:
    """A part of pydantic's error location that names one of a union's types (str, list[int], ...), not a field."""
    return part in ("str", "int", "float", "bool") or "[" in part or part.startswith("function-")


def refuse(param: str, why: str) -> ApiError:
    return ApiError(400, f"{param}: {why}", param=param, code="unsupported_parameter")


def cannot(param: str, why: str) -> ApiError:
    """A well-formed request that this server supports and the served model cannot do."""
    return ApiError(422, f"{param}: {why}", param=param, code="unsupported_by_model")


def template_message(message: ChatMessage) -> dict:
    """A message as chat templates take it: text content ("" for none), and tool calls' arguments as objects."""
    content = message.content
    out = {"role": "system" if message.role == "developer" else message.role,
           "content": content if isinstance(content, str) else "".join(part.text for part in content or [])}
    if message.name is not None:
        out["name"] = message.name
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.tool_calls:
        out["tool_calls"] = [{"id": call.id, "type": "function", "function": {
            "name": call.function.name, "arguments": arguments_object(call.function.arguments)}}
            for call in message.tool_calls]
    return out


def arguments_object(arguments: str | dict) -> dict:
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ApiError(400, "messages: a tool call's function.arguments must be a JSON object.",
                       param="messages", code="invalid_value")
    return parsed


class ToolCalls:
    """One choice's text split into content and tool calls at the model's markers (mlx_lm's tool_call_start
    and tool_call_end), each call read by mlx_lm's parser for the model. A call that does not parse (say, one
    cut off by max_tokens) stays in the content, markers and all."""

    def __init__(self, tokenizer, tools: list[dict]):
        self.start, self.end, self.parser, self.tools = (tokenizer.tool_call_start, tokenizer.tool_call_end,
                                                         tokenizer.tool_parser, tools)
        self.held, self.inside, self.count = "", False, 0

    def feed(self, text: str) -> tuple[str, list[dict]]:
        """(content to send now, the calls this text completed)."""
        self.held += text
        content, calls = "", []
        while True:
            if not self.inside:
                at = self.held.find(self.start)
                if at < 0:
                    now, self.held, _ = split_at_stop(self.held, [self.start])  # it may end in a marker's start
                    return content + now, calls
                content, self.held, self.inside = content + self.held[:at], self.held[at + len(self.start):], True
            at = self.held.find(self.end) if self.end else -1  # no end marker: a call runs to the answer's end
            if at < 0:
                return content, calls
            unparsed, found = self.parse(self.held[:at])
            content, calls = content + (unparsed + self.end if unparsed else ""), calls + found
            self.held, self.inside = self.held[at + len(self.end):], False

    def split(self, text: str) -> tuple[str, list[dict]]:
        """A whole answer's (content, calls)."""
        (content, calls), (rest, more) = self.feed(text), self.finish()
        return content + rest, calls + more

    def finish(self) -> tuple[str, list[dict]]:
        """At the answer's end: the text held back, and a call still open."""
        held, inside, self.held, self.inside = self.held, self.inside, "", False
        return self.parse(held) if inside else (held, [])

    def parse(self, text: str) -> tuple[str, list[dict]]:
        """("", the calls in one call's text) or, if it does not parse, (the text with its start marker, [])."""
        try:
            parsed = self.parser(text, self.tools)
            calls = [{"id": one.get("id") or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                      "function": {"name": one["name"], "arguments": one["arguments"] if isinstance(
                          one["arguments"], str) else json.dumps(one["arguments"], ensure_ascii=False)}}
                     for one in (parsed if isinstance(parsed, list) else [parsed])]
        except Exception:  # the model wrote something its parser cannot read: it stays text
            return self.start + text, []
        self.count += len(calls)
        return "", calls


# --- the app ---


class Server:
    def __init__(self, spec: ServeSpec, pool):
        self.spec, self.pool = spec, pool  # pool: a pool.Pool
        self.created = int(time.time())

    def mapped(self, name: str) -> str:
        """A name no installed model has goes through the spec's model map (glob patterns, first match): the
        other protocols' clients send names of their own (claude-*, gpt-*)."""
        if name in self.pool.names:
            return name
        return next((to for pattern, to in self.spec.model_map.items() if fnmatch.fnmatchcase(name, pattern)), name)

    @property
    def engine(self) -> Engine:
        """The engine of the model this request named (see use_model)."""
        return SERVING.get().engine

    @property
    def served(self) -> ServedModel:
        return SERVING.get().served

    async def use_model(self, request: Request, name: str | None, keep_alive: float | str | None) -> None:
        """Hold the named model for this request, loaded (or waited for, while another request loads it)."""
        try:
            seconds = None if keep_alive is None else duration(keep_alive)
        except ValueError:
            raise ApiError(400, 'keep_alive: seconds, or a duration such as "5m" or "1h" (negative: forever).',
                           param="keep_alive", code="invalid_value") from None
        held = await run_in_threadpool(self.pool.acquire, name, seconds)
        request.scope[HELD].append(held)
        SERVING.set(held)

    async def read_json(self, request: Request) -> Any:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise ApiError(415, f"Send the body as JSON with the header Content-Type: application/json "
                                f"(got {kind or 'none'!r}).", code="unsupported_media_type")
        limit = self.spec.max_body_bytes
        too_big = ApiError(413, f"The body is larger than this server's limit of {limit} bytes.",
                           code="body_too_large")
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
            raise ApiError(400, "The body is not valid JSON.", code="invalid_json") from None
        if not isinstance(data, dict):
            raise ApiError(400, "The body must be a JSON object.", code="invalid_json")
        return data

    def check_ids(self, ids: list[int], param: str) -> None:
        bad = [i for i in ids if not 0 <= i < self.engine.vocab_size]
        if bad:
            raise ApiError(400, f"{param}: token id {bad[0]} is outside this model's vocabulary (0 to "
                                f"{self.engine.vocab_size - 1}).", param=param, code="invalid_token_id")

    def check_context(self, prompt_tokens: int, max_tokens: int, at_least: bool = False) -> None:
        context = self.engine.context
        if context and prompt_tokens + max_tokens > context:
            raise ApiError(400, f"This model's context is {context} tokens, and the prompt has "
                                f"{'at least ' if at_least else ''}{prompt_tokens} tokens plus max_tokens "
                                f"{max_tokens}: shorten the prompt or lower max_tokens.",
                           param="messages", code="context_length_exceeded")

    def budget(self, asked: int | None, prompt_tokens: int) -> int:
        """max_tokens: as asked, if prompt and answer fit the context; by default as much as fits, up to the
        server's default."""
        self.check_context(prompt_tokens, asked or 1)
        if asked:
            return asked
        return min(self.served.max_tokens, self.engine.context - prompt_tokens) if self.engine.context \
            else self.served.max_tokens

    def precheck(self, characters: int, max_tokens: int) -> None:
        """Before tokenizing: a text longer than the context could hold is refused at once (no token is
        longer than the longest one in the vocabulary)."""
        self.check_context(characters // self.engine.longest_token, max_tokens, at_least=True)

    def jobs(self, options: Options, prompts: list[list[int]], max_tokens: int, continues: bool,
             ends: list[str]) -> tuple[list[Job], asyncio.Queue]:
        """ends: stop strings of the server's own, past the request's."""
        engine = self.engine
        if options.logit_bias:
            self.check_ids(list(options.logit_bias), "logit_bias")
            if any(not -100 <= v <= 100 for v in options.logit_bias.values()):
                raise refuse("logit_bias", "each bias must be from -100 to 100")
        stops = [options.stop] if isinstance(options.stop, str) else list(options.stop or [])
        if len(stops) > 4 or not all(stops):
            raise ApiError(400, "stop: up to 4 strings, none of them empty.", param="stop", code="invalid_value")
        stops += ends
        n = options.n or 1
        if n * len(prompts) > MAX_CHOICES:
            raise ApiError(400, f"n times the number of prompts is {n * len(prompts)}; at most {MAX_CHOICES}.",
                           param="n", code="invalid_value")
        temperature = self.served.temperature if options.temperature is None else options.temperature
        top_p = self.served.top_p if options.top_p is None else options.top_p
        events: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        return [Job(index=i * n + k, prompt=prompt, max_tokens=max_tokens,
                    sampler=engine.sampler(temperature, top_p, options.top_k or 0, options.min_p or 0.0,
                                           None if options.seed is None else (options.seed, i * n + k)),
                    processors=engine.processors({int(k): v for k, v in (options.logit_bias or {}).items()},
                                                 options.presence_penalty, options.frequency_penalty,
                                                 options.repetition_penalty),
                    stops=stops, events=events, loop=loop, continues=continues)
                for i, prompt in enumerate(prompts) for k in range(n)], events

    def submit(self, jobs: list[Job]) -> None:
        try:
            self.engine.submit(jobs)
        except Busy:
            raise ApiError(429, f"The server is busy ({self.spec.queue_limit} requests at once); try again shortly.",
                           code="queue_full", headers={"Retry-After": "1"}) from None

    # --- endpoints ---

    async def health(self, request: Request) -> Response:
        if any(held.engine.fault is not None for held in list(self.pool.loaded.values())):
            raise ApiError(503, "The engine has failed; the server is ending.", code="engine_failed")
        return JSONResponse({"status": "ok", "requests": self.pool.requests})

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": alias, "object": "model", "created": self.created, "owned_by": "mlxtasks"}
            for alias in self.pool.entries]})

    async def ps(self, request: Request) -> Response:
        return JSONResponse({"budget": self.spec.budget, "models": self.pool.table(), "waiting": dict(self.pool.waiting)})

    async def unload(self, request: Request) -> Response:
        name = (await self.read_json(request)).get("model")
        if not isinstance(name, str):
            raise ApiError(400, "model: the name of a loaded model.", param="model", code="invalid_value")
        now = await run_in_threadpool(self.pool.unload, name)
        return JSONResponse({"model": self.pool.find(name).alias, "unloaded": now})

    async def chat(self, request: Request) -> Response:
        body = parse(ChatRequest, await self.read_json(request))
        await self.use_model(request, body.model, body.keep_alive)
        tools = None
        if body.tools and body.tool_choice != "none":
            if body.tool_choice not in (None, "auto"):
                raise refuse("tool_choice", 'only "auto" and "none": this server cannot force a tool call')
            self.check_tool_calling()
            tools = [tool.model_dump(exclude_none=True) for tool in body.tools]
        if body.logprobs:
            raise refuse("logprobs", "log probabilities are not supported by this server")
        if body.response_format and body.response_format.get("type") not in (None, "text"):
            raise refuse("response_format", "only text responses are supported")
        asked = body.max_completion_tokens or body.max_tokens
        prompt, max_tokens = await self.chat_prompt([template_message(m) for m in body.messages], tools, asked)
        jobs, events = self.jobs(body, [prompt], max_tokens, continues=False, ends=[])
        return await self.answer(request, "chat", body, jobs, events, len(prompt), echoes=None, tools=tools)

    def check_tool_calling(self) -> None:
        if not self.engine.tokenizer.has_tool_calling:
            raise cannot("tools", "this model's chat template has no tool calling that mlx-lm can read")

    async def chat_prompt(self, messages: list[dict], tools: list[dict] | None,
                          asked: int | None) -> tuple[list[int], int]:
        """Chat-template messages as the prompt's tokens, and the max_tokens it leaves (see budget)."""
        self.precheck(sum(len(m["content"]) for m in messages), asked or 1)
        try:
            prompt = await run_in_threadpool(self.engine.tokenizer.apply_chat_template, messages, tools=tools,
                                             add_generation_prompt=True)
        except Exception as exc:  # the model's template refused these messages (say, roles out of order)
            raise ApiError(400, f"messages: the model's chat template refused them: {exc}", param="messages",
                           code="invalid_messages") from None
        return prompt, self.budget(asked, len(prompt))

    async def completions(self, request: Request) -> Response:
        body = parse(CompletionRequest, await self.read_json(request))
        await self.use_model(request, body.model, body.keep_alive)
        if body.suffix and self.engine.fim is None:
            raise cannot("suffix", "this model has no fill-in-the-middle tokens (such as <|fim_prefix|>)")
        if body.logprobs is not None:
            raise refuse("logprobs", "log probabilities are not supported by this server")
        prompt = body.prompt
        if prompt == []:
            raise ApiError(400, "prompt: an empty list.", param="prompt", code="invalid_value")
        texts = prompt if isinstance(prompt, list) and isinstance(prompt[0], str) else \
            [prompt] if isinstance(prompt, str) else None
        if body.suffix and texts is None:
            raise refuse("suffix", "fill-in-the-middle needs a text prompt, not token ids")
        if texts is not None:
            self.precheck(max(map(len, texts)) + len(body.suffix or ""), body.max_tokens or 1)
            prompts = await run_in_threadpool(lambda: [self.fim_prompt(t, body.suffix) if body.suffix
                                                       else self.engine.tokenizer.encode(t) for t in texts])
        else:
            prompts = [prompt] if isinstance(prompt[0], int) else prompt
            for ids in prompts:
                self.check_ids(ids, "prompt")
        start = [self.engine.tokenizer.bos_token_id if self.engine.tokenizer.bos_token_id is not None
                 else self.engine.eos[0]]
        prompts = [ids or start for ids in prompts]  # an empty prompt: generation starts at a document's start
        max_tokens = self.budget(body.max_tokens, max(map(len, prompts)))
        echoes = None
        if body.echo:
            decode = self.engine.tokenizer.decode
            echoes = texts if texts is not None else [decode(ids) for ids in prompts]
        ends = [self.engine.fim[3]] if body.suffix and self.engine.fim[3] else []
        jobs, events = self.jobs(body, prompts, max_tokens, continues=True, ends=ends)
        return await self.answer(request, "text", body, jobs, events, sum(map(len, prompts)), echoes)

    def fim_prompt(self, prefix: str, suffix: str) -> list[int]:
        """The model's fill-in-the-middle prompt: prefix, suffix, then the middle it writes (after a start of
        text, for tokenizers that begin with one)."""
        before, after, middle, _ = self.engine.fim
        encode = self.engine.tokenizer.encode
        return encode("") + [before] + encode(prefix, add_special_tokens=False) + [after] + \
            encode(suffix, add_special_tokens=False) + [middle]

    async def answer(self, request: Request, kind: str, body: Options, jobs: list[Job], events: asyncio.Queue,
                     prompt_tokens: int, echoes: list[str] | None, tools: list[dict] | None = None) -> Response:
        n = body.n or 1
        name, engine = body.model or self.served.alias, self.engine  # the stream's end may run in another context
        ident = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"
        calls = {job.index: ToolCalls(self.engine.tokenizer, tools) for job in jobs} if tools else {}
        self.submit(jobs)

        def finish_reason(index: int, reason: str) -> str:
            return "tool_calls" if calls and calls[index].count and reason == "stop" else reason

        def usage(done: dict[int, dict]) -> dict:
            completion = sum(d["completion_tokens"] for d in done.values())
            cached = {}  # by prompt: its choices share it
            for index, d in done.items():
                cached[index // n] = max(cached.get(index // n, 0), d["cached_tokens"])
            return {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                    "total_tokens": prompt_tokens + completion,
                    "prompt_tokens_details": {"cached_tokens": sum(cached.values())}}

        def choice(index: int, text: str | None, finish: str | None, first: bool = False) -> dict:
            if kind == "chat":
                delta = {"role": "assistant", "content": text or ""} if first else \
                    ({} if text is None else {"content": text})
                return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}

        def head() -> dict:
            return {"id": ident, "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
                    "created": int(time.time()), "model": name}

        if body.stream:
            async def stream():
                done: dict[int, dict] = {}
                try:
                    for job in jobs:
                        echo = echoes[job.index // n] if echoes else ""
                        if kind == "chat" or echo:
                            yield sse({**head(), "choices": [choice(job.index, echo, None, first=True)]})
                    while len(done) < len(jobs):
                        index, what, value = await events.get()
                        finish = None
                        if what == "text":
                            text, found = calls[index].feed(value) if calls else (value, [])
                        else:
                            done[index] = value
                            text, found = calls[index].finish() if calls else ("", [])
                            finish = finish_reason(index, value["finish_reason"])
                        if text:
                            yield sse({**head(), "choices": [choice(index, text, None)]})
                        if found:
                            first = calls[index].count - len(found)
                            delta = {"tool_calls": [{"index": first + k, **call} for k, call in enumerate(found)]}
                            yield sse({**head(), "choices": [{"index": index, "delta": delta, "logprobs": None,
                                                              "finish_reason": None}]})
                        if finish:
                            yield sse({**head(), "choices": [choice(index, None, finish)]})
                    if body.stream_options and body.stream_options.include_usage:
                        yield sse({**head(), "choices": [], "usage": usage(done)})
                    yield "data: [DONE]\n\n"
                finally:
                    engine.cancel(jobs)  # a client gone mid-stream: its jobs leave the batch

            return StreamingResponse(stream(), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

        texts = {job.index: (echoes[job.index // n] if echoes else "") for job in jobs}
        done = await self.gather(request, jobs, events, texts)
        if done is None:
            return Response(status_code=499)  # nobody reads it
        if kind == "chat":
            choices = []
            for i in sorted(texts):
                message = {"role": "assistant", "content": texts[i]}
                if calls:
                    text, found = calls[i].split(texts[i])
                    message["content"] = None if found and not text.strip() else text
                    if found:
                        message["tool_calls"] = found
                choices.append({"index": i, "message": message, "logprobs": None,
                                "finish_reason": finish_reason(i, done[i]["finish_reason"])})
        else:
            choices = [{"index": i, "text": texts[i], "logprobs": None, "finish_reason": done[i]["finish_reason"]}
                       for i in sorted(texts)]
        return JSONResponse({**head(), "object": "chat.completion" if kind == "chat" else "text_completion",
                             "choices": choices, "usage": usage(done)})

    async def gather(self, request: Request, jobs: list[Job], events: asyncio.Queue,
                     texts: dict[int, str]) -> dict[int, dict] | None:
        """Wait for every job, adding their text to texts: each one's "done" value by index, or None when the
        client has gone. Either way the jobs leave the engine."""
        done: dict[int, dict] = {}
        gone = asyncio.ensure_future(disconnected(request))
        try:
            while len(done) < len(jobs):
                got = asyncio.ensure_future(events.get())
                await asyncio.wait({got, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not got.done():
                    got.cancel()
                    return None
                index, what, value = got.result()
                if what == "text":
                    texts[index] += value
                else:
                    done[index] = value
        finally:
            gone.cancel()
            self.engine.cancel(jobs)
        return done


async def disconnected(request: Request) -> None:
    """Returns once the client has gone (the body was read already, so the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def sse(data: dict) -> str:
    return f"data: {json.dumps(data)}\n\n"


def build(spec: ServeSpec, pool, log, protocols: Iterable[Callable[[Server], list[Route]]] = ()) -> Any:
    """The app: the OpenAI endpoints of this module, and the routes of the other protocols built on it
    (anthropic.py, responses.py), which __main__ passes."""
    server = Server(spec, pool)
    routes = []
    for path, endpoint, methods in [("/v1/models", server.models, ["GET"]), ("/v1/chat/completions", server.chat, ["POST"]),
                                    ("/v1/completions", server.completions, ["POST"])]:
        for variant in {path, path + "/", path.removeprefix("/v1"), path.removeprefix("/v1") + "/"}:
            routes.append(Route(variant, endpoint, methods=methods))
    routes += [Route("/health", server.health, methods=["GET"]), Route("/health/", server.health, methods=["GET"])]
    routes += model_routes(server) + [route for protocol in protocols for route in protocol(server)]

    async def api_error(request: Request, exc: ApiError) -> Response:
        return exc.response()

    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = "No such path." if exc.status_code == 404 else exc.detail
        return ApiError(exc.status_code, message, code="not_found" if exc.status_code == 404 else None).response()

    async def crash(request: Request, exc: Exception) -> Response:
        log.exception("request failed")
        return ApiError(500, f"The server failed on this request: {type(exc).__name__}.", code="internal_error").response()

    app = Starlette(routes=routes, exception_handlers={ApiError: api_error, HTTPException: http_error, Exception: crash})
    app.router.redirect_slashes = False
    if spec.allowed_origins:
        app = CORSMiddleware(app, allow_origins=spec.allowed_origins, allow_methods=["GET", "POST"],
                             allow_headers=["*"])
    return Guard(releasing(app, pool), is_loopback(spec.host), log)


def model_routes(server: Server) -> list[Route]:
    """serve.ps's and serve.unload's endpoints."""
    return [Route("/v1/mlxtasks/ps", server.ps, methods=["GET"]),
            Route("/v1/mlxtasks/unload", server.unload, methods=["POST"])]


def releasing(app, pool):
    """The models a request holds (see Server.use_model) are released once its response is sent or it fails."""
    async def held_app(scope, receive, send):
        scope[HELD] = held = []
        try:
            await app(scope, receive, send)
        finally:
            for one in held:
                pool.release(one)
    return held_app


class Guard:
    """Outermost: the Host check while bound to loopback (a DNS-rebinding page is refused), and one access
    line per request (method, path, status, sizes, time), never a body."""

    def __init__(self, app, loopback: bool, log):
        self.app, self.loopback, self.log = app, loopback, log

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
                await ApiError(403, "This server answers only requests addressed to localhost.",
                               code="host_not_allowed").response()(scope, receive, counted_send)
            else:
                await self.app(scope, counted_receive, counted_send)
        finally:
            self.log.info("%s %s %s in=%dB out=%dB %.3fs", scope["method"], scope["path"], seen["status"] or "-",
                          seen["in"], seen["out"], time.monotonic() - started)
