"""Ollama's native API, for the tools that speak only it (Open WebUI, editor plugins, the `ollama` Python client):
GET and HEAD / ("Ollama is running"), /api/version, /api/tags, /api/show, /api/ps, and POST /api/chat and
/api/generate, whose bodies become an Ask (request.py) and whose answers are NDJSON lines (one JSON object a line,
streamed unless "stream": false), the last one carrying the counts and durations (nanoseconds); with "think",
a thinking model's thinking comes apart from its content (Thoughts). /api/pull answers
for an installed model and says how to pull one here otherwise; push, create, copy and delete say what to do
instead. Every error under /api/ has Ollama's shape {"error": "..."}.

Model names: as sent, else without a ":latest" tag, each first as an installed model's name and then through
the model map (core.mapped), so "qwen7b:latest" is qwen7b and "qwen2.5-coder:7b" is what mlx.serve_model_map
maps it to. /api/tags lists each installed model as ALIAS:latest, as Ollama names its models."""

from __future__ import annotations

import asyncio
import datetime
import functools
import hashlib
import json
import math
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ...protocol import ServedModel
from . import openai
from .calls import arguments_input, arguments_object
from .core import Core, Run, keep_alive
from .jobs import split_at_stop
from .problems import NOT_FOUND, UNSUPPORTED, Problem, cannot, invalid, refuse
from .request import Ask, Format, Sampling, chosen_tools, text_only
from .web import STATUS, disconnected, held, parse, read_json

PREFIXES = ("/api/",)
VERSION = "0.12.0"  # the Ollama release whose API this follows: clients compare it against what they need
LATEST = ":latest"
NOT_HERE = "not_here"  # a Problem's code for what mlxtasks does outside the server (pull, delete): 501
PULL = "mlxtasks models.pull"
MAX_STOPS = 32  # Ollama has no limit; editor plugins send a dozen for code completion
HEADER_LIMIT = 100 * 2**20  # the largest safetensors header read when counting a model's parameters
FOREVER = datetime.timedelta(days=365 * 292)  # where Ollama puts expires_at for a model kept loaded forever
DTYPES = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}
THINK_MARKERS = [("<think>", "</think>"), ("<longcat_think>", "</longcat_think>"), ("<|think:start|>", "<|think:end|>")]
Number = StrictFloat | StrictInt


def error(problem: Problem) -> Response:
    status = 501 if problem.code == NOT_HERE else STATUS[problem.kind]
    return JSONResponse({"error": problem.message}, status_code=status, headers=problem.headers)


def not_here(what: str, instead: str) -> Problem:
    return Problem(UNSUPPORTED, f"{what}: {instead}", code=NOT_HERE)


# --- names ---


def resolve(core: Core, name: str) -> str:
    """The name a request's model goes by here (see the module's docstring)."""
    names = [name, name.removesuffix(LATEST)] if name.endswith(LATEST) and name != LATEST else [name]
    for one in names:
        if one in core.pool.names:
            return one
    for one in names:
        if core.mapped(one) != one:
            return core.mapped(one) or one
    return names[-1]


@contextmanager
def named(name: str) -> Iterator[None]:
    """A model that is not installed, said as Ollama says it ("not found"), with how to pull one here."""
    try:
        yield
    except Problem as problem:
        if problem.code != "model_not_found":
            raise
        raise Problem(
            NOT_FOUND,
            f'model "{name}" not found: it is not installed here (GET /api/tags lists the ones that are; '
            f"get one with {PULL} NAME, then restart the server)",
            param="model",
            code="model_not_found",
        ) from None


def listed(alias: str) -> str:
    return alias if ":" in alias else alias + LATEST


# --- what a model's folder says: size, date, digest, family, parameters, quantization, template ---


@functools.lru_cache(maxsize=256)
def folder_facts(folder: str) -> dict:
    """Facts about an installed model from its folder's files (a folder that cannot be read gives what it can)."""
    path = Path(folder)
    try:
        files = sorted(p for p in path.iterdir() if p.is_file())
        stats = [(p.name, p.stat()) for p in files]
    except OSError:
        files, stats = [], []
    config = read_json_file(path / "config.json")
    text: dict = config["text_config"] if isinstance(config.get("text_config"), dict) else config
    quant: dict = config["quantization"] if isinstance(config.get("quantization"), dict) else {}
    family = str(text.get("model_type") or config.get("model_type") or "unknown")
    count = parameter_count([p for p in files if p.suffix == ".safetensors"], quant)
    identity = json.dumps([config, [(name, st.st_size) for name, st in stats]], sort_keys=True, default=str)
    return {
        "size": sum(st.st_size for _, st in stats),
        "modified_at": stamp(max((st.st_mtime for _, st in stats), default=0.0)),
        "digest": hashlib.sha256(identity.encode()).hexdigest(),
        "details": {
            "parent_model": "",
            "format": "safetensors",
            "family": family,
            "families": [family],
            "parameter_size": human(count) if count else "unknown",
            "quantization_level": quantization(quant, config),
        },
        "parameter_count": count,
        "shape": {
            "embedding_length": text.get("hidden_size"),
            "block_count": text.get("num_hidden_layers"),
            "attention.head_count": text.get("num_attention_heads"),
            "attention.head_count_kv": text.get("num_key_value_heads"),
            "vocab_size": text.get("vocab_size"),
            "context_length": text.get("max_position_embeddings"),
        },
        "template": chat_template(path),
        "thinks": thinks(path),
    }


def read_json_file(path: Path) -> dict:
    try:
        found = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return {}
    return found if isinstance(found, dict) else {}


def parameter_count(weights: list[Path], quant: dict) -> int:
    """The parameters in safetensors files, from their headers. A quantized weight is packed (uint32) beside its
    scales, one per group of numbers: it holds as many numbers as its scales times the group size (whatever its
    bits: a model may keep its embeddings at 8 bits and the rest at 4), and its scales and biases count none."""
    tensors: dict[str, dict] = {}
    for file in weights:
        try:
            with open(file, "rb") as handle:
                size = int.from_bytes(handle.read(8), "little")
                if not 0 < size <= HEADER_LIMIT:
                    continue
                header = json.loads(handle.read(size))
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(header, dict):
            tensors.update({k: v for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)})
    total = 0
    for name, tensor in tensors.items():
        stem = name.rsplit(".", 1)[0]
        scales = tensors.get(f"{stem}.scales")
        packed = scales is not None and tensors.get(f"{stem}.weight", {}).get("dtype") == "U32"
        if packed and not name.endswith(".weight"):
            continue  # a quantized weight's scales and biases
        own: dict = quant[stem] if isinstance(quant.get(stem), dict) else quant  # a layer's own quantization
        try:
            shape = [int(n) for n in (scales if packed and scales else tensor).get("shape", [])]
        except (TypeError, ValueError):
            continue
        if packed:
            shape.append(int(own.get("group_size") or quant.get("group_size") or 64))
        total += math.prod(shape)
    return total


def human(count: int) -> str:
    """A parameter count as Ollama writes it: 7.6B, 135M."""
    for size, unit in ((10**9, "B"), (10**6, "M"), (10**3, "K")):
        if count >= size:
            return f"{count / size:.1f}{unit}" if unit == "B" else f"{count / size:.0f}{unit}"
    return str(count)


def quantization(quant: dict, config: dict) -> str:
    """Q4 for 4-bit (MLX's affine quantization), the mode for another (MXFP4), else the weights' type (BF16)."""
    if quant.get("bits"):
        mode = str(quant.get("mode") or "affine")
        return f"Q{quant['bits']}" if mode == "affine" else mode.upper()
    return DTYPES.get(str(config.get("torch_dtype") or config.get("dtype")), "unknown")


def chat_template(folder: Path) -> str:
    """The model's chat template (Jinja, as mlx-lm runs it; Ollama's are Go templates)."""
    try:
        return (folder / "chat_template.jinja").read_text()
    except (OSError, UnicodeDecodeError):
        pass
    found = read_json_file(folder / "tokenizer_config.json").get("chat_template")
    if isinstance(found, list):  # named templates: the default one
        found = next((t.get("template") for t in found if isinstance(t, dict) and t.get("name") == "default"), "")
    return found if isinstance(found, str) else ""


def thinks(folder: Path) -> bool:
    """Whether the tokenizer has a pair of thinking markers (mlx-lm's common ones) among its added tokens."""
    added = read_json_file(folder / "tokenizer.json").get("added_tokens")
    tokens = {t.get("content") for t in added if isinstance(t, dict)} if isinstance(added, list) else set()
    return any(start in tokens and end in tokens for start, end in THINK_MARKERS)


def stamp(seconds: float) -> str:
    """An RFC 3339 time in UTC, as Ollama writes its times."""
    when = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


async def facts(served: ServedModel) -> dict:
    return await asyncio.to_thread(folder_facts, served.folder)


def entry(served: ServedModel, found: dict) -> dict:
    """A model as /api/tags and /api/ps list it."""
    name = listed(served.alias)
    return {"name": name, "model": name, **{k: found[k] for k in ("modified_at", "size", "digest", "details")}}


# --- request bodies ---


class Options(BaseModel):
    """Ollama's options that mean something here; the others (num_gpu, mirostat, ...) are ignored, as Ollama
    ignores those a model does not use."""

    model_config = ConfigDict(extra="ignore")
    temperature: Number | None = Field(None, ge=0)
    top_p: Number | None = Field(None, gt=0, le=1)
    top_k: StrictInt | None = Field(None, ge=0)
    min_p: Number | None = Field(None, ge=0, le=1)
    seed: StrictInt | None = None
    num_predict: StrictInt | None = None  # -1 (endless) and -2 (fill the context): the served model's default
    stop: str | list[str] | None = None
    repeat_penalty: Number | None = Field(None, gt=0, le=10)
    presence_penalty: Number | None = Field(None, ge=-2, le=2)
    frequency_penalty: Number | None = Field(None, ge=-2, le=2)
    num_ctx: StrictInt | None = Field(None, ge=1)  # the server's context is set at start: see docs/serve.md


class Body(BaseModel):
    """What /api/chat and /api/generate share."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1)
    stream: StrictBool | None = None  # Ollama streams unless told not to
    format: Literal["", "json"] | dict[str, Any] | None = None
    options: Options | None = None
    keep_alive: Number | str | None = None
    think: StrictBool | Literal["high", "medium", "low"] | None = None
    logprobs: StrictBool | None = None

    def ask(self, name: str, **rest: Any) -> Ask:
        if self.logprobs:
            raise refuse("logprobs", "log probabilities are not supported by this server")
        options = self.options or Options.model_validate({})
        return Ask(
            model=name,
            stream=self.stream is not False,
            keep_alive=keep_alive(self.keep_alive),
            max_tokens=options.num_predict if options.num_predict and options.num_predict > 0 else None,
            stop=stops(options.stop),
            format=Format(self.format if isinstance(self.format, dict) else None, "format") if self.format else None,
            thinking=None if self.think is None else bool(self.think),  # a level (high, ...): thinking, any level
            sampling=Sampling(
                temperature=options.temperature,
                top_p=options.top_p,
                top_k=options.top_k,
                min_p=options.min_p,
                seed=options.seed if options.seed is not None and options.seed >= 0 else None,
                presence_penalty=options.presence_penalty,
                frequency_penalty=options.frequency_penalty,
                repetition_penalty=options.repeat_penalty,
            ),
            **rest,
        )


def stops(given: str | list[str] | None) -> list[str]:
    found = [given] if isinstance(given, str) else list(given or [])
    if len(found) > MAX_STOPS or not all(found):
        raise invalid("options.stop", f"up to {MAX_STOPS} strings, none of them empty.")
    return found


class CallFunction(BaseModel):
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class Call(BaseModel):
    id: str | None = None
    function: CallFunction


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")  # thinking: an earlier turn's, not shown to the model again
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = ""
    images: list[Any] | None = None
    tool_calls: list[Call] | None = None
    tool_name: str | None = None
    name: str | None = None  # what older clients call tool_name


class ChatBody(Body):
    messages: list[Message] = Field(default_factory=list)
    tools: list[openai.Tool] | None = None


class GenerateBody(Body):
    prompt: str = ""
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    raw: StrictBool | None = None
    images: list[Any] | None = None
    context: list[StrictInt] | None = None


class NameBody(BaseModel):
    """/api/show, /api/pull, /api/delete: the model, or as older clients send it, the name."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = Field(None, min_length=1)
    name: str | None = Field(None, min_length=1)

    @property
    def given(self) -> str:
        if not (self.model or self.name):
            raise invalid("model", "name the model.")
        return str(self.model or self.name)


def template_message(message: Message, where: str) -> dict:
    """A message as chat templates take it: a tool's answer names its tool, a call's arguments are an object."""
    if message.images:
        raise text_only(f"{where}.images", "image")
    out: dict[str, Any] = {"role": message.role, "content": message.content or ""}
    if message.role == "tool" and (message.tool_name or message.name):
        out["name"] = message.tool_name or message.name
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id or f"call_{number}",
                "type": "function",
                "function": {"name": call.function.name, "arguments": arguments_object(call.function.arguments, where)},
            }
            for number, call in enumerate(message.tool_calls)
        ]
    return out


def chat_ask(body: ChatBody, name: str) -> Ask:
    tools = chosen_tools([tool.model_dump(exclude_none=True) for tool in body.tools or []], None)
    messages = [template_message(m, f"messages.{i}") for i, m in enumerate(body.messages)]
    return body.ask(name, messages=messages, tools=tools)


def generate_ask(body: GenerateBody, name: str) -> Ask:
    """raw: the prompt as it is; a suffix: fill-in-the-middle; else the prompt (and system) through the chat
    template, as Ollama puts it through the model's template."""
    if body.images:
        raise text_only("images", "image")
    if body.template:
        raise refuse("template", "this server formats prompts with the model's own chat template; send raw: true")
    if body.context:
        raise refuse(
            "context", "this server keeps no token context between requests; send the conversation to /api/chat"
        )
    if body.suffix:
        return body.ask(name, prompts=[body.prompt], suffix=body.suffix)
    if body.raw:
        return body.ask(name, prompts=[body.prompt])
    system = [{"role": "system", "content": body.system}] if body.system else []
    return body.ask(name, messages=[*system, {"role": "user", "content": body.prompt}])


# --- answers ---


def ns(seconds: float) -> int:
    return int(seconds * 1e9)


def now() -> str:
    return stamp(time.time())


class Thoughts:
    """A thinking model's answer split at its tokenizer's markers into thinking and content, as it arrives (the
    prompt may have opened the thinking already). Whitespace around the thinking is left out."""

    def __init__(self, start: str, end: str, inside: bool):
        self.start, self.end, self.inside = start, end, inside
        self.held, self.fresh = "", True  # fresh: at the start of a part, where whitespace is left out

    def feed(self, text: str) -> tuple[str, str]:
        """(thinking, content) to send now."""
        self.held += text
        out = {True: "", False: ""}  # by inside
        while True:
            marker = self.end if self.inside else self.start
            at = self.held.find(marker)
            if at >= 0:
                self.add(out, self.held[:at].rstrip() if self.inside else self.held[:at])
                self.held, self.inside, self.fresh = self.held[at + len(marker) :], not self.inside, True
                continue
            now, self.held, _ = split_at_stop(self.held, [marker])  # it may end in the marker's start
            if self.inside:  # whitespace waits: it may come just before the end
                kept = now.rstrip()
                now, self.held = kept, now[len(kept) :] + self.held
            self.add(out, now)
            return out[True], out[False]

    def add(self, out: dict, text: str) -> None:
        if self.fresh:
            text = text.lstrip()
            self.fresh = not text
        out[self.inside] += text

    def finish(self) -> tuple[str, str]:
        held, self.held = self.held, ""
        out = {True: "", False: ""}
        self.add(out, held.rstrip() if self.inside else held)
        return out[True], out[False]


def opens_thinking(run: Run, start: str) -> bool:
    """Whether the prompt ends in the thinking marker (templates that open the thinking for the model)."""
    return run.engine.tokenizer.decode(run.jobs[0].prompt[-32:]).rstrip().endswith(start)


class Reply:
    """One chat's or generation's answer as Ollama's objects, whole or as NDJSON lines; `began`: when its request
    arrived, `loaded`: when its model was there (time.monotonic); with `think`, its thinking apart."""

    def __init__(self, run: Run, name: str, chat: bool, began: float, loaded: float, think: bool):
        self.run, self.name, self.chat, self.began, self.loaded = run, name, chat, began, loaded
        self.first: float | None = None  # when the first text or call came
        tokenizer = run.engine.tokenizer
        self.thoughts = (
            Thoughts(tokenizer.think_start, tokenizer.think_end, opens_thinking(run, tokenizer.think_start))
            if think and run.jobs
            else None
        )

    def split(self, text: str, last: bool) -> tuple[str, str]:
        """(thinking, content) of the answer's next text."""
        if self.thoughts is None:
            return "", text
        thinking, content = self.thoughts.feed(text)
        if last:
            more = self.thoughts.finish()
            thinking, content = thinking + more[0], content + more[1]
        return thinking, content

    def said(self, text: str, calls: list[dict], thinking: str = "") -> dict:
        if not self.chat:
            return {"response": text, **({"thinking": thinking} if thinking else {})}
        message: dict[str, Any] = {"role": "assistant", "content": text, **({"thinking": thinking} if thinking else {})}
        if calls:
            message["tool_calls"] = [
                {"function": {"index": at, "name": call["function"]["name"], "arguments": arguments_input(call)}}
                for at, call in enumerate(calls)
            ]
        return {"message": message}

    def line(self, data: dict) -> str:
        return json.dumps({"model": self.name, "created_at": now(), **data}) + "\n"

    def ending(self, done: dict) -> dict:
        ended = time.monotonic()
        first = self.first or ended
        counts = self.run.usage()
        return {
            "done": True,
            "done_reason": "length" if done["finish_reason"] == "length" else "stop",
            "total_duration": ns(ended - self.began),
            "load_duration": ns(self.loaded - self.began),
            "prompt_eval_count": counts["prompt_tokens"],
            "prompt_eval_duration": ns(first - self.loaded),
            "eval_count": counts["completion_tokens"],
            "eval_duration": ns(ended - first),
        }

    async def stream(self) -> AsyncIterator[str]:
        async for piece in self.run.stream(pings=False):  # NDJSON has no comment line to keep a stream alive with
            if piece is None:
                continue
            thinking, text = self.split(piece.text, piece.done is not None)
            if thinking or text or piece.calls:
                self.first = self.first or time.monotonic()
                yield self.line({**self.said(text, piece.calls or [], thinking), "done": False})
            if piece.done:
                yield self.line({**self.said("", []), **self.ending(piece.done)})

    def whole(self, pieces) -> dict:
        if pieces:
            self.first = self.first or time.monotonic()
        piece = self.run.whole(pieces)[0]
        thinking, text = self.split(piece.text, True)
        ending = self.ending(piece.done or {"finish_reason": "stop"})
        return {"model": self.name, "created_at": now(), **self.said(text, piece.calls or [], thinking), **ending}


def ndjson(lines: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        lines, media_type="application/x-ndjson", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


def once(data: dict, stream: bool) -> Response:
    """An answer of one object: one NDJSON line when streamed."""
    if stream:
        return Response(json.dumps(data) + "\n", media_type="application/x-ndjson")
    return JSONResponse(data)


async def body_of(request: Request, core: Core) -> dict:
    """The JSON body. Its content type is not checked where no web page sent it (no Origin header): Ollama's
    own examples use `curl -d`, which says form data; a page must say JSON, so its browser asks first (CORS)."""
    return await read_json(request, core.spec.max_body_bytes, typed="origin" in request.headers)


def routes(core: Core) -> list[Route]:
    async def answer(request: Request, body: ChatBody | GenerateBody, chat: bool) -> Response:
        began = time.monotonic()
        name = resolve(core, body.model)
        empty = not body.messages if isinstance(body, ChatBody) else not (body.prompt or body.suffix)
        if empty:
            return await load_or_unload(request, body, name, chat)
        ask = chat_ask(body, name) if isinstance(body, ChatBody) else generate_ask(body, name)
        with named(body.model):
            loaded = await core.hold(held(request), ask.model, ask.keep_alive)
        there = time.monotonic()  # the prompt's time (its template and tokens too) counts from here
        if ask.thinking and not loaded.engine.tokenizer.has_thinking:
            raise cannot("think", f"{loaded.served.alias} does not think (its tokenizer has no thinking markers)")
        run = await core.start(ask, held(request))
        reply = Reply(run, body.model, chat, began, there, bool(ask.thinking))
        if ask.stream:
            return ndjson(reply.stream())
        pieces = await reply.run.collect(disconnected(request))
        if pieces is None:
            return Response(status_code=499)  # nobody reads it
        return JSONResponse(reply.whole(pieces))

    async def load_or_unload(request: Request, body: Body, name: str, chat: bool) -> Response:
        """A chat without messages or a generation without a prompt loads the model; with keep_alive 0, unloads it."""
        seconds = keep_alive(body.keep_alive)
        with named(body.model):
            if seconds == 0:
                served = core.pool.find(core.mapped(name))
                if served.alias in core.pool.loaded:
                    try:
                        await asyncio.to_thread(core.pool.unload, served.alias)
                    except Problem:  # unloaded meanwhile
                        pass
            else:
                await core.hold(held(request), name, seconds)
        said = {"message": {"role": "assistant", "content": ""}} if chat else {"response": ""}
        reason = "unload" if seconds == 0 else "load"
        return once(
            {"model": body.model, "created_at": now(), **said, "done": True, "done_reason": reason},
            body.stream is not False,
        )

    async def chat(request: Request) -> Response:
        return await answer(request, parse(ChatBody, await body_of(request, core)), True)

    async def generate(request: Request) -> Response:
        return await answer(request, parse(GenerateBody, await body_of(request, core)), False)

    async def running(request: Request) -> Response:
        return PlainTextResponse("Ollama is running")

    async def version(request: Request) -> Response:
        return JSONResponse({"version": VERSION})

    async def tags(request: Request) -> Response:
        return JSONResponse({"models": [entry(s, await facts(s)) for s in core.pool.entries.values()]})

    async def show(request: Request) -> Response:
        given = parse(NameBody, await body_of(request, core)).given
        with named(given):
            served = core.pool.find(core.mapped(resolve(core, given)))
        found = await facts(served)
        family, context = found["details"]["family"], served.context or found["shape"]["context_length"]
        shape = {**found["shape"], "context_length": context}
        parameters = {"temperature": served.temperature, "top_p": served.top_p, "num_predict": served.max_tokens}
        return JSONResponse(
            {
                "license": "",
                "modelfile": f"# mlxtasks serves {served.alias} from this folder\nFROM {served.folder}\n",
                "parameters": "\n".join(f"{k:<16}{v}" for k, v in parameters.items()),
                "template": found["template"],
                "details": found["details"],
                "model_info": {
                    "general.architecture": family,
                    "general.parameter_count": found["parameter_count"],
                    **{f"{family}.{k}": v for k, v in shape.items() if v is not None},
                },
                "capabilities": [
                    "completion",
                    *(["tools"] if "tools" in found["template"] else []),
                    *(["thinking"] if found["thinks"] else []),
                ],
                "modified_at": found["modified_at"],
            }
        )

    async def ps(request: Request) -> Response:
        loaded, models = dict(core.pool.loaded), []
        for row in core.pool.table():
            held_ = loaded.get(row["model"])
            if held_ is None:
                continue
            size = row["memory"] + row["prompt_cache"]
            left = (
                FOREVER
                if row["keep_alive"] < 0
                else datetime.timedelta(
                    seconds=row["unloads_in"] if row["unloads_in"] is not None else row["keep_alive"]
                )
            )
            models.append(
                {
                    **entry(held_.served, await facts(held_.served)),
                    "size": size,
                    "size_vram": size if on_gpu() else 0,
                    "expires_at": stamp(time.time() + left.total_seconds()),
                    "context_length": held_.engine.context,
                }
            )
        return JSONResponse({"models": models})

    async def pull(request: Request) -> Response:
        body = await body_of(request, core)
        given = parse(NameBody, body).given
        name = resolve(core, given)
        try:
            core.pool.find(core.mapped(name))
        except Problem:
            raise Problem(
                NOT_FOUND,
                f'model "{given}" is not installed here, and this server does not download models: '
                f"get it with {PULL} {name} (mlxtasks models.search lists what there is), then restart the server",
                param="model",
                code="model_not_found",
            ) from None
        return once({"status": "success"}, body.get("stream") is not False)

    async def push(request: Request) -> Response:
        raise not_here("/api/push", "this server does not push models anywhere; it serves the ones installed here")

    async def create(request: Request) -> Response:
        raise not_here(
            "/api/create",
            f"this server does not create models; it serves the MLX models mlxtasks installed ({PULL} NAME, "
            "or a folder of your own in mlx.catalog)",
        )

    async def copy(request: Request) -> Response:
        raise not_here(
            "/api/copy",
            "this server does not copy models; to answer another name with a model, map it in mlx.serve_model_map",
        )

    async def delete(request: Request) -> Response:
        raise not_here("/api/delete", "this server does not delete models; delete one with mlxtasks models.rm NAME")

    return [
        Route("/", running, methods=["GET", "HEAD"]),
        Route("/api/version", version, methods=["GET"]),
        Route("/api/tags", tags, methods=["GET"]),
        Route("/api/ps", ps, methods=["GET"]),
        Route("/api/show", show, methods=["POST"]),
        Route("/api/chat", chat, methods=["POST"]),
        Route("/api/generate", generate, methods=["POST"]),
        Route("/api/pull", pull, methods=["POST"]),
        Route("/api/push", push, methods=["POST"]),
        Route("/api/create", create, methods=["POST"]),
        Route("/api/blobs/{digest}", create, methods=["HEAD", "POST"]),  # what create uploads first
        Route("/api/copy", copy, methods=["POST"]),
        Route("/api/delete", delete, methods=["DELETE", "POST"]),
    ]


def on_gpu() -> bool:
    """Whether MLX computes on a GPU here (Metal's memory is the GPU's too): asked of the MLX the engines have
    imported already (none: the tests' stand-in engine, which has no GPU)."""
    mx = sys.modules.get("mlx.core")
    return bool(mx and mx.default_device().type == mx.DeviceType.gpu)
