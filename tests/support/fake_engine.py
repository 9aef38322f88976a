"""A stand-in for the server's engine (mlxtasks/runtime/server/engine.py) that needs no MLX: the same interface
(sampler, processors, tokenizer, context, ...) and the same scaffolding (jobs.Worker: submit, cancel, finish, Outbox),
a thread that steps every job once per step, and a byte-level tokenizer whose chat template is plain text. What
it answers is scripted: `reply(prompt_text)` gives each answer's text, which ends with the end of its turn.

The tests of the request path, the APIs, streaming, disconnects and errors run the real server code on it
(tests/test_server.py); what needs the real model (mlx_lm's template, tool parser, batching) stays in the
tests that load one."""

from __future__ import annotations

import codecs
import json
import threading
import time
from collections.abc import Callable

from mlxtasks.runtime.server.jobs import EmbedJob, Worker

BOS, EOS, FIRST_BYTE = 1, 2, 3  # token ids: a byte b is FIRST_BYTE + b


class Detokenizer:
    """mlx_lm's streaming detokenizer's interface: text, add_token, finalize, and last_segment (the text since it
    was last read)."""

    def __init__(self):
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text, self.offset = "", 0

    def add_token(self, token: int) -> None:
        self.text += self.decoder.decode(bytes([token - FIRST_BYTE])) if token >= FIRST_BYTE else ""

    def finalize(self) -> None:
        self.text += self.decoder.decode(b"", final=True)

    @property
    def last_segment(self) -> str:
        segment, self.offset = self.text[self.offset :], len(self.text)
        return segment


class Tokenizer:
    tool_call_start, tool_call_end = "<tool_call>", "</tool_call>"
    has_thinking, think_start, think_end = False, "<think>", "</think>"  # a test may make it think
    bos_token_id = BOS

    def __init__(self, tool_calling: bool = True):
        self.has_tool_calling = tool_calling

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return ([BOS] if add_special_tokens else []) + [FIRST_BYTE + b for b in text.encode()]

    def decode(self, ids: list[int]) -> str:
        return bytes(i - FIRST_BYTE for i in ids if i >= FIRST_BYTE).decode(errors="replace")

    def apply_chat_template(
        self, messages: list[dict], tools=None, add_generation_prompt=True, enable_thinking=None
    ) -> list[int]:
        if any(m["role"] == "assistant" for m in messages[:1]):
            raise ValueError("the conversation must not start with the assistant")
        text = "".join(
            f"<{m['role']}>{m['content']}{json.dumps(m['tool_calls']) if m.get('tool_calls') else ''}\n"
            for m in messages
        )
        tools_text = f"<tools>{json.dumps(tools)}\n" if tools else ""
        thinking = {None: "", True: "<think>", False: "<no-think>"}[enable_thinking]
        return self.encode(tools_text + text + ("<assistant>" + thinking if add_generation_prompt else ""))

    @staticmethod
    def tool_parser(text: str, tools) -> dict:
        call = json.loads(text)
        return {"name": call["name"], "arguments": call["arguments"]}

    @property
    def detokenizer(self) -> Detokenizer:
        return Detokenizer()


def last_user_text(prompt: str) -> str:
    return prompt.rsplit("<user>", 1)[-1].split("\n", 1)[0]


class FakeEngine(Worker):
    """make_engine for pool.Pool: FakeEngine.maker(reply=..., ...) gives one."""

    def __init__(
        self,
        spec,
        served,
        cache_bytes: int = 0,
        reply: Callable[[str], str] = lambda prompt: "You said: " + last_user_text(prompt),
        context: int = 4096,
        step_s: float = 0.0,
        gate: threading.Event | None = None,
        tool_calling: bool = True,
        fim: bool = False,
    ):
        super().__init__(spec.queue_limit, f"fake engine {served.alias}")
        self.spec, self.served, self.reply, self.step_s, self.gate = spec, served, reply, step_s, gate
        self.cache_bytes = cache_bytes
        self.tokenizer = Tokenizer(tool_calling)
        self.vocab_size, self.eos, self.longest_token = FIRST_BYTE + 256, [EOS], 1
        self.context = min(context, served.context or context)
        self.fim = [FIRST_BYTE + 0xF0, FIRST_BYTE + 0xF1, FIRST_BYTE + 0xF2, None] if fim else None
        self.seen: list[list[int]] = []  # finished conversations (prompt and answer), the prompt cache's stand-in
        self.most = 0  # the most streams answered at once
        self.dimensions, self.end = DIMENSIONS, EOS  # as an embedding model: its vectors' size, the token it pools at
        self.formats: list = []  # the structured answers asked for

    @classmethod
    def maker(cls, **options) -> Callable:
        return lambda spec, served, cache_bytes: cls(spec, served, cache_bytes, **options)

    def sampler(self, temperature, top_p, top_k, min_p, seed=None):
        return (temperature, top_p, top_k, min_p, seed)

    def processors(self, logit_bias, presence, frequency, repetition) -> list:
        return [("bias", logit_bias)] if logit_bias else []

    def constraint(self, format):
        """A structured answer: each format asked for is kept (self.formats); the scripted answer is not changed."""
        self.formats.append(format)
        return format

    def constrained(self, compiled) -> tuple:
        return ("format", compiled)

    def _run(self) -> None:
        active: dict = {}
        while True:
            if not active and self.idle_and_stopping():
                return
            for job in self.arrived(idle=not active):
                if isinstance(job, EmbedJob):
                    job.resolve([unit(fake_vector(ids)[: job.dimensions]) for ids in job.inputs])
                    self.settled()
                    continue
                job.detokenizer = self.tokenizer.detokenizer
                job.cached = max((common(seen, job.prompt) for seen in self.seen), default=0)
                answer = self.tokenizer.encode(self.reply(self.tokenizer.decode(job.prompt)), add_special_tokens=False)
                active[id(job)] = (job, answer, iter(answer + [EOS]))
            self.most = max(self.most, len(active))
            if self.gate is not None:
                self.gate.wait()
            for key, (job, answer, tokens) in list(active.items()):
                if job.cancelled:
                    self.finish(active.pop(key)[0], "cancelled")
                    continue
                token = next(tokens)
                reason = "stop" if token == EOS else "length" if job.tokens + 1 >= job.max_tokens else None
                text, finish = job.take(token, reason)
                if text:
                    self.outbox.add(job, "text", text)
                if finish is not None:
                    self.seen.append(job.prompt + answer[: job.tokens])  # what it said, the end of turn left out
                    self.finish(active.pop(key)[0], finish)
            self.outbox.flush()
            if self.step_s:
                time.sleep(self.step_s)


def common(seen: list[int], prompt: list[int]) -> int:
    """The prompt tokens a cache of `seen` holds: all of seen if the prompt starts with it (one token short of
    the whole prompt, which must be computed)."""
    return min(len(seen), len(prompt) - 1) if prompt[: len(seen)] == seen else 0


DIMENSIONS = 16  # the fake embedding's size


def fake_vector(ids: list[int]) -> list[float]:
    """A deterministic stand-in for an embedding: each dimension a different mix of the token ids."""
    return [float(sum((token * (d + 3)) % 11 - 5 for token in ids)) + 0.5 for d in range(DIMENSIONS)]


def unit(vector: list[float]) -> list[float]:
    length = sum(v * v for v in vector) ** 0.5
    return [v / length for v in vector]
