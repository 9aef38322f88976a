"""The loaded models: one Engine each, loaded when a request names an installed model, kept for its
keep-alive time after its last request ends, and unloaded, least recently used first, when a load needs
room under the memory budget. Loads and unloads happen one at a time; a request for a model being loaded
waits for it. The engine is made by the function Pool is given (engine.Engine in the server, a stand-in in
the tests), so nothing here imports MLX."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...protocol import ServedModel, ServeSpec
from .problems import FAILED, INVALID, MODEL_CANNOT, NOT_FOUND, UNAVAILABLE, Problem

TICK_S = 0.2  # how often idle models are checked against their keep-alive time
GB = 10**9


@dataclass
class Loaded:
    engine: Any  # an engine.Engine, or what make_engine gives
    keep_alive: float  # seconds it stays after its last request; negative: until unloaded or room is needed
    cache_bytes: int = 0  # what its prompt cache may hold, counted in the budget beside its need
    users: int = 0  # requests holding it, from naming it to the end of their answer
    last: float = field(default_factory=time.monotonic)  # when it was last named or last answered

    @property
    def served(self) -> ServedModel:
        return self.engine.served

    def idle(self) -> bool:
        return not self.users and not self.engine.requests


class Pool:
    def __init__(
        self,
        spec: ServeSpec,
        on_fault: Callable[[BaseException], None],
        log,
        make_engine: Callable[[ServeSpec, ServedModel, int], Any],
    ):
        self.spec, self.on_fault, self.log, self.make_engine = spec, on_fault, log, make_engine
        first = spec.preloaded()
        self.entries = {m.alias: m for m in [*spec.installed, *([first] if first else [])]}
        self.names = {name: m for m in self.entries.values() for name in (*m.names, m.alias)}
        self.loaded: dict[str, Loaded] = {}
        self.lock = threading.Lock()  # loads and unloads
        self.counts = threading.Lock()  # users, last and waiting
        self.waiting: dict[str, int] = {}  # requests waiting for a model's load, by alias
        threading.Thread(target=self._expire, name="keep-alive", daemon=True).start()

    @property
    def requests(self) -> int:
        return sum(held.engine.requests for held in list(self.loaded.values()))

    def find(self, name: str | None) -> ServedModel:
        if name is None and not self.spec.alias:
            raise Problem(
                INVALID,
                "model: name the model to use (GET /v1/models lists them).",
                param="model",
                code="model_required",
            )
        found = self.names.get(name or self.spec.alias)
        if found is None:
            raise Problem(
                NOT_FOUND,
                f"The model {name!r} is not installed here; GET /v1/models lists the ones that are.",
                param="model",
                code="model_not_found",
            )
        return found

    def acquire(self, name: str | None, keep_alive: float | None) -> Loaded:
        """The named model's engine, loaded if need be, held until release(); blocks while a load runs."""
        served = self.find(name)
        self._wait(served.alias, 1)
        try:
            return self._acquire(served, keep_alive)
        finally:
            self._wait(served.alias, -1)

    def _wait(self, alias: str, step: int) -> None:
        with self.counts:
            self.waiting[alias] = self.waiting.get(alias, 0) + step
            if not self.waiting[alias]:
                del self.waiting[alias]

    def _acquire(self, served: ServedModel, keep_alive: float | None) -> Loaded:
        with self.lock:
            held = self.loaded.get(served.alias)
            if held is None:
                self._make_room(served)
                cache_bytes = self._cache_room(served)
                self.log.info("loading %s from %s", served.alias, served.folder)
                try:
                    engine = self.make_engine(self.spec, served, cache_bytes)
                except Exception as exc:  # a damaged folder, say: this request fails, the server serves on
                    self.log.exception("loading %s failed", served.alias)
                    raise Problem(
                        FAILED,
                        f"{served.alias} could not be loaded ({type(exc).__name__}: {exc}); see the server's log.",
                        param="model",
                        code="model_load_failed",
                    ) from None
                if self.spec.budget and served.kind == "chat":  # an embedding model keeps no KV cache
                    engine.kv_room = functools.partial(self._kv_room, engine)
                engine.start(self.on_fault)
                held = self.loaded[served.alias] = Loaded(engine, self.spec.keep_alive, cache_bytes)
            with self.counts:
                held.users += 1
                held.last = time.monotonic()
            if keep_alive is not None:
                held.keep_alive = keep_alive
        return held

    def release(self, held: Loaded) -> None:
        with self.counts:
            held.last = time.monotonic()
            held.users -= 1

    def _make_room(self, served: ServedModel) -> None:
        """Unload idle models, least recently used first, until this one fits the budget."""
        budget = self.spec.budget
        if not budget:
            return
        if served.need > budget:
            raise Problem(
                MODEL_CANNOT,
                f"{served.alias} needs about {served.need / GB:.1f} GB of memory and this "
                f"server may use {budget / GB:.1f} GB.",
                param="model",
                code="model_too_big",
            )
        for held in sorted(self.loaded.values(), key=lambda h: h.last):
            if self._used() + served.need <= budget:
                break
            if held.idle():
                self._unload(held, "to make room for " + served.alias)
        if self._used() + served.need > budget:
            busy = ", ".join(self.loaded)
            raise Problem(
                UNAVAILABLE,
                f"{served.alias} does not fit beside the models answering now ({busy}); try again shortly.",
                param="model",
                code="models_busy",
                retry_after=5,
            )

    def _cache_room(self, served: ServedModel) -> int:
        """The bytes a model's prompt cache may hold: serve_prompt_cache_gb, or what the budget leaves beside the
        loaded models and this one, if less. An embedding model keeps no prompt cache."""
        if served.kind == "embedding":
            return 0
        if not self.spec.budget:
            return self.spec.prompt_cache_bytes
        return max(0, min(self.spec.prompt_cache_bytes, self.spec.budget - self._used() - served.need))

    def _used(self) -> int:
        return sum(
            held.served.need + held.cache_bytes + self._kv_extra(held.engine) for held in list(self.loaded.values())
        )

    @staticmethod
    def _kv_extra(engine) -> int:
        """The bytes its streams' KV cache may take beyond the one context its need counts."""
        return max(0, engine.kv_held - engine.context) * engine.served.kv_token_bytes

    def _kv_room(self, engine) -> int:
        """The KV cache tokens a model's batch may hold now: the context its need counts, and what the budget
        leaves beside every loaded model (asked from the engine's thread as streams arrive)."""
        per_token = engine.served.kv_token_bytes
        spare = self.spec.budget - self._used() + self._kv_extra(engine)
        return engine.context + (max(0, spare) // per_token if per_token else 0)

    def _unload(self, held: Loaded, why: str) -> None:
        del self.loaded[held.served.alias]
        held.engine.stop()
        self.log.info("unloaded %s (%s)", held.served.alias, why)

    def _expire(self) -> None:
        while True:
            time.sleep(TICK_S)
            if not self.lock.acquire(blocking=False):  # a load is under way: look again next tick
                continue
            try:
                now = time.monotonic()
                for held in list(self.loaded.values()):
                    if held.keep_alive >= 0 and held.idle() and now - held.last >= held.keep_alive:
                        self._unload(held, "idle")
            finally:
                self.lock.release()

    def unload(self, name: str) -> bool:
        """Unload a model now (True), or when its requests end (False)."""
        served = self.find(name)
        with self.lock:
            held = self.loaded.get(served.alias)
            if held is None:
                raise Problem(NOT_FOUND, f"{served.alias} is not loaded.", param="model", code="model_not_loaded")
            if held.idle():
                self._unload(held, "unloaded by request")
                return True
            held.keep_alive = 0
            return False

    def table(self) -> list[dict]:
        """What serve.ps shows: each loaded model, its memory, its requests, and when it unloads (the requests
        waiting for a load are in `waiting`)."""
        now, rows = time.monotonic(), []
        for held in sorted(list(self.loaded.values()), key=lambda h: -h.last):
            idle = held.idle()
            rows.append(
                {
                    "model": held.served.alias,
                    "folder": held.served.folder,
                    "memory": held.served.need,
                    "prompt_cache": held.cache_bytes,
                    "requests": held.engine.requests,
                    "idle_s": round(now - held.last, 1) if idle else 0.0,
                    "keep_alive": held.keep_alive,
                    "unloads_in": round(max(0.0, held.keep_alive - (now - held.last)), 1)
                    if idle and held.keep_alive >= 0
                    else None,
                }
            )
        return rows
