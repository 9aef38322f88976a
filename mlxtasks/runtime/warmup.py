"""Compile the CUDA kernels a chat with a 4-bit model uses, once, so the first real chat starts fast.

    python -m mlxtasks.runtime.warmup    # prints {"backend": ..., "seconds": ...} as JSON

A small random qwen2 of the catalogue models' head size (128) and quantization (4 bits, groups of 64,
bfloat16) is made in memory and generates a few tokens the ways mlxtasks does: greedy (bench, validate
--deep) and with temperature and top-p over a prompt cache (chat), whose sampling kernels are a chat's
first minute on a cold cache. MLX keeps what it compiled (runtime/gpu.py).
"""

from __future__ import annotations

import json
import time

from . import gpu

SHAPE = {
    "model_type": "qwen2",
    "hidden_size": 512,
    "num_hidden_layers": 2,
    "intermediate_size": 1024,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-6,
    "vocab_size": 1024,
    "tie_word_embeddings": False,
}
PROMPT_TOKENS, GENERATED = 64, 8


def main() -> None:
    gpu.use_kernel_cache()
    if not gpu.is_cuda():
        print(json.dumps({"backend": "not cuda", "seconds": 0.0}))
        return
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm.generate import generate_step
    from mlx_lm.models import qwen2
    from mlx_lm.models.cache import make_prompt_cache
    from mlx_lm.sample_utils import make_sampler

    model = qwen2.Model(qwen2.ModelArgs.from_dict(SHAPE))
    model.set_dtype(mx.bfloat16)
    nn.quantize(model, group_size=64, bits=4)
    gpu.before_generation()
    start = time.perf_counter()
    prompt = mx.arange(PROMPT_TOKENS) % SHAPE["vocab_size"]
    for sampler, cache in ((make_sampler(0.0), None), (make_sampler(0.7, 0.9), make_prompt_cache(model))):
        for _ in zip(range(GENERATED), generate_step(prompt, model, sampler=sampler, prompt_cache=cache), strict=False):
            pass
    print(json.dumps({"backend": "cuda", "seconds": round(time.perf_counter() - start, 2)}))


if __name__ == "__main__":
    main()
