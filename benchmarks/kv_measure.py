"""The quantized KV cache's costs, measured in an MLX venv (run by kv_bench.py, or by hand on any machine):

    PYTHONPATH=. VENV/bin/python benchmarks/kv_measure.py MODEL_FOLDER quality TEXT_FILE TOKENS
    PYTHONPATH=. VENV/bin/python benchmarks/kv_measure.py MODEL_FOLDER decode CONTEXT STEPS

quality: perplexity of the text's first TOKENS tokens, and how often the next token the model ranks first is the
one it ranks first with a 16-bit cache, read in chunks of CHUNK tokens through runtime/kvcache.py's cache at 16,
8 and 4 bits (quantized from the first token: quantized_kv_start 0). The weights are dequantized first, so the
prefill does not wait on a CPU's slow quantized matmul; the cache is what differs between the runs.
decode: tokens/s of one stream's decode steps (as the chat and a one-stream batch take them) after CONTEXT
tokens, with the cache at 16, 8 and 4 bits; the cache is filled with random keys and values of the model's
shape, since only their size, not their values, decides the time. Prints JSON.
"""

from __future__ import annotations

import json
import math
import sys
import time

import mlx.core as mx
from mlx_lm import load
from mlx_lm.models.cache import KVCache, make_prompt_cache
from mlx_lm.utils import dequantize_model

from mlxtasks.runtime.kvcache import KVBits, StreamKV, stream_cache

BITS = (0, 8, 4)
CHUNK = 256


def cache_at(model, bits: int) -> list:
    return stream_cache(model, KVBits(bits, 64, 0)) if bits else make_prompt_cache(model)


def quality(model, tokenizer, text: str, tokens: int) -> dict:
    ids = tokenizer.encode(text)[:tokens]
    model = dequantize_model(model)
    runs = {}
    for bits in BITS:
        cache, losses, firsts = cache_at(model, bits), [], []
        for start in range(0, len(ids) - 1, CHUNK):
            part = ids[start : start + CHUNK + 1]
            logits = model(mx.array(part[:-1])[None], cache=cache)[0].astype(mx.float32)
            nll = mx.logsumexp(logits, axis=-1) - mx.take_along_axis(logits, mx.array(part[1:])[:, None], -1)[:, 0]
            mx.eval(nll, [c.state for c in cache])
            losses += nll.tolist()
            firsts += mx.argmax(logits, axis=-1).tolist()
        runs[bits] = (losses, firsts)
    plain = runs[0][1]
    return {
        "tokens": len(ids),
        "chunk": CHUNK,
        **{
            f"kv{bits or 16}": {
                "perplexity": round(math.exp(sum(losses) / len(losses)), 4),
                "agreement": round(sum(a == b for a, b in zip(firsts, plain, strict=True)) / len(plain), 4),
            }
            for bits, (losses, firsts) in runs.items()
        },
    }


def filled(model, bits: int, context: int) -> list:
    """A cache holding `context` tokens of random keys and values, at `bits` (0: 16-bit)."""
    cache = make_prompt_cache(model)
    probe = [KVCache() for _ in cache]
    model(mx.array([[0]]), cache=probe)  # one token shows each layer's keys' and values' shapes and dtype
    for layer, sample in zip(cache, probe, strict=True):
        keys, values = (
            mx.random.normal((*x.shape[:2], context, x.shape[3])).astype(x.dtype) for x in (sample.keys, sample.values)
        )
        layer.keys, layer.values, layer.offset = keys[..., :context, :], values[..., :context, :], context
    if bits:
        cache = [StreamKV(c.to_quantized(group_size=64, bits=bits), KVBits(bits, 64, 0)) for c in cache]
    mx.eval([c.state for c in cache])
    return cache


def decode(model, context: int, steps: int) -> dict:
    rates = {}
    for bits in BITS:
        cache = filled(model, bits, context)
        token = mx.array([[1]])
        for step in range(steps + 2):  # two untimed steps first
            if step == 2:
                started = time.perf_counter()
            token = mx.argmax(model(token, cache=cache)[:, -1:], axis=-1)
            mx.eval(token)
        rates[f"kv{bits or 16}"] = round(steps / (time.perf_counter() - started), 2)
        del cache
        mx.clear_cache()
    return {"context": context, "steps": steps, "tokens_per_s": rates, "device": str(mx.default_device())}


def main() -> None:
    folder, what, *rest = sys.argv[1:]
    model, tokenizer = load(folder)
    if what == "quality":
        with open(rest[0], encoding="utf-8") as handle:
            print(json.dumps(quality(model, tokenizer, handle.read(), int(rest[1]))))
    else:
        print(json.dumps(decode(model, int(rest[0]), int(rest[1]))))


if __name__ == "__main__":
    main()
