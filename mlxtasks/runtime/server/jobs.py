"""What the engine and the request path share, without MLX: a Job (one generated text, a choice), how its
tokens become text (stop strings matched on the decoded text; a character cut by max_tokens left out), and
the events it sends to the event loop, delivered once per engine step."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable

REPLACEMENT = "\ufffd"  # what the detokenizer makes of a character whose bytes were cut off


class Busy(Exception):
    """The queue is full: the request is refused, nothing started."""


@dataclass
class Job:
    """Events go to `events` on `loop` as (index, kind, value): ("text", str) and, at the end, ("done", {...})."""

    index: int
    prompt: list[int]
    max_tokens: int
    sampler: Callable
    processors: list
    stops: list[str]
    events: asyncio.Queue
    loop: asyncio.AbstractEventLoop
    continues: bool = False  # a text completion: the answer goes on the prompt's text, a leading space and all
    cancelled: bool = False
    tokens: int = 0
    pending: str = ""  # decoded text held back: it may be the start of a stop string
    detokenizer: Any = None
    uid: int = -1
    cached: int = 0  # prompt tokens found in the prompt cache
    cache: list | None = None  # its KV cache (None: a new one)
    todo: list[int] = field(default_factory=list)  # prompt tokens not in that cache yet
    stopped_at: str | None = None  # the stop string that ended it

    def take(self, token: int, reason: str | None) -> tuple[str, str | None]:
        """One token: (text to send now, the finish reason once the job has ended). reason: the generator's
        ("stop" for an end-of-sequence token, which is not part of the text; "length"), or None."""
        self.tokens += 1
        if reason != "stop":
            self.detokenizer.add_token(token)
        if reason is not None:
            self.detokenizer.finalize()
        segment = self.detokenizer.last_segment
        if reason == "length":
            segment = segment.rstrip(REPLACEMENT)
        text, self.pending, self.stopped_at = split_at_stop(self.pending + segment, self.stops)
        if self.stopped_at is not None:
            return text, "stop"
        if reason is not None:
            return text + self.pending, reason
        return text, None

    def done(self, reason: str) -> dict:
        return {"finish_reason": reason, "completion_tokens": self.tokens, "cached_tokens": self.cached,
                "stop_sequence": self.stopped_at}


def split_at_stop(text: str, stops: list[str]) -> tuple[str, str, str | None]:
    """(text to send now, text held back, the stop string found first, if any). Held back: the longest end of
    `text` that could begin a stop string, since the next token may complete it."""
    found = min(((at, stop) for stop in stops if (at := text.find(stop)) >= 0), default=None)
    if found:
        return text[:found[0]], "", found[1]
    keep = max((n for s in stops for n in range(min(len(s) - 1, len(text)), 0, -1) if s.startswith(text[-n:])),
               default=0)
    return text[:len(text) - keep], text[len(text) - keep:], None


class Outbox:
    """The events of one engine step, handed to each event loop in one call: a wake-up per step, not per token."""

    def __init__(self):
        self.items: list[tuple[Job, str, Any]] = []

    def add(self, job: Job, kind: str, value: Any) -> None:
        if not job.cancelled:
            self.items.append((job, kind, value))

    def flush(self) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for job, kind, value in self.items:
            by_loop.setdefault(job.loop, []).append((job.events, (job.index, kind, value)))
        self.items = []
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(deliver, items)
            except RuntimeError:  # the loop has closed: the server is ending
                pass


def deliver(items: list[tuple[asyncio.Queue, tuple]]) -> None:
    for queue, event in items:
        queue.put_nowait(event)
