"""The request path, once for every API: an Ask (request.py) becomes the served model held for the request,
the prompt's tokens (the chat template, or a completion's text or ids), the checks against the model (token
ids, context, tools, fill-in-the-middle), the engine's jobs, and then a Run: the answer as pieces of text and
tool calls, its finish reasons, its usage. No HTTP here: a refusal is a Problem (problems.py)."""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass

from ...protocol import ServeSpec, duration
from .calls import ToolCalls
from .jobs import Busy, EmbedJob, Job
from .problems import BUSY, UNAVAILABLE, Problem, cannot, invalid, refuse
from .request import MAX_CHOICES, MAX_INPUTS, Ask, Embed, Embedded

PING_S = 5.0  # a stream with nothing to say for this long says so (a keep-alive): its client knows it lives


@dataclass
class Piece:
    """Part of one choice's answer: text, tool calls it completed, and at its end `done` (finish_reason "stop",
    "length" or "tool_calls"; completion_tokens, cached_tokens, stop_sequence)."""

    index: int
    text: str = ""
    calls: list[dict] | None = None
    done: dict | None = None


def keep_alive(value: float | str | None, param: str = "keep_alive") -> float | None:
    try:
        return None if value is None else duration(value)
    except ValueError:
        raise invalid(param, 'seconds, or a duration such as "5m" or "1h" (negative: forever).') from None


class Core:
    def __init__(self, spec: ServeSpec, pool):
        self.spec, self.pool = spec, pool  # pool: a pool.Pool

    def mapped(self, name: str | None) -> str | None:
        """A name no installed model has goes through the spec's model map (glob patterns, first match): clients
        send names of their own (claude-*, gpt-*, qwen2.5-coder:7b)."""
        if name is None or name in self.pool.names:
            return name
        return next((to for pattern, to in self.spec.model_map.items() if fnmatch.fnmatchcase(name, pattern)), name)

    async def hold(self, held: list, name: str | None, seconds: float | None, kind: str = "chat"):
        """The named model (mapped), loaded or waited for while another request loads it, held until the
        request's response is sent (web.py releases what `held` lists); refused, before loading, if it answers
        the other kind of request (chat or embedding)."""
        self.serving(name, kind)
        loaded = await asyncio.to_thread(self.pool.acquire, self.mapped(name), seconds)
        held.append(loaded)
        return loaded

    def serving(self, name: str | None, kind: str) -> None:
        served = self.pool.find(self.mapped(name))
        if served.kind == kind:
            return
        if served.kind == "embedding":
            raise cannot("model", f"{served.alias} is an embedding model: it answers /v1/embeddings and /api/embed")
        raise cannot("model", f"{served.alias} is a chat model: it answers chat and completions, not embeddings")

    async def start(self, ask: Ask, held: list) -> Run:
        """Hold the model, make the prompt, check it, and submit its jobs (or, for ask.count_only, just count)."""
        loaded = await self.hold(held, ask.model, ask.keep_alive)
        engine, served = loaded.engine, loaded.served
        prompts, echoes = await asyncio.to_thread(self.prompts, engine, ask)
        counted = sum(map(len, prompts))
        if ask.count_only:
            return Run(ask, engine, served, [], asyncio.Queue(), counted, None, {})
        max_tokens = self.budget(engine, served, ask.max_tokens, max(map(len, prompts)))
        compiled = None if ask.format is None else await asyncio.to_thread(engine.constraint, ask.format)
        jobs, events = self.jobs(engine, served, ask, prompts, max_tokens, compiled)
        calls = {job.index: ToolCalls(engine.tokenizer, ask.tools) for job in jobs} if ask.tools else {}
        self.submit(engine, jobs)
        return Run(ask, engine, served, jobs, events, counted, echoes, calls)

    async def embed(self, embed: Embed, held: list) -> Embedded:
        """The inputs' embeddings from an embedding model (held as start() holds a chat model), in one job that
        the engine batches with the other requests' inputs."""
        if not embed.inputs or len(embed.inputs) > MAX_INPUTS:
            raise invalid("input", f"from 1 to {MAX_INPUTS} texts or token lists.")
        started = time.monotonic()
        loaded = await self.hold(held, embed.model, embed.keep_alive, "embedding")
        waited = time.monotonic() - started
        engine, served = loaded.engine, loaded.served
        if embed.dimensions is not None and not 1 <= embed.dimensions <= engine.dimensions:
            raise invalid("dimensions", f"{served.alias} gives from 1 to {engine.dimensions} dimensions.")
        inputs = await asyncio.to_thread(self.embed_inputs, engine, embed)
        loop = asyncio.get_running_loop()
        job = EmbedJob(inputs, embed.dimensions or engine.dimensions, loop.create_future(), loop)
        self.submit(engine, [job])
        vectors = await job.future
        return Embedded(vectors, sum(map(len, inputs)), served.alias, waited)

    def embed_inputs(self, engine, embed: Embed) -> list[list[int]]:
        """Each input's tokens, ending with the token the model pools at; one past the model's limit cut to fit
        (embed.truncate) or refused (run in a worker thread)."""
        given = embed.inputs
        if isinstance(given[0], str):
            if not all(given):
                raise invalid("input", "an empty text has nothing to embed.")
            self.precheck_embed(engine, given, embed.truncate)
            inputs = [engine.tokenizer.encode(text) for text in given]
        else:
            bad = [i for ids in given for i in ids if not 0 <= i < engine.vocab_size]
            if bad:
                raise self.outside(engine, bad[0], "input")
            if not all(given):
                raise invalid("input", "an empty token list has nothing to embed.")
            inputs = [list(ids) for ids in given]
        inputs = [ids if ids[-1] == engine.end else [*ids, engine.end] for ids in inputs]
        for number, ids in enumerate(inputs):
            if len(ids) > engine.context:
                if not embed.truncate:
                    raise self.too_long(engine, number, len(ids))
                inputs[number] = [*ids[: engine.context - 1], engine.end]
        return inputs

    def precheck_embed(self, engine, texts: list[str], truncate: bool) -> None:
        """A text that cannot fit, refused before tokenizing (see precheck); one that will be cut, cut to a
        length that still fills the context, so no huge text is tokenized whole."""
        for number, text in enumerate(texts):
            if len(text) // engine.longest_token > engine.context:
                if not truncate:
                    raise self.too_long(engine, number, len(text) // engine.longest_token, at_least=True)
                texts[number] = text[: engine.context * engine.longest_token]

    @staticmethod
    def too_long(engine, number: int, tokens: int, at_least: bool = False) -> Problem:
        return invalid(
            "input",
            f"input {number} has {'at least ' if at_least else ''}{tokens} tokens, and this model embeds at most "
            f"{engine.context}: shorten it (or let the server cut it: truncate true on /api/embed).",
            code="context_length_exceeded",
        )

    def submit(self, engine, jobs: list) -> None:
        """Hand jobs to the engine, or say why it cannot take them now."""
        try:
            engine.submit(jobs)
        except Busy:
            if engine.fault is not None:
                raise Problem(
                    UNAVAILABLE, "The engine has failed; the server is ending.", code="engine_failed"
                ) from None
            raise Problem(
                BUSY,
                f"The server is busy ({self.spec.queue_limit} requests at once); try again shortly.",
                code="queue_full",
                retry_after=1,
            ) from None

    def prompts(self, engine, ask: Ask) -> tuple[list[list[int]], list[str] | None]:
        """The prompts' tokens, and for an echoed completion their texts (run in a worker thread)."""
        if ask.tools and not engine.tokenizer.has_tool_calling:
            raise cannot("tools", "this model's chat template has no tool calling that mlx-lm can read")
        if ask.messages is not None:
            if not ask.count_only:
                self.precheck(engine, sum(len(m["content"]) for m in ask.messages), ask.max_tokens or 1)
            thinking = {} if ask.thinking is None else {"enable_thinking": ask.thinking}
            try:
                return [
                    engine.tokenizer.apply_chat_template(
                        ask.messages, tools=ask.tools, add_generation_prompt=True, **thinking
                    )
                ], None
            except Exception as exc:  # the model's template refused these messages (say, roles out of order)
                raise invalid(
                    "messages", f"the model's chat template refused them: {exc}", code="invalid_messages"
                ) from None
        return self.completion_prompts(engine, ask)

    def completion_prompts(self, engine, ask: Ask) -> tuple[list[list[int]], list[str] | None]:
        if ask.suffix and engine.fim is None:
            raise cannot("suffix", "this model has no fill-in-the-middle tokens (such as <|fim_prefix|>)")
        given = ask.prompts or [""]
        texts = given if isinstance(given[0], str) else None
        if texts is not None:
            self.precheck(engine, max(map(len, texts)) + len(ask.suffix or ""), ask.max_tokens or 1)
            prompts = [
                self.fim_prompt(engine, text, ask.suffix) if ask.suffix else engine.tokenizer.encode(text)
                for text in texts
            ]
        elif ask.suffix:
            raise refuse("suffix", "fill-in-the-middle needs a text prompt, not token ids")
        else:
            prompts = list(given)
            bad = [i for ids in prompts for i in ids if not 0 <= i < engine.vocab_size]
            if bad:
                raise self.outside(engine, bad[0], "prompt")
        bos = engine.tokenizer.bos_token_id
        prompts = [ids or [bos if bos is not None else engine.eos[0]] for ids in prompts]  # empty: a document's start
        echoes = (texts or [engine.tokenizer.decode(ids) for ids in prompts]) if ask.echo else None
        return prompts, echoes

    @staticmethod
    def fim_prompt(engine, prefix: str, suffix: str) -> list[int]:
        """The model's fill-in-the-middle prompt: prefix, suffix, then the middle it writes (after a start of
        text, for tokenizers that begin with one)."""
        before, after, middle, _ = engine.fim
        encode = engine.tokenizer.encode
        return (
            encode("")
            + [before]
            + encode(prefix, add_special_tokens=False)
            + [after]
            + encode(suffix, add_special_tokens=False)
            + [middle]
        )

    @staticmethod
    def outside(engine, token: int, param: str) -> Problem:
        return invalid(
            param,
            f"token id {token} is outside this model's vocabulary (0 to {engine.vocab_size - 1}).",
            code="invalid_token_id",
        )

    @staticmethod
    def check_context(engine, prompt_tokens: int, max_tokens: int, at_least: bool = False) -> None:
        if engine.context and prompt_tokens + max_tokens > engine.context:
            raise invalid(
                "messages",
                f"This model's context is {engine.context} tokens, and the prompt has "
                f"{'at least ' if at_least else ''}{prompt_tokens} tokens plus max_tokens "
                f"{max_tokens}: shorten the prompt or lower max_tokens.",
                code="context_length_exceeded",
            )

    def precheck(self, engine, characters: int, max_tokens: int) -> None:
        """Before tokenizing: a text longer than the context could hold is refused at once (no token is
        longer than the longest one in the vocabulary)."""
        self.check_context(engine, characters // engine.longest_token, max_tokens, at_least=True)

    def budget(self, engine, served, asked: int | None, prompt_tokens: int) -> int:
        """max_tokens: as asked, if prompt and answer fit the context; by default as much as fits, up to the
        served model's default."""
        self.check_context(engine, prompt_tokens, asked or 1)
        if asked:
            return asked
        return min(served.max_tokens, engine.context - prompt_tokens) if engine.context else served.max_tokens

    def jobs(
        self, engine, served, ask: Ask, prompts: list[list[int]], max_tokens: int, compiled=None
    ) -> tuple[list[Job], asyncio.Queue]:
        """compiled: the structured answer's grammar (engine.constraint), which each job follows on its own."""
        sampling = ask.sampling
        if sampling.logit_bias:
            bad = [i for i in sampling.logit_bias if not 0 <= i < engine.vocab_size]
            if bad:
                raise self.outside(engine, bad[0], "logit_bias")
            if any(not -100 <= v <= 100 for v in sampling.logit_bias.values()):
                raise refuse("logit_bias", "each bias must be from -100 to 100")
        if ask.n * len(prompts) > MAX_CHOICES:
            raise invalid("n", f"n times the number of prompts is {ask.n * len(prompts)}; at most {MAX_CHOICES}.")
        ends = [engine.fim[3]] if ask.suffix and engine.fim[3] else []
        temperature = served.temperature if sampling.temperature is None else sampling.temperature
        top_p = served.top_p if sampling.top_p is None else sampling.top_p
        events: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        return [
            Job(
                index=i * ask.n + k,
                prompt=prompt,
                max_tokens=max_tokens,
                sampler=engine.sampler(
                    temperature,
                    top_p,
                    sampling.top_k or 0,
                    sampling.min_p or 0.0,
                    None if sampling.seed is None else (sampling.seed, i * ask.n + k),
                ),
                processors=engine.processors(
                    sampling.logit_bias,
                    sampling.presence_penalty,
                    sampling.frequency_penalty,
                    sampling.repetition_penalty,
                )
                + ([] if compiled is None else [engine.constrained(compiled)]),
                stops=ask.stop + ends,
                events=events,
                loop=loop,
                continues=ask.messages is None,
            )
            for i, prompt in enumerate(prompts)
            for k in range(ask.n)
        ], events


class Run:
    """A submitted request: its answer as Pieces (stream) or whole (gather), and its usage. Its jobs leave the
    engine when either ends, also when the client has gone."""

    def __init__(
        self,
        ask: Ask,
        engine,
        served,
        jobs: list[Job],
        events: asyncio.Queue,
        prompt_tokens: int,
        echoes: list[str] | None,
        calls: dict[int, ToolCalls],
    ):
        self.ask, self.engine, self.served, self.jobs, self.events = ask, engine, served, jobs, events
        self.prompt_tokens, self.echoes, self.calls = prompt_tokens, echoes, calls
        self.temperature = served.temperature if ask.sampling.temperature is None else ask.sampling.temperature
        self.top_p = served.top_p if ask.sampling.top_p is None else ask.sampling.top_p
        self.done: dict[int, dict] = {}

    @property
    def model(self) -> str:
        """The name the answer carries: the one asked for, else the served model's."""
        return self.ask.model or self.served.alias

    def echo(self, index: int) -> str:
        return self.echoes[index // self.ask.n] if self.echoes else ""

    def piece(self, index: int, kind: str, value) -> Piece:
        calls = self.calls.get(index)
        if kind == "text":
            text, found = calls.feed(value) if calls else (value, [])
            return Piece(index, text, found)
        text, found = calls.finish() if calls else ("", [])
        if calls and calls.count and value["finish_reason"] == "stop":
            value = {**value, "finish_reason": "tool_calls"}
        self.done[index] = value
        return Piece(index, text, found, value)

    async def stream(self, pings: bool = True) -> AsyncIterator[Piece | None]:
        """Pieces as they come; with pings, None after PING_S without one. One timer per stream, looked at when it
        fires, rather than a timeout per token: the event loop's work per token is on every answer's path."""
        if pings:
            self.ping_when_quiet()
        try:
            while len(self.done) < len(self.jobs):
                event = await self.events.get()
                if event is None:
                    yield None
                    continue
                self.last_event = time.monotonic()
                yield self.piece(*event)
        finally:
            if pings:
                self.timer.cancel()
            self.engine.cancel(self.jobs)  # a client gone mid-stream: its jobs leave the batch

    def ping_when_quiet(self) -> None:
        """Put None among the events whenever PING_S has passed since the last one (self.timer: the armed call)."""
        loop = asyncio.get_running_loop()
        self.last_event = time.monotonic()

        def fire() -> None:
            quiet = time.monotonic() - self.last_event
            if quiet >= PING_S:
                self.events.put_nowait(None)
                self.last_event = time.monotonic()
            self.timer = loop.call_later(max(0.0, PING_S - quiet) if quiet < PING_S else PING_S, fire)

        self.timer = loop.call_later(PING_S, fire)

    async def collect(self, gone: Awaitable) -> list[Piece] | None:
        """Every piece in the order stream() gives them; None when `gone` (the client left) ends first."""

        async def follow() -> list[Piece]:
            return [piece async for piece in self.stream(pings=False) if piece is not None]

        answer, left = asyncio.ensure_future(follow()), asyncio.ensure_future(gone)
        try:
            await asyncio.wait({answer, left}, return_when=asyncio.FIRST_COMPLETED)
            return answer.result() if answer.done() else None
        finally:
            answer.cancel()
            left.cancel()

    def whole(self, pieces: list[Piece]) -> list[Piece]:
        """Each choice's whole answer, by index: its echo and text, its calls, its end."""
        out = {job.index: Piece(job.index, self.echo(job.index), []) for job in self.jobs}
        for piece in pieces:
            one = out[piece.index]
            one.text, one.calls, one.done = (
                one.text + piece.text,
                (one.calls or []) + (piece.calls or []),
                piece.done or one.done,
            )
        return [out[index] for index in sorted(out)]

    def usage(self) -> dict:
        """Token counts of the answer so far: prompt, completion, and prompt tokens read from the cache (choices of
        one prompt share it)."""
        completion = sum(d["completion_tokens"] for d in self.done.values())
        cached: dict[int, int] = {}
        for index, d in self.done.items():
            cached[index // self.ask.n] = max(cached.get(index // self.ask.n, 0), d["cached_tokens"])
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "cached_tokens": sum(cached.values()),
        }
