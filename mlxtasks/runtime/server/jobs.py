"""What the engine and the request path share, without MLX: a Job (one generated text, a choice), how its
tokens become text (stop strings matched on the decoded text; a character cut by max_tokens left out), and
the events it sends to the event loop, delivered once per engine step."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

REPLACEMENT = "\ufffd"  # what the detokenizer makes of a character whose bytes were cut off
log = logging.getLogger("mlxtasks.server")


class Busy(Exception):
    """The queue is full: the request is refused, nothing started."""


@dataclass(eq=False)  # one job is one stream: compared by identity
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

    @property
    def reserve(self) -> int:
        """The KV cache tokens it may come to hold: its prompt and its whole answer."""
        return len(self.prompt) + self.max_tokens

    def done(self, reason: str) -> dict:
        return {
            "finish_reason": reason,
            "completion_tokens": self.tokens,
            "cached_tokens": self.cached,
            "stop_sequence": self.stopped_at,
        }


def split_at_stop(text: str, stops: list[str]) -> tuple[str, str, str | None]:
    """(text to send now, text held back, the stop string found first, if any). Held back: the longest end of
    `text` that could begin a stop string, since the next token may complete it."""
    found = min(((at, stop) for stop in stops if (at := text.find(stop)) >= 0), default=None)
    if found:
        return text[: found[0]], "", found[1]
    keep = max(
        (n for s in stops for n in range(min(len(s) - 1, len(text)), 0, -1) if s.startswith(text[-n:])), default=0
    )
    return text[: len(text) - keep], text[len(text) - keep :], None


@dataclass
class EmbedJob:
    """One embedding request's inputs (token ids, each ending as the model's pooling needs) for the engine thread,
    and the future on `loop` that gets their vectors (each cut to `dimensions` and L2-normalized)."""

    inputs: list[list[int]]
    dimensions: int
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    cancelled: bool = False  # a request's inputs are embedded together, whoever is still waiting

    def resolve(self, vectors: list[list[float]]) -> None:
        def settle():
            if not self.future.done():  # its client may have gone
                self.future.set_result(vectors)

        try:
            self.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the loop has closed: the server is ending
            pass


class Outbox:
    """The events of one engine step, handed to each event loop in one call: a wake-up per step, not per token."""

    def __init__(self) -> None:
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
    for events, event in items:
        events.put_nowait(event)


class Worker:
    """What every engine does around its model: jobs submitted (refused while the queue is full or the engine has
    failed), cancelled, taken by its thread between steps and counted until they finish; the thread's fault, which
    ends the server. A subclass's _run() is the thread's loop.

    Under a memory budget (kv_room, set by pool.py: the KV cache tokens the batch may hold now), a job joins the
    batch only while it fits: streams are padded to the longest in the batch (mlx_lm's BatchKVCache), so n streams
    may come to hold n times the largest reserve (prompt plus max_tokens). One that does not fit waits, in
    arrival order, until streams finish; one alone always joins."""

    def __init__(self, queue_limit: int, name: str):
        self.queue_limit, self.name = queue_limit, name
        self.kv_room: Callable[[], int] | None = None
        self._held: list[Job] = []  # arrived, waiting for room in the batch (the engine thread's)
        self._joined: list[Job] = []  # handed to the engine thread and not finished
        self.fault: BaseException | None = None
        self.stopping = False
        self.outbox = Outbox()  # the engine thread's
        self._inbox: queue.Queue = queue.Queue()
        self._count = 0  # jobs submitted and not finished
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def requests(self) -> int:
        """Jobs waiting or generating."""
        return self._count

    def _run(self) -> None:
        raise NotImplementedError

    def start(self, on_fault: Callable[[BaseException], None]) -> None:
        def run():
            try:
                self._run()
            except BaseException as exc:  # the batch's state is unknown now: every job fails, the server ends
                self.fault = exc
                on_fault(exc)

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread once nothing is queued or generating, and wait for it."""
        self.stopping = True
        self._inbox.put(None)
        if self._thread is not None:
            self._thread.join()

    def submit(self, jobs: list[Job]) -> None:
        with self._lock:
            if self.fault is not None or self._count + len(jobs) > self.queue_limit:
                raise Busy()
            self._count += len(jobs)
        for job in jobs:
            self._inbox.put(job)

    def cancel(self, jobs: list[Job]) -> None:
        for job in jobs:
            job.cancelled = True
        self._inbox.put(None)  # wakes the thread, which drops them between two steps

    def arrived(self, idle: bool) -> list[Job]:
        """The jobs submitted since the last look that fit the batch's KV room (and any cancelled one); while idle
        with none held, waits for one (or a wake-up)."""
        jobs = [self._inbox.get()] if idle and not self._held else []
        while True:
            try:
                jobs.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        new = [job for job in jobs if job is not None]
        self._held += new
        out = [job for job in self._held if job.cancelled]
        for job in self._held:
            if job.cancelled:
                continue
            if not self._fits(job):
                if job in new:
                    log.info("a request waits for room in the KV cache (%d streams answering)", len(self._joined))
                break
            if self.kv_room is not None:
                self._joined.append(job)
            out.append(job)
        taken = set(map(id, out))
        self._held = [job for job in self._held if id(job) not in taken]
        return out

    @property
    def kv_held(self) -> int:
        """The KV cache tokens the joined streams may come to hold."""
        joined = list(self._joined)
        return len(joined) * max((job.reserve for job in joined), default=0)

    def _fits(self, job: Job) -> bool:
        if self.kv_room is None or not self._joined:
            return True
        largest = max(job.reserve, *(other.reserve for other in self._joined))
        return (len(self._joined) + 1) * largest <= self.kv_room()

    def idle_and_stopping(self) -> bool:
        return self.stopping and self._inbox.empty()

    def finish(self, job: Job, reason: str) -> None:
        if job.cancelled:
            log.info("a request was cancelled after %d tokens: its client has gone", job.tokens)
        self.outbox.add(job, "done", job.done(reason))
        if job in self._joined:
            self._joined.remove(job)
        self.settled()

    def settled(self, jobs: int = 1) -> None:
        """Jobs that have ended, and no longer count against the queue."""
        with self._lock:
            self._count -= jobs
