"""The prompt cache's disk tier (issue 32): finished prompts' KV caches as files in mlx_lm's prompt-cache format
in the state folder, found through an index (index.json) without reading them, least recently used out first
when the byte budget is reached. Standard library only: the engine side (tiered.py) gives the functions that
save and load a cache with MLX, and `invoke serve.cache` reads the index on the tool side.

A cache is written by a thread of its own, write_after seconds (ServeSpec.disk_cache_write_s) after it was made unless a longer one of the same
conversation replaces it first (an agent's turns then cost one write, not one each), and at once when its
model is unloaded or the server stops. A file that cannot be read or does not match its entry is removed with
one log line; a failed write (a full disk) stops the writing, never the serving.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
import uuid
from array import array
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

INDEX = "index.json"
VERSION = 1
BLOCK = 256  # prompt tokens per block digest: a prompt that shares only a start with an entry reuses that start
MIN_TOKENS = 256  # shorter prompts prefill about as fast as their file would load
FLUSH_S = 20.0  # the longest an unload or a stop waits for the writes it started
AUTO_SHARE = 0.1  # the default budget: this share of the free disk, at most AUTO_MOST bytes
AUTO_MOST = 20 * 2**30
FILE_NAME = re.compile(r"[0-9a-f]{32}\.safetensors")
MODEL_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json")


def auto_budget(state: Path) -> int:
    """mlx.serve_disk_cache_gb's default: a tenth of the free disk where the cache lives, at most 20 GiB."""
    where = Path(state)
    while not where.exists() and where != where.parent:
        where = where.parent
    return int(min(AUTO_MOST, shutil.disk_usage(where).free * AUTO_SHARE))


def identity(folder: str, kv: dict[str, Any]) -> str:
    """What a cache is only valid for: the model's files (names, sizes, modification times, the download's
    revision), its quantization and the KV cache's settings. A re-pulled or changed model has another."""
    root = Path(folder)
    config = json.loads((root / "config.json").read_text())
    try:
        revision = json.loads((root / "mlxtasks-manifest.json").read_text()).get("revision")
    except (OSError, ValueError, AttributeError):
        revision = None
    stats = {
        path.name: [path.stat().st_size, path.stat().st_mtime_ns]
        for path in sorted(root.iterdir())
        if path.suffix == ".safetensors" or path.name in MODEL_FILES
    }
    described = {
        "version": VERSION,
        "files": stats,
        "revision": revision,
        "quantization": config.get("quantization"),
        "kv": kv,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:32]


class Prefixes:
    """Digests of a token list's starts, computed once: at each BLOCK and at any length."""

    def __init__(self, tokens: list[int]):
        self.tokens, self.states = tokens, [hashlib.sha256()]
        for start in range(0, len(tokens) - len(tokens) % BLOCK, BLOCK):
            state = self.states[-1].copy()
            state.update(array("q", tokens[start : start + BLOCK]).tobytes())
            self.states.append(state)

    def blocks(self) -> list[str]:
        return [state.hexdigest()[:32] for state in self.states[1:]]

    def digest(self, length: int) -> str:
        state = self.states[length // BLOCK].copy()
        state.update(array("q", self.tokens[length - length % BLOCK : length]).tobytes())
        return state.hexdigest()[:32]


@dataclass
class Entry:
    file: str
    model: str  # the alias it was made with, for serve.cache
    identity: str
    tokens: int
    digest: str  # of all its tokens
    blocks: list[str]  # of its first BLOCK, 2 * BLOCK, ... tokens
    trimmable: bool  # its cache can be cut to a shorter start (attention caches; not rotating or recurrent ones)
    size: int
    used: float  # the time of its last use (time.time())

    @classmethod
    def checked(cls, data: Any) -> Entry | None:
        """An entry from the index, or None where anything in it is not as written."""
        kinds: dict[str, type | tuple[type, ...]] = {
            "file": str,
            "model": str,
            "identity": str,
            "tokens": int,
            "digest": str,
            "blocks": list,
        }
        kinds |= {"trimmable": bool, "size": int, "used": (int, float)}
        if not isinstance(data, dict) or set(data) != {f.name for f in fields(cls)}:
            return None
        if not all(isinstance(data[name], kind) for name, kind in kinds.items()):
            return None
        if not FILE_NAME.fullmatch(data["file"]) or not all(isinstance(b, str) for b in data["blocks"]):
            return None
        return cls(**data)


def read_index(folder: Path) -> list[Entry]:
    """The index's entries (none where it is missing or unreadable), most recently used first."""
    try:
        data = json.loads((folder / INDEX).read_text())
    except (OSError, ValueError):
        return []
    found = [Entry.checked(item) for item in data.get("entries", [])] if isinstance(data, dict) else []
    return sorted((e for e in found if e is not None), key=lambda e: -e.used)


def clear(folder: Path) -> int:
    """Remove the cache's folder; the bytes it held."""
    if not folder.exists():
        return 0
    size = sum(path.stat().st_size for path in folder.iterdir() if path.is_file())
    shutil.rmtree(folder)
    return size


def private_folder(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)


def open_cache(folder: Path | str, budget: int, log, save, load, write_after: float) -> DiskCache | None:
    """The disk tier, or None (said once in the log) where its folder cannot be made or read: the server serves
    without it."""
    try:
        return DiskCache(folder, budget, log, save, load, write_after)
    except OSError as exc:
        log.warning("prompt cache on disk: off, its folder %s cannot be used (%s)", folder, exc)
        return None


@dataclass
class Pending:
    identity: str
    model: str
    tokens: list[int]
    cache: Any
    size: int
    trimmable: bool
    due: float


class DiskCache:
    """One per server: the index in memory (the engine threads look up, the writer thread writes), the writes
    waiting for their time, and the writer thread."""

    def __init__(
        self,
        folder: Path | str,
        budget: int,
        log,
        save: Callable[[str, Any, dict[str, str]], None],
        load: Callable[[str], tuple[Any, dict[str, str]]],
        write_after: float,
    ):
        self.folder, self.budget, self.log, self.save, self.load = Path(folder), budget, log, save, load
        self.write_after = write_after
        self.writing = budget > 0
        private_folder(self.folder)
        self.entries = {entry.file: entry for entry in read_index(self.folder)}
        for path in self.folder.iterdir():  # a crash's temporary files, files the index does not know
            if path.name != INDEX and path.name not in self.entries:
                path.unlink(missing_ok=True)
        for entry in list(self.entries.values()):
            if not (self.folder / entry.file).exists():
                del self.entries[entry.file]
        self.pending: list[Pending] = []
        self.busy = False  # the writer is writing
        self.touched = False  # an entry's last use changed since the index was saved
        self.lock = threading.Condition()
        self._evict(0)
        self._save_index()
        threading.Thread(target=self._write_loop, name="prompt cache writer", daemon=True).start()

    # --- the engine threads' side

    def find(self, identity: str, prompt: list[int]) -> tuple[Entry, int] | None:
        """The entry that gives the longest start of this prompt, and that length (at most all but its last
        token: one is left to prefill), from the index alone."""
        prefixes, best, longest = Prefixes(prompt), None, 0
        blocks = prefixes.blocks()
        with self.lock:
            candidates = [e for e in self.entries.values() if e.identity == identity]
        for entry in candidates:
            if entry.tokens < len(prompt) and prefixes.digest(entry.tokens) == entry.digest:
                length = entry.tokens
            elif entry.trimmable:
                shared = 0
                for mine, theirs in zip(blocks, entry.blocks, strict=False):
                    if mine != theirs:
                        break
                    shared += BLOCK
                whole = entry.tokens == len(prompt) and prefixes.digest(entry.tokens) == entry.digest
                length = min(len(prompt) - 1, entry.tokens if whole else shared)
            else:
                length = 0
            if length > longest:
                best, longest = entry, length
        return (best, longest) if best else None

    def read(self, entry: Entry) -> Any | None:
        """The entry's cache as saved; None where its file is missing, damaged or not the entry's (then the
        entry and its file are removed, and the log says so once)."""
        path = self.folder / entry.file
        try:
            cache, metadata = self.load(str(path))
            if metadata.get("identity") != entry.identity or metadata.get("digest") != entry.digest:
                raise ValueError("it was made for another model or prompt")
        except Exception as exc:  # whatever a damaged file makes the loader raise: the request goes on without it
            self.log.warning("prompt cache on disk: removed %s (%s: %s)", entry.file, type(exc).__name__, exc)
            with self.lock:
                self.entries.pop(entry.file, None)
                path.unlink(missing_ok=True)
                self._save_index()
            return None
        with self.lock:
            entry.used = time.time()
            self.touched = True  # the writer saves the index: not this thread's time
            self.lock.notify_all()
        return cache

    def put(self, identity: str, model: str, tokens: list[int], cache: Any, size: int, trimmable: bool) -> None:
        """Write this cache (its arrays evaluated) in a while; a longer one of the same conversation, put before
        then, replaces it."""
        if not self.writing or len(tokens) < MIN_TOKENS or size > self.budget:
            return
        with self.lock:
            self.pending = [
                p
                for p in self.pending
                if not (
                    p.identity == identity and p.trimmable and p.tokens == tokens[: len(p.tokens)]
                )  # what this one holds
            ]
            due = time.monotonic() + self.write_after
            self.pending.append(Pending(identity, model, list(tokens), cache, size, trimmable, due))
            self.lock.notify_all()

    def flush(self, identity: str | None = None, timeout: float = FLUSH_S) -> None:
        """Write what waits (of one model, or all) now, and wait for it, at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self.lock:
            for p in self.pending:
                if identity in (None, p.identity):
                    p.due = 0.0
            self.lock.notify_all()
            while any(identity in (None, p.identity) for p in self.pending) or self.busy or self.touched:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.log.warning("prompt cache on disk: gave up waiting for its writes after %g s", timeout)
                    return
                self.lock.wait(left)

    # --- the writer thread

    def _write_loop(self) -> None:
        while True:
            with self.lock:
                while True:
                    if self.touched:
                        self.touched = False
                        self._save_index()
                        self.lock.notify_all()
                    now = time.monotonic()
                    due = [p for p in self.pending if p.due <= now]
                    if due:
                        break
                    self.lock.wait(min((p.due for p in self.pending), default=now + 60) - now)
                one = min(due, key=lambda p: p.due)
                self.pending.remove(one)
                self.busy = True
            try:
                if self.writing:
                    self._write(one)
            finally:
                with self.lock:
                    self.busy = False
                    self.lock.notify_all()

    def _write(self, p: Pending) -> None:
        prefixes = Prefixes(p.tokens)
        digest = prefixes.digest(len(p.tokens))
        with self.lock:
            same = next((e for e in self.entries.values() if (e.identity, e.digest) == (p.identity, digest)), None)
            if same:  # already on disk: only its last use changes
                same.used = time.time()
                self._save_index()
                return
            self._evict(p.size)
        name = uuid.uuid4().hex + ".safetensors"
        temporary = self.folder / f".{name}.tmp.safetensors"  # mx.save_safetensors keeps this suffix
        try:
            self.save(str(temporary), p.cache, {"identity": p.identity, "digest": digest})
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.folder / name)
        except Exception as exc:  # a full disk, say: the serving goes on, without writing
            temporary.unlink(missing_ok=True)
            self.writing = False
            self.log.warning(
                "prompt cache on disk: could not write a cache (%s: %s); no more are written until the server restarts",
                type(exc).__name__,
                exc,
            )
            return
        entry = Entry(
            name,
            p.model,
            p.identity,
            len(p.tokens),
            digest,
            prefixes.blocks(),
            p.trimmable,
            (self.folder / name).stat().st_size,
            time.time(),
        )
        with self.lock:
            if p.trimmable:  # the starts of this conversation written before: this one holds them
                for old in list(self.entries.values()):
                    if old.identity == p.identity and old.tokens < entry.tokens and old.trimmable:
                        if prefixes.digest(old.tokens) == old.digest:
                            self._remove(old)
            self.entries[name] = entry
            self._evict(0)
            self._save_index()

    # --- under the lock

    def _evict(self, room: int) -> None:
        """Remove the least recently used entries until `room` more bytes fit the budget."""
        for entry in sorted(self.entries.values(), key=lambda e: e.used):
            if sum(e.size for e in self.entries.values()) + room <= self.budget:
                break
            self._remove(entry)

    def _remove(self, entry: Entry) -> None:
        del self.entries[entry.file]
        (self.folder / entry.file).unlink(missing_ok=True)

    def _save_index(self) -> None:
        """The index, written whole and atomically, readable by the user alone; entries whose file has gone
        (serve.cache --clear while serving) are left out."""
        kept = {name: e for name, e in self.entries.items() if (self.folder / name).exists()}
        self.entries = kept
        temporary = self.folder / f".{INDEX}.tmp"
        try:
            private_folder(self.folder)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as out:
                json.dump({"version": VERSION, "entries": [asdict(e) for e in kept.values()]}, out)
            os.replace(temporary, self.folder / INDEX)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            if self.writing:
                self.writing = False
                self.log.warning(
                    "prompt cache on disk: could not write its index (%s); no more caches are written", exc
                )
