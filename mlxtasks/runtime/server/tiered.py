"""The server's prompt cache in two tiers: mlx_lm's LRUPromptCache in memory and, when the server has one, the
disk (diskcache.py), behind the memory cache's two calls. A prompt takes the longer start of the two; a start
read from disk is used as a memory hit is (its tokens count as cached). Imported by engine.py alone: MLX."""

from __future__ import annotations

import mlx.core as mx
from mlx_lm.models.cache import (
    LRUPromptCache,
    can_trim_prompt_cache,
    load_prompt_cache,
    save_prompt_cache,
    trim_prompt_cache,
)

from ...protocol import ServeSpec
from .diskcache import MIN_TOKENS, DiskCache, open_cache


def load(path: str):
    return load_prompt_cache(path, return_metadata=True)


class TieredPromptCache:
    def __init__(self, memory: LRUPromptCache, disk: DiskCache | None, identity: str, model: str):
        self.memory, self.disk, self.identity, self.model = memory, disk, identity, model

    def fetch_nearest_cache(self, key, tokens: list[int]):
        cache, rest = self.memory.fetch_nearest_cache(key, tokens)
        if self.disk is None:
            return cache, rest
        found = self.disk.find(self.identity, tokens)
        if found is None or found[1] <= len(tokens) - len(rest):
            return cache, rest
        entry, length = found
        loaded = self.disk.read(entry)
        if loaded is None:
            return cache, rest
        if entry.tokens > length:
            trim_prompt_cache(loaded, entry.tokens - length)
        return loaded, tokens[length:]

    def insert_cache(self, key, tokens: list[int], cache: list) -> None:
        self.memory.insert_cache(key, tokens, cache)
        if self.disk and len(tokens) >= MIN_TOKENS:
            mx.eval([c.state for c in cache])  # here: the writer thread only copies finished arrays to the file
            self.disk.put(
                self.identity, self.model, tokens, cache, sum(c.nbytes for c in cache), can_trim_prompt_cache(cache)
            )

    def close(self) -> None:
        """At the model's unload: its caches that wait for the disk are written, and the memory tier emptied."""
        if self.disk:
            self.disk.flush(self.identity)
        self.memory.trim_to(n_sequences=0)


def open_disk(spec: ServeSpec, log) -> DiskCache | None:
    """The server's disk tier (None where its budget is 0)."""
    if not spec.disk_cache_bytes or not spec.disk_cache_folder:
        return None
    return open_cache(
        spec.disk_cache_folder, spec.disk_cache_bytes, log, save_prompt_cache, load, spec.disk_cache_write_s
    )
