"""Make a tiny qwen2 model laid out like an mlx-community 4-bit repo, then prove it loads and generates (or, with
--embedding, a tiny qwen3 laid out like mlx-community's 8-bit Qwen3-Embedding, proved by its hidden states).

Run with the MLX venv's python (the tool side has no mlx): `VENV_PY tiny_model.py OUT_DIR [--shards N]`.
Everything goes through mlx_lm's own model class, quantizer and save helpers, so a checkpoint that
loads here is shaped like a real mlx-community download, only about 100 KB instead of GB.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import mlx.core as mx
from mlx_lm import load, stream_generate, utils
from mlx_lm.models import qwen2, qwen3
from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # Qwen2's ids 151643-151645 become 0-2
# --coder adds Qwen2.5-Coder's fill-in-the-middle and tool-call tokens, and its chat template with tools.
CODER_SPECIAL = ["<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<tool_call>", "</tool_call>"]
# Qwen2Tokenizer's own split rule: mirroring its pipeline keeps slow and fast loading identical.
PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# ChatML as Qwen2.5 renders it, without the tool-calling branches.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if loop.first and message['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
# Qwen2.5's template as its tokenizer_config.json has it, tool branches and all.
TOOLS_TEMPLATE = (
    "{%- if tools %}{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}"
    "{%- else %}{{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}{%- endif %}"
    "{{- '\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are "
    "provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}"
    "{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\\n<tool_call>\\n{"name": <function-name>, "arguments": '
    "<args-json-object>}\\n</tool_call><|im_end|>\\n' }}"
    "{%- else %}{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\\n' }}{%- endif %}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) or "
    "(message.role == 'assistant' and not message.tool_calls) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- elif message.role == 'assistant' %}{{- '<|im_start|>' + message.role }}"
    "{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}"
    "{%- for tool_call in message.tool_calls %}"
    "{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}"
    '{{- \'\\n<tool_call>\\n{"name": "\' }}{{- tool_call.name }}{{- \'", "arguments": \' }}'
    "{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}{%- endfor %}{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != 'tool') %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' }}{{- message.content }}{{- '\\n</tool_response>' }}"
    "{%- if loop.last or (messages[loop.index0 + 1].role != 'tool') %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
TEXT = """\
The quick brown fox jumps over the lazy dog. A model reads a prompt and writes an answer, one token
at a time. Write a function that returns the sum of two numbers, then explain how it works.
Hello! How are you today? I am fine, thank you. What is the capital of France? Paris is the capital.
def add(a, b):
    return a + b

class Counter:
    def __init__(self):
        self.count = 0

    def increment(self, step=1):
        self.count += step
        return self.count

for i in range(10):
    print(f"{i}: {add(i, i * 2)}")

import json, os, sys
with open("config.json") as f:
    config = json.load(f)
if __name__ == "__main__":
    sys.exit(main())
fn main() { let x = vec![1, 2, 3]; println!("{:?}", x.iter().sum::<i32>()); }
const answer = (items) => items.filter((x) => x > 0).map((x) => x * 2);
SELECT name, count(*) FROM users WHERE active = 1 GROUP BY name ORDER BY name;
"""


def train_tokenizer(special: list[str]) -> Tokenizer:
    tokenizer = Tokenizer(BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = BpeTrainer(
        vocab_size=640,
        special_tokens=special,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(TEXT.splitlines(keepends=True) * 4, trainer)  # repeats give merges weight
    return tokenizer


def write_tokenizer(tokenizer: Tokenizer, out: Path, special: list[str], template: str) -> None:
    tokenizer.save(str(out / "tokenizer.json"))
    decoder = {
        str(tokenizer.token_to_id(t)): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for t in special
    }
    config = {
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": special[1:],
        "bos_token": None,
        "chat_template": template,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 4096,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    specials = {"additional_special_tokens": special[1:], "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))


# Layer sizes: "tiny" for tests; "tiny-wide" splits in two for tensor parallelism (each half still a whole
# 64-wide quantization group); "0.5b" is Qwen2.5-0.5B's body (its 151k-token vocabulary aside), for benchmarks;
# "7b" is Qwen2.5-Coder-7B's exact shape, vocabulary and untied head included (4.3 GB at 4 bits), for GPU benchmarks.
SHAPES = {
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
    "tiny-wide": {
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
    "0.5b": {
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
    },
    "0.6b-embed": {  # Qwen3-Embedding-0.6B's exact shape and vocabulary, for benchmarks (with --embedding)
        "hidden_size": 1024,
        "intermediate_size": 3072,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "vocab_size": 151669,
    },
    "7b": {
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "tie_word_embeddings": False,
        "vocab_size": 152064,
    },
}


def model_config(tokenizer: Tokenizer, shape: str = "tiny", embedding: bool = False) -> dict:
    if embedding:  # Qwen3-Embedding's config: a qwen3 with tied embeddings, its eos the end of text
        return {
            "architectures": ["Qwen3ForCausalLM"],
            "model_type": "qwen3",
            "hidden_act": "silu",
            "vocab_size": tokenizer.get_vocab_size(),
            "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0,
            "tie_word_embeddings": True,
            "torch_dtype": "bfloat16",
            "attention_bias": False,
            "head_dim": 128 if shape == "0.6b-embed" else 16,
            "bos_token_id": tokenizer.token_to_id("<|endoftext|>"),
            "eos_token_id": tokenizer.token_to_id("<|endoftext|>"),
            **SHAPES[shape],
        }
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_act": "silu",
        "vocab_size": tokenizer.get_vocab_size(),
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "bos_token_id": tokenizer.token_to_id("<|endoftext|>"),
        "eos_token_id": tokenizer.token_to_id("<|im_end|>"),
        "sliding_window": 4096,
        "use_sliding_window": False,
        "use_cache": True,
        **SHAPES[shape],
    }


def split_evenly(weights: dict, count: int) -> list[dict]:
    """mlx_lm's save_model only splits at 5 GB; tests need several shards of a tiny model."""
    items = sorted(weights.items())
    size = -(-len(items) // count)
    return [dict(items[i : i + size]) for i in range(0, len(items), size)]


def make(out: Path, shards: int, shape: str = "tiny", coder: bool = False, embedding: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    mx.random.seed(0)
    special = SPECIAL + CODER_SPECIAL if coder else SPECIAL
    tokenizer = train_tokenizer(special)
    wanted = SHAPES[shape].get("vocab_size", 0)
    # Filler tokens give a real vocabulary's size, so every id a random model samples decodes.
    tokenizer.add_tokens([f"<|filler_{n}|>" for n in range(wanted - tokenizer.get_vocab_size())])
    write_tokenizer(tokenizer, out, special, TOOLS_TEMPLATE if coder else CHAT_TEMPLATE)
    config = model_config(tokenizer, shape, embedding)
    family = qwen3 if embedding else qwen2
    model = family.Model(family.ModelArgs.from_dict(config))
    model.set_dtype(mx.bfloat16)  # what mlx-community's 4-bit repos keep for scales, biases and norms
    model, config = utils.quantize_model(model, config, group_size=64, bits=8 if embedding else 4)
    utils.make_shards = lambda weights: split_evenly(weights, shards)
    utils.save_model(out, model)
    utils.save_config(config, out / "config.json")
    (out / "README.md").write_text(
        f"---\nlibrary_name: mlx\n---\n# Tiny {config['model_type']} test model (random weights)\n"
    )
    if embedding:  # as Qwen3-Embedding's repo has it: sentence-transformers' settings (last-token pooling)
        settings = {"prompts": {"query": "Instruct: Given a web search query, retrieve relevant passages\nQuery:"}}
        (out / "config_sentence_transformers.json").write_text(json.dumps(settings, indent=2))


def prove(out: Path, embedding: bool = False) -> int:
    model, tokenizer = load(str(out))
    if embedding:  # the body's hidden states, one per token
        hidden = model.model(mx.array([tokenizer.encode("hello world")]))
        return hidden.shape[1]
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hello"}], add_generation_prompt=True)
    tokens = [r.token for r in stream_generate(model, tokenizer, prompt, max_tokens=8)]
    return len(tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--shape", choices=SHAPES, default="tiny")
    parser.add_argument("--coder", action="store_true", help="Qwen2.5-Coder's tokens and chat template with tools")
    parser.add_argument("--embedding", action="store_true", help="a Qwen3-Embedding-like qwen3 (8-bit, tied head)")
    args = parser.parse_args()
    make(args.out, args.shards, args.shape, args.coder, args.embedding)
    generated = prove(args.out, args.embedding)
    if not generated:
        raise SystemExit("the tiny model generated no tokens")
    print(f"tiny model in {args.out}: {generated} tokens generated")


if __name__ == "__main__":
    main()
