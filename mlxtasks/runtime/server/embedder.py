"""The embedding engine: one thread that owns an embedding model (a decoder such as Qwen3-Embedding, loaded by
mlx_lm as a chat model would be, its language-model head unused) and answers EmbedJobs (jobs.py) in batches.
Every job queued while a batch runs joins the next: their inputs are sorted by length and cut into forward passes
of at most EMBED_BATCH_TOKENS padded tokens (protocol.py). Padding goes on the right, where causal attention keeps it from
every real token, so a text's vector is the same alone or in any batch (to float rounding). Pooling is the last
token's hidden state (the end-of-text token Core.embed appends), cut to the dimensions asked for and then
L2-normalized (Matryoshka models such as Qwen3-Embedding keep their meaning in the leading dimensions). Like
engine.py, this module imports MLX; only the server's engine side imports it."""

from __future__ import annotations

import gc

import mlx.core as mx
from mlx_lm import load

from ...protocol import EMBED_BATCH_TOKENS, EMBED_MAX_TOKENS, ServedModel, ServeSpec
from .jobs import EmbedJob, Worker

END_OF_TEXT = "<|endoftext|>"  # the token Qwen3-Embedding pools at (its card appends it to every input)


class Embedder(Worker):
    def __init__(self, spec: ServeSpec, served: ServedModel, cache_bytes: int = 0):
        super().__init__(spec.queue_limit, f"embedder {served.alias}")
        self.spec, self.served = spec, served
        self.model, self.tokenizer, config = load(served.folder, return_config=True)
        text_config = config.get("text_config", config)
        vocab = self.tokenizer.get_vocab()
        self.vocab_size = int(text_config.get("vocab_size") or len(vocab))
        self.dimensions = int(text_config["hidden_size"])
        own = min(int(text_config.get("max_position_embeddings") or EMBED_MAX_TOKENS), EMBED_MAX_TOKENS)
        self.context = min(own, served.context or own)
        self.end = vocab.get(END_OF_TEXT, self.tokenizer.eos_token_id)
        self.longest_token = max((len(t) for t in vocab), default=1)

    def stop(self) -> None:
        super().stop()
        self.model = None
        gc.collect()
        mx.clear_cache()

    def _run(self) -> None:
        while not self.idle_and_stopping():
            jobs = [job for job in self.arrived(idle=True) if isinstance(job, EmbedJob)]
            if jobs:
                vectors = self.embed([ids for job in jobs for ids in job.inputs])
                start = 0
                for job in jobs:
                    job.resolve(normalized(vectors[start : start + len(job.inputs)], job.dimensions))
                    start += len(job.inputs)
                self.settled(len(jobs))

    def embed(self, inputs: list[list[int]]) -> mx.array:
        """The last token's hidden state of each input (float32, in the inputs' order), shortest inputs batched first."""
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
        pooled: list[mx.array] = []
        for batch in batches([len(inputs[i]) for i in order]):
            chosen = [inputs[order[i]] for i in batch]
            width = len(chosen[-1])  # the longest: the batch is sorted
            padded = mx.array([ids + [self.end] * (width - len(ids)) for ids in chosen])
            hidden = self.model.model(padded)
            last = hidden[mx.arange(len(chosen)), mx.array([len(ids) - 1 for ids in chosen])]
            pooled.append(last.astype(mx.float32))
            mx.eval(pooled[-1])
        rows = mx.concatenate(pooled)
        back = [0] * len(order)  # where each input's row is
        for row, i in enumerate(order):
            back[i] = row
        return rows[mx.array(back)]


def batches(lengths: list[int]) -> list[list[int]]:
    """Positions of ascending lengths in groups whose padded size (count x the longest) stays within
    EMBED_BATCH_TOKENS; an input longer than that is a batch of its own."""
    groups: list[list[int]] = []
    for i, length in enumerate(lengths):
        if groups and (len(groups[-1]) + 1) * length <= EMBED_BATCH_TOKENS:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def normalized(vectors: mx.array, dimensions: int) -> list[list[float]]:
    cut = vectors[:, :dimensions]
    return (cut / mx.maximum(mx.linalg.norm(cut, axis=1, keepdims=True), 1e-12)).tolist()
