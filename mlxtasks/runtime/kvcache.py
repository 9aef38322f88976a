"""The KV cache at kv_bits, for the chat and the server's engine (runtime code: it imports MLX).

mlx_lm 0.32's BatchGenerator batches only 16-bit caches (BatchKVCache); its QuantizedKVCache serves one stream.
BatchKV is BatchKVCache's batch (left padding, merge, extend, filter, extract) over keys and values stored as
mlx.quantize's (packed, scales, biases), which the models' attention reads through mlx_lm's quantized path
(scaled_dot_product_attention takes that path when the cache has `bits`). As mlx_lm's generate does for one
stream, a cache stays 16-bit until it holds `start` tokens (quantized_kv_start) and is then quantized whole;
a batch switches when its longest stream gets there (0: quantized from the first token). A stream the batch
gives back (a finished one, for the prompt cache) is mlx_lm's own KVCache or QuantizedKVCache, as a
single-stream generate would have made it; StreamKV carries one such cache into a batch, or through a chat.

How attention reads a quantized cache depends on the machine: on a Mac, mlx_lm's quantized attention
(quantized_matmul over the packed keys and values, which reads about half the bytes); elsewhere that path is
slow (on this Linux CPU, decode attention over 3,000 tokens took 4x as long and a prefill chunk 7-10x), so the
cache gives attention its keys and values dequantized, one layer at a time, to MLX's fused attention: the
cache stays quantized in memory and only the layer being computed is expanded.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
from mlx_lm.models.base import create_causal_mask
from mlx_lm.models.cache import KVCache, QuantizedKVCache, _BaseCache, dynamic_roll, make_prompt_cache

READ_QUANTIZED = mx.metal.is_available()  # attention reads the packed cache (else a dequantized copy per layer)


@dataclass(frozen=True)
class KVBits:
    bits: int  # 4 or 8
    group_size: int = 64
    start: int = 5000  # tokens a cache holds in 16 bits before it is quantized

    def dequantize(self, parts) -> mx.array:
        return mx.dequantize(*parts, group_size=self.group_size, bits=self.bits)


def unsupported(model, head_dim: int, group_size: int) -> str:
    """Why this model's KV cache cannot be quantized ("": it can): mlx_lm quantizes only plain KV caches (not a
    sliding window's rotating one), and mx.quantize needs the head size to be a multiple of the group size."""
    kinds = {type(c).__name__ for c in make_prompt_cache(model)}
    if kinds != {"KVCache"}:
        return f"its cache is {', '.join(sorted(kinds))}, and mlx_lm quantizes only KVCache"
    if head_dim % group_size:
        return f"its attention heads have {head_dim} values, not a multiple of kv_group_size {group_size}"
    return ""


def quantize(cache: KVCache, kv: KVBits) -> KVCache | QuantizedKVCache:
    """A stream's cache as it should be now: quantized once it holds kv.start tokens (mlx_lm's rule)."""
    return _quantized(cache, kv) if cache.offset >= kv.start else cache


def _quantized(cache: KVCache | QuantizedKVCache, kv: KVBits) -> KVCache | QuantizedKVCache:
    return cache.to_quantized(group_size=kv.group_size, bits=kv.bits) if type(cache) is KVCache else cache


def stream_cache(model, kv: KVBits, held: list | None = None) -> list:
    """A stream's caches (one per layer) for BatchGenerator.insert or a prefill: `held` (a prompt cache's, or
    none yet), quantized where due, each in a StreamKV so that the batch merges them into a BatchKV."""
    return [StreamKV(quantize(c, kv), kv) for c in (held or make_prompt_cache(model))]


class StreamKV(_BaseCache):
    """One stream's cache (mlx_lm's KVCache or QuantizedKVCache, quantized when due): what a prefill fills and
    what BatchGenerator merges into a BatchKV."""

    def __init__(self, cache: KVCache | QuantizedKVCache, kv: KVBits):
        self.cache, self.kv = cache, kv

    def __getattr__(self, name: str):  # offset; bits and group_size where attention reads the packed cache
        if name in ("cache", "kv") or (name in ("bits", "group_size") and not READ_QUANTIZED):
            raise AttributeError(name)
        return getattr(self.cache, name)

    def update_and_fetch(self, keys, values):
        self.cache = quantize(self.cache, self.kv)
        keys, values = self.cache.update_and_fetch(keys, values)
        if isinstance(self.cache, QuantizedKVCache) and not READ_QUANTIZED:
            return self.kv.dequantize(keys), self.kv.dequantize(values)
        return keys, values

    @property
    def state(self):
        return self.cache.state

    def is_trimmable(self):
        return True

    def trim(self, n):
        return self.cache.trim(n)

    def size(self):
        return self.cache.offset

    def make_mask(self, *args, **kwargs):
        return self.cache.make_mask(*args, **kwargs)

    def empty(self):
        return self.cache.empty()

    @property
    def nbytes(self):
        return self.cache.nbytes

    @classmethod
    def merge(cls, caches):
        return BatchKV.merge(caches)


def _parts(cache) -> tuple[tuple, tuple] | None:
    """A stream's keys and values up to its offset, each a tuple of arrays: (16-bit,) or (packed, scales, biases)."""
    if cache.keys is None:
        return None
    wrap = (lambda x: tuple(x)) if isinstance(cache, QuantizedKVCache) else (lambda x: (x,))
    keys, values = (tuple(p[..., : cache.offset, :] for p in wrap(x)) for x in (cache.keys, cache.values))
    return keys, values


class BatchKV(_BaseCache):
    """BatchKVCache (mlx_lm's left-padded batch) with keys and values as tuples of arrays along the same axes:
    (keys,) while 16-bit, (packed, scales, biases) once quantized."""

    step = 256

    def __init__(self, left_padding: list[int], kv: KVBits, quantized: bool = False):
        self.keys: tuple | None = None
        self.values: tuple | None = None
        self.left_padding = mx.array(left_padding)
        self.offset = mx.array([-pad for pad in left_padding])
        self._idx = 0
        self._right_padding = None
        self.kv, self.quantized = kv, quantized or not kv.start

    @property
    def bits(self) -> int:
        """The attention's quantized path reads this; a batch it does not read packed has none (hasattr False)."""
        if not (self.quantized and READ_QUANTIZED):
            raise AttributeError("bits")
        return self.kv.bits

    @property
    def group_size(self) -> int:
        if not (self.quantized and READ_QUANTIZED):
            raise AttributeError("group_size")
        return self.kv.group_size

    def _stored(self, x: mx.array) -> tuple:
        return tuple(mx.quantize(x, group_size=self.kv.group_size, bits=self.kv.bits)) if self.quantized else (x,)

    def _to_quantized(self) -> None:
        self.quantized = True
        if self.keys is not None and self.values is not None:
            self.keys, self.values = self._stored(self.keys[0]), self._stored(self.values[0])

    def update_and_fetch(self, keys, values):
        if not self.quantized and self._idx >= self.kv.start:
            self._to_quantized()
        new_keys, new_values = self._stored(keys), self._stored(values)
        prev, count = self._idx, keys.shape[2]
        if self.keys is None or prev + count > self.keys[0].shape[2]:
            room = (self.step + count - 1) // self.step * self.step

            def grow(parts: tuple | None, new: tuple) -> tuple:
                fresh = tuple(mx.zeros((*n.shape[:2], room, n.shape[3]), n.dtype) for n in new)
                if parts is None:
                    return fresh
                return tuple(mx.concatenate([p[..., :prev, :], f], axis=2) for p, f in zip(parts, fresh, strict=True))

            self.keys, self.values = grow(self.keys, new_keys), grow(self.values, new_values)
        assert self.keys is not None and self.values is not None
        self.offset = self.offset + count
        self._idx += count
        for stored, new in ((self.keys, new_keys), (self.values, new_values)):
            for p, n in zip(stored, new, strict=True):
                p[..., prev : self._idx, :] = n
        return self.keys_and_values()

    def keys_and_values(self):
        assert self.keys is not None and self.values is not None
        keys, values = (tuple(p[..., : self._idx, :] for p in x) for x in (self.keys, self.values))
        if not self.quantized:
            return keys[0], values[0]
        return (keys, values) if READ_QUANTIZED else (self.kv.dequantize(keys), self.kv.dequantize(values))

    def prepare(self, *, left_padding=None, lengths=None, right_padding=None):
        if left_padding is not None:
            if self.keys is not None:
                raise ValueError("Left padding can only be added to an empty BatchKV")
            left_padding = mx.array(left_padding)
            self.left_padding += left_padding
            self.offset = self.offset - left_padding
        if right_padding is not None and max(right_padding) > 0:
            self._right_padding = mx.array(right_padding)

    def finalize(self):
        if self._right_padding is not None and self.keys is not None and self.values is not None:
            padding = self._right_padding
            roll = lambda parts: tuple(dynamic_roll(p, padding[:, None], axis=2) for p in parts)  # noqa: E731
            self.keys, self.values = roll(self.keys), roll(self.values)
            self.offset = self.offset - padding
            self.left_padding += padding
            self._right_padding = None

    @property
    def state(self):
        return self.keys, self.values, self.offset, self.left_padding

    def is_trimmable(self):
        return True

    def trim(self, n):
        n = min(self._idx, n)
        self._idx -= n
        self.offset = self.offset - n
        return n

    def make_mask(self, N: int, return_array: bool = False, **kwargs):
        return create_causal_mask(N, offset=self._idx, left_padding=self.left_padding, **kwargs)

    def filter(self, batch_indices):
        if self.keys is not None and self.values is not None:
            self.keys, self.values = (tuple(p[batch_indices] for p in x) for x in (self.keys, self.values))
        self.offset = self.offset[batch_indices]
        self.left_padding = self.left_padding[batch_indices]
        least = min(self.left_padding.tolist())
        if least > 0:  # shift left, dropping the padding every stream has
            if self.keys is not None and self.values is not None:
                self.keys, self.values = (tuple(p[..., least:, :] for p in x) for x in (self.keys, self.values))
            self._idx -= least
            self.left_padding -= least

    def extend(self, other: BatchKV):
        if self.quantized != other.quantized:  # one batch, one kind of storage
            for batch in (self, other):
                if not batch.quantized:
                    batch._to_quantized()
        if self.keys is None and other.keys is None:
            self.left_padding = mx.concatenate([self.left_padding, other.left_padding])
            self.offset = mx.concatenate([self.offset, other.offset])
            return
        template = next(x for x in (self.keys, other.keys) if x is not None)
        template_values = next(x for x in (self.values, other.values) if x is not None)
        longest = max(self._idx, other._idx)
        size = max(x[0].shape[2] for x in (self.keys, other.keys) if x is not None)

        def pad(batch: BatchKV):
            """The batch's parts right-justified at `longest` and `size` long."""
            rows = batch.offset.shape[0]
            left = longest - batch._idx
            padded = []
            for parts, like in ((batch.keys, template), (batch.values, template_values)):
                if parts is None:
                    parts = tuple(mx.zeros((rows, t.shape[1], 0, t.shape[3]), t.dtype) for t in like)
                right = size - parts[0].shape[2] - left
                if right < 0:
                    parts, right = tuple(p[..., :right, :] for p in parts), 0
                if left or right:
                    parts = tuple(mx.pad(p, [(0, 0), (0, 0), (left, right), (0, 0)]) for p in parts)
                padded.append(parts)
            return padded[0], padded[1], batch.offset, batch.left_padding + left

        (keys, values, offset, left_padding), (keys2, values2, offset2, left_padding2) = pad(self), pad(other)
        self.keys = tuple(mx.concatenate([a, b]) for a, b in zip(keys, keys2, strict=True))
        self.values = tuple(mx.concatenate([a, b]) for a, b in zip(values, values2, strict=True))
        self.offset = mx.concatenate([offset, offset2])
        self.left_padding = mx.concatenate([left_padding, left_padding2])
        self._idx = longest

    def extract(self, idx: int) -> KVCache | QuantizedKVCache:
        """Stream idx's cache, as mlx_lm's own class for one stream."""
        assert self.keys is not None and self.values is not None
        padding = self.left_padding.tolist()[idx]
        keys, values = (
            tuple(mx.contiguous(p[idx : idx + 1, :, padding : self._idx]) for p in x) for x in (self.keys, self.values)
        )
        if self.quantized:
            cache = QuantizedKVCache(group_size=self.kv.group_size, bits=self.kv.bits)
            cache.keys, cache.values = list(keys), list(values)
        else:
            cache = KVCache()
            cache.keys, cache.values = keys[0], values[0]
        cache.offset = self._idx - padding
        return cache

    @classmethod
    def merge(cls, caches: list[StreamKV]) -> BatchKV:
        kv = caches[0].kv
        held = [c.cache for c in caches]
        lengths = [c.offset for c in held]
        longest = max(lengths)
        quantized = longest >= kv.start or any(isinstance(c, QuantizedKVCache) for c in held)
        batch = cls([longest - n for n in lengths], kv, quantized)
        if not longest:
            return batch
        streams = [_parts(_quantized(c, kv) if quantized else c) for c in held]
        like_keys, like_values = next(s for s in streams if s is not None)

        def stack(which: int, like: tuple) -> tuple:
            parts = []
            for part, template in enumerate(like):
                whole = mx.zeros((len(held), template.shape[1], longest, template.shape[3]), template.dtype)
                for row, (stream, n) in enumerate(zip(streams, lengths, strict=True)):
                    if stream is not None:
                        whole[row : row + 1, :, longest - n :] = stream[which][part]
                parts.append(whole)
            return tuple(parts)

        batch.keys, batch.values = stack(0, like_keys), stack(1, like_values)
        batch.offset += longest
        batch._idx = longest
        return batch

    def size(self):
        return self._idx

    def empty(self):
        return self.keys is None

    @property
    def nbytes(self):
        return sum(p.nbytes for x in (self.keys or (), self.values or ()) for p in x)
