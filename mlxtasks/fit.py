"""Whether a model fits: its weights, its KV cache at the context it will run with, and an overhead.
Pure: the numbers come from a catalogue entry or a model's config.json."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import files
from .errors import MlxTasksError
from .facts import GB
from .protocol import EMBED_BATCH_TOKENS, EMBED_MAX_TOKENS

# MLX's buffers and activations beyond the weights and the cache: an estimate, a share of the weights plus a floor.
OVERHEAD_FRACTION = 0.05
OVERHEAD_BYTES = 300 * 10**6
# A model whose shape is unknown: its weights and room for a few thousand tokens (the seed's rule).
UNKNOWN_HEADROOM = 1.1
# The least context worth running: what "fits" is judged at when no context is given.
MIN_CONTEXT = 4096
KV_BYTES = 2  # float16 / bfloat16 keys and values
# An embedding model keeps no cache: its memory beyond the weights is one batch's activations, at most
# EMBED_BATCH_TOKENS (padded) per forward pass, each input at most EMBED_MAX_TOKENS (the server's limits, in
# protocol.py); a token's activations in flight are taken as ACTIVATION_WIDTHS times its key and value width
# (the hidden state, queries, the MLP's wider middle).
ACTIVATION_WIDTHS = 8


@dataclass(frozen=True)
class KV:
    """How the KV cache is kept: 16-bit (bits 0), or quantized as mlx_lm does (kv_bits, kv_group_size,
    quantized_kv_start): each value in `bits`, and a 16-bit scale and bias per group of group_size values."""

    bits: int = 0
    group_size: int = 64
    start: int = 5000  # tokens kept in 16 bits before the whole cache is quantized

    def value_bytes(self) -> float:
        return self.bits / 8 + 2 * KV_BYTES / self.group_size if self.bits else KV_BYTES


SIXTEEN_BITS = KV()


@dataclass(frozen=True)
class Shape:
    """What the KV cache and the speed depend on. layers 0: unknown."""

    layers: int = 0
    kv_heads: int = 0
    head_dim: int = 0
    context: int = 0  # the model's own limit; 0: unknown
    window: int = 0  # sliding-window layers keep this many tokens; 0: none
    full_layers: int = 0  # layers whose cache grows with the context (0: all of them)
    active: float = 1.0  # share of the weights read per token (below 1 for mixture-of-experts)
    embedding: bool = False  # an embedding model: no KV cache, a batch's activations instead
    kv: KV = KV()

    @property
    def known(self) -> bool:
        return bool(self.layers and self.kv_heads and self.head_dim)

    @property
    def quantized(self) -> bool:
        """Whether the KV cache is kept at kv.bits: mlx_lm quantizes no sliding window's (rotating) cache, and
        mx.quantize needs whole groups in a head."""
        return bool(self.kv.bits and not self.window and self.head_dim and not self.head_dim % self.kv.group_size)


def from_config(config: Mapping[str, Any]) -> Shape:
    """The shape from a config.json (a multimodal one's text_config when it has one)."""
    text = config.get("text_config") or config
    get = lambda *keys: next((text[k] for k in keys if isinstance(text.get(k), (int, float))), 0)  # noqa: E731
    layers, heads, hidden = (
        int(get("num_hidden_layers", "n_layer")),
        int(get("num_attention_heads", "n_head")),
        int(get("hidden_size")),
    )
    kv_heads = int(get("num_key_value_heads") or heads)
    head_dim = int(get("head_dim") or (hidden // heads if heads else 0))
    window = int(get("sliding_window") or 0)
    full = layers
    if window:
        types = text.get("layer_types")
        pattern = int(get("sliding_window_pattern"))
        if isinstance(types, list) and types:
            full = sum(1 for kind in types if kind == "full_attention")
        elif pattern:
            full = layers // pattern
        else:
            window = 0  # one window for every layer (Mistral's old configs): treat as full attention
    return Shape(
        layers,
        kv_heads,
        head_dim,
        int(get("max_position_embeddings")),
        window,
        full if window else 0,
        _active(text, layers, heads, kv_heads, head_dim, hidden),
    )


def _active(text: Mapping[str, Any], layers: int, heads: int, kv_heads: int, head_dim: int, hidden: int) -> float:
    """For a mixture of experts, the share of the parameters one token uses (experts chosen of experts there)."""
    experts = next((text[k] for k in ("num_experts", "num_local_experts", "n_routed_experts") if text.get(k)), 0)
    chosen = text.get("num_experts_per_tok") or text.get("experts_per_token") or 0
    if not (experts and chosen and layers and hidden):
        return 1.0
    expert_size = text.get("moe_intermediate_size") or text.get("intermediate_size") or 0
    attention = layers * hidden * head_dim * (2 * heads + 2 * kv_heads)
    expert_params = layers * experts * 3 * hidden * expert_size
    embeddings = 2 * (text.get("vocab_size") or 0) * hidden
    total = attention + expert_params + embeddings
    return round((total - expert_params * (1 - chosen / experts)) / total, 3) if total else 1.0


def kv_bytes(shape: Shape, context: int) -> int:
    """The KV cache's size at `context` tokens: keys and values for every layer, a window's worth for sliding ones.
    A quantized cache: the larger of its 16-bit part before kv.start tokens and its quantized whole."""
    values = 2 * shape.kv_heads * shape.head_dim  # keys and values of one token in one layer
    full = shape.full_layers or shape.layers
    sliding = shape.layers - full
    tokens = full * context + sliding * min(context, shape.window or context)
    if not shape.quantized:
        return values * KV_BYTES * tokens
    before = values * KV_BYTES * shape.layers * min(context, shape.kv.start)
    return max(before, int(values * shape.kv.value_bytes() * tokens))


def context_for(shape: Shape, wanted: int = 0) -> int:
    """The context fit is judged at: the one asked for, else MIN_CONTEXT, never past the model's own limit."""
    context = wanted or MIN_CONTEXT
    return min(context, shape.context) if shape.context else context


def activation_bytes(shape: Shape) -> int:
    """An embedding model's batch in flight: EMBED_BATCH_TOKENS tokens' activations (see ACTIVATION_WIDTHS)."""
    return EMBED_BATCH_TOKENS * ACTIVATION_WIDTHS * 2 * shape.kv_heads * shape.head_dim * KV_BYTES


def need(weights: int, shape: Shape, context: int = 0) -> int:
    """Bytes of memory to run: weights + KV cache at the context (an embedding model: a batch's activations)
    + overhead (weights x 1.1 for an unknown shape)."""
    if not shape.known:
        return int(weights * UNKNOWN_HEADROOM)
    if shape.embedding:
        return int(weights * (1 + OVERHEAD_FRACTION)) + OVERHEAD_BYTES + activation_bytes(shape)
    return int(weights * (1 + OVERHEAD_FRACTION)) + OVERHEAD_BYTES + kv_bytes(shape, context_for(shape, context))


def largest_context(weights: int, shape: Shape, budget: int) -> int:
    """The longest context that fits the budget, up to the model's own limit (0: not even MIN_CONTEXT fits,
    or the shape is unknown)."""
    if not shape.known:
        return 0
    if shape.embedding:  # the longest input it embeds, if it fits at all
        longest = min(shape.context or EMBED_MAX_TOKENS, EMBED_MAX_TOKENS)
        return longest if need(weights, shape) <= budget else 0
    room = budget - int(weights * (1 + OVERHEAD_FRACTION)) - OVERHEAD_BYTES
    low, high = 0, shape.context or 1 << 20
    while low < high:  # kv_bytes only grows with the context
        middle = (low + high + 1) // 2
        low, high = (middle, high) if kv_bytes(shape, middle) <= room else (low, middle - 1)
    return low if low >= min(MIN_CONTEXT, shape.context or MIN_CONTEXT) else 0


def folder_shape(folder: Path, embedding: bool = False, kv: KV = SIXTEEN_BITS) -> Shape:
    """An installed model's shape from its config.json (unknown when there is none to read), its cache kept as kv."""
    try:
        config = json.loads(files.read_bytes(folder / "config.json"))
    except (OSError, ValueError, MlxTasksError):  # a FIFO is not read
        return Shape(embedding=embedding)
    return replace(from_config(config if isinstance(config, dict) else {}), embedding=embedding, kv=kv)


def installed_context(
    folder: Path, weights: int, budget: int, wanted: int = 0, embedding: bool = False, kv: KV = SIXTEEN_BITS
) -> tuple[int, str]:
    """The context an installed model runs with (0: its own limit) and a note when `wanted` had to be cut:
    the largest that fits when none is wanted, else the one wanted, capped to what fits."""
    largest = largest_context(weights, folder_shape(folder, embedding, kv), budget)
    if not largest:  # unknown shape, or even the least context does not fit: the memory warning says so
        return wanted, ""
    if wanted and wanted > largest:
        return largest, (
            f"(the context is capped at {largest} tokens: {wanted} would not fit in this machine's "
            "memory with the model's weights)"
        )
    return wanted or largest, ""


def verdict(weights: int, shape: Shape, budget: int) -> str:
    """Whether a model fits `budget`, in words: with the largest context that fits when its shape is known."""
    if not shape.known:
        if need(weights, shape) <= budget:
            return "yes (its shape is unknown: weights with room for a few thousand tokens)"
        return f"no: needs about {need(weights, shape) / GB:.1f} GB, more than the {budget / GB:.1f} GB this machine can give"
    largest = largest_context(weights, shape, budget)
    if shape.embedding and largest:
        return f"yes, embedding inputs of up to {largest:,} tokens"
    if not largest:
        return (
            f"no: needs about {need(weights, shape) / GB:.1f} GB even at {context_for(shape):,} tokens of context, "
            f"more than the {budget / GB:.1f} GB this machine can give"
        )
    limit = " (its own limit)" if largest == shape.context else f" of its {shape.context:,}" if shape.context else ""
    return f"yes, with up to {largest:,} tokens of context{limit}"
