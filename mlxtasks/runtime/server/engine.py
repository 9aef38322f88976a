"""The engine: one thread that owns the model and runs mlx_lm's BatchGenerator (continuous batching), fed
by a queue. Requests (Jobs, jobs.py) join and leave the batch between steps. A prompt of one prefill chunk
or less (or of BATCHED_PROMPT tokens) goes straight into the generator, which prefills such prompts together; a longer one is prefilled
here, one chunk between two steps of the other streams, the prompt with the fewest tokens left first, and
only while no stream in the generator waits for its first token: it joins the generator when all but its
last token are in its cache. A chunk is sized by time (about PREFILL_SLICE_S of work, measured as it runs),
so a short request, or the noticing of a client that left, waits about that long behind any prompt on any
machine. Each step's text goes to the event loop in one call
(jobs.Outbox). One engine per loaded model (see pool.py); this is the one module of the server that imports
MLX, with tiered.py (its prompt cache, in memory and on disk) that only it imports, and runtime/kvcache.py
(the quantized KV cache it shares with the chat).
"""

from __future__ import annotations

import functools
import gc
import time
from collections.abc import Callable
from typing import Any

import mlx.core as mx
from mlx_lm import load
from mlx_lm.generate import BatchGenerator, StopSequences
from mlx_lm.models.cache import LRUPromptCache, can_trim_prompt_cache, make_prompt_cache, trim_prompt_cache
from mlx_lm.sample_utils import apply_min_p, apply_top_k, apply_top_p, make_logits_processors, make_sampler

from ...protocol import ServedModel, ServeSpec
from .. import kvcache
from .diskcache import DiskCache, identity
from .jobs import Job, Worker, log
from .problems import refuse
from .request import Format
from .tiered import TieredPromptCache, open_disk  # noqa: F401 (the server opens its disk tier through here)

# Fill-in-the-middle: the tokens a prompt is built from (prefix, suffix, middle), and the text that ends the
# middle where it is not the end-of-sequence token.
FIM = [
    ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", None),  # Qwen2.5-Coder, CodeGemma
    ("<fim_prefix>", "<fim_suffix>", "<fim_middle>", None),  # StarCoder, SantaCoder, Granite code
    ("\u2581<PRE>", "\u2581<SUF>", "\u2581<MID>", "<EOT>"),  # CodeLlama
    ("<\uff5cfim\u2581begin\uff5c>", "<\uff5cfim\u2581hole\uff5c>", "<\uff5cfim\u2581end\uff5c>", None),
]  # DeepSeek-Coder
PREFILL_SLICE_S = 0.25  # the work one chunk of a long prompt may take before the other streams step again
FIRST_CHUNK = 8  # tokens of the first chunk, before the engine has measured this machine
# A prompt this short joins the generator whatever the chunk: prompts that join together are prefilled in one
# batch, which costs about what one of them does (on a slow CPU, 8 prompts of 14 tokens took 1.9 s together and
# would take 8 times that in turns), and the wait behind one stays that of a few tokens.
BATCHED_PROMPT = 32


def wire_once() -> None:
    """Wire the recommended working set once for the server's life, as mlx_lm.server does at start. Each
    BatchGenerator sets the same limit when made and restores the one it found when closed: with this one set
    first, unloading a model (whose generator closes) leaves the others wired. Metal only: elsewhere MLX reports
    no recommended size, and nothing changes."""
    from mlx_lm.utils import maybe_set_recommended_wired_limit

    maybe_set_recommended_wired_limit()


class SeededSampler:
    """make_sampler's filters (in its order), then a draw with this choice's own key, split at each step. The
    key is made on the engine thread, at the first step."""

    def __init__(self, filters: list[Callable], temperature: float, seed: tuple[int, int]):
        self.filters, self.temperature, self.seed, self.key = filters, temperature, seed, None

    def __call__(self, logprobs: mx.array) -> mx.array:
        if self.key is None:
            number, choice = self.seed
            self.key = mx.random.split(mx.random.key(number % 2**64), choice + 1)[choice]
        for keep in self.filters:
            logprobs = keep(logprobs)
        self.key, now = mx.random.split(self.key)
        return mx.random.categorical(logprobs * (1 / self.temperature), key=now)


class Engine(Worker):
    def __init__(self, spec: ServeSpec, served: ServedModel, cache_bytes: int, disk: DiskCache | None = None):
        super().__init__(spec.queue_limit, f"engine {served.alias}")
        self.spec, self.served = spec, served
        self.model, self.tokenizer, config = load(served.folder, return_config=True)
        text_config = config.get("text_config", config)
        vocab = self.tokenizer.get_vocab()
        self.vocab_size = int(text_config.get("vocab_size") or len(vocab))
        own = int(text_config.get("max_position_embeddings") or 0)  # 0: unknown
        self.context = min(own or served.context, served.context or own)  # `serve --context` caps it
        self.eos = sorted(self.tokenizer.eos_token_ids)
        self.longest_token = max((len(t) for t in vocab), default=1)
        self.fim = next(
            ([vocab[p], vocab[s], vocab[m], end] for p, s, m, end in FIM if {p, s, m} <= vocab.keys()), None
        )  # this model's fill-in-the-middle tokens, if it has them
        # used by the engine thread alone
        self.kv_settings: dict = {"kv_bits": None}  # what the KV cache is made with: a disk cache's key holds it
        self._prompts = TieredPromptCache(
            LRUPromptCache(max_size=spec.prompt_caches, max_bytes=cache_bytes),
            disk,
            identity(served.folder, self.kv_settings) if disk else "",
            served.alias,
        )
        self.chunk = min(FIRST_CHUNK, spec.prefill_chunk)  # prompt tokens prefilled between two steps
        self.grammars: Any = None  # grammar.Grammars, made at the first structured answer
        self.kv = self._kv_bits(text_config)  # None: a 16-bit KV cache

    def _kv_bits(self, text_config: dict) -> kvcache.KVBits | None:
        """The quantized KV cache's settings, when kv_bits is set and this model's cache can be quantized."""
        if not self.served.kv_bits:
            return None
        heads = int(text_config.get("num_attention_heads") or 1)
        head_dim = int(text_config.get("head_dim") or int(text_config.get("hidden_size") or 0) // heads)
        why = kvcache.unsupported(self.model, head_dim, self.spec.kv.group_size)
        if why:
            log.info(
                "%s keeps a 16-bit KV cache (kv_bits %d is ignored): %s", self.served.alias, self.served.kv_bits, why
            )
            return None
        return kvcache.KVBits(self.served.kv_bits, self.spec.kv.group_size, self.spec.kv.start)

    def stop(self) -> None:
        """End the thread once nothing is queued or generating, wait for it, and give the model's memory back."""
        super().stop()
        self._prompts.close()
        self.model = None
        gc.collect()
        mx.clear_cache()

    def sampler(
        self, temperature: float, top_p: float, top_k: int, min_p: float, seed: tuple[int, int] | None = None
    ) -> Callable:
        """seed: (a request's seed, the choice's number): the choice draws from a random key of its own, so
        its answer repeats whatever else shares the batch."""
        if seed is None or temperature == 0:
            return make_sampler(temp=temperature, top_p=top_p, top_k=top_k, min_p=min_p)
        filters: list[Callable] = [
            f
            for f, on in [
                (functools.partial(apply_top_p, top_p=top_p), 0 < top_p < 1),
                (functools.partial(apply_min_p, min_p=min_p), min_p != 0),
                (functools.partial(apply_top_k, top_k=top_k), top_k > 0),
            ]
            if on
        ]
        return SeededSampler(filters, temperature, seed)

    def processors(
        self,
        logit_bias: dict[int, float] | None,
        presence: float | None,
        frequency: float | None,
        repetition: float | None,
    ) -> list:
        return make_logits_processors(
            logit_bias or None, repetition_penalty=repetition, presence_penalty=presence, frequency_penalty=frequency
        )

    def constraint(self, format: Format):
        """A structured answer's grammar, compiled before its jobs are submitted (a Problem if it cannot be)."""
        try:
            from .grammar import Grammars
        except ImportError:  # a venv installed before structured answers
            raise refuse(format.param, "this server's venv has no llguidance: run `invoke install`") from None
        if self.grammars is None:
            self.grammars = Grammars(self.tokenizer, self.vocab_size, self.eos)
        return self.grammars.compile(format)

    def constrained(self, compiled) -> Callable:
        """One job's processor that keeps its answer to the compiled grammar."""
        return self.grammars.processor(compiled)

    def _cached(self, prompt: list[int]) -> tuple[list | None, list[int]]:
        """The cache of the longest prompt seen that this one starts with, and the tokens it still needs
        (at least one)."""
        cache, rest = self._prompts.fetch_nearest_cache("model", prompt)
        if cache is not None and not rest:
            if not can_trim_prompt_cache(cache):
                return None, prompt
            trim_prompt_cache(cache, 1)
            rest = prompt[-1:]
        return cache, rest

    def detokenizer(self, continues: bool):
        """mlx_lm's streaming detokenizer drops a leading space at the start of a text; a completion's text
        does not start there, so it gets a text already begun (a placeholder its segments leave out)."""
        detokenizer = self.tokenizer.detokenizer
        if continues:
            try:
                detokenizer.text, detokenizer.offset = "\0", 1
            except AttributeError:  # the naive one: its text is the tokenizer's own decoding, spaces kept
                pass
        return detokenizer

    def _run(self) -> None:
        generator = BatchGenerator(
            self.model,
            completion_batch_size=self.spec.batch_size,
            prefill_batch_size=self.spec.batch_size,
            prefill_step_size=self.spec.prefill_chunk,
        )
        eos = StopSequences([(t,) for t in self.eos])
        waiting: list[Job] = []  # long prompts, prefilled here in arrival order
        active: dict[int, Job] = {}

        def join(job: Job) -> None:
            done = len(job.prompt) - len(job.todo)
            [job.uid] = generator.insert(
                [job.todo],
                max_tokens=[job.max_tokens],
                caches=[job.cache],
                all_tokens=[job.prompt[:done]],
                samplers=[job.sampler],
                logits_processors=[job.processors],
                stop_sequences=[eos],
            )
            job.cache, job.todo, active[job.uid] = None, [], job

        while True:
            if not active and not waiting and self.idle_and_stopping():
                return
            for job in self.arrived(idle=not active and not waiting):
                if job.cancelled:  # its client left before it began
                    self.finish(job, "cancelled")
                    continue
                job.detokenizer = self.detokenizer(job.continues)
                job.cache, job.todo = self._cached(job.prompt)
                if self.kv:  # the generator batches these into a quantized batch cache
                    job.cache = kvcache.stream_cache(self.model, self.kv, job.cache)
                job.cached = len(job.prompt) - len(job.todo)
                if len(job.todo) > max(self.chunk, BATCHED_PROMPT):
                    job.cache = job.cache or make_prompt_cache(self.model)
                    waiting.append(job)
                else:
                    join(job)
            for job in [job for job in waiting if job.cancelled]:
                waiting.remove(job)
                self.finish(job, "cancelled")
            gone = [uid for uid, job in active.items() if job.cancelled]
            if gone:
                generator.remove(gone)
                for uid in gone:
                    self.finish(active.pop(uid), "cancelled")
            if waiting and all(job.tokens for job in active.values()):
                nearest = min(waiting, key=lambda job: len(job.todo))  # a short prompt does not wait for a long one
                self._prefill(nearest, generator.stream)
                if len(nearest.todo) == 1:
                    waiting.remove(nearest)
                    join(nearest)
            if active:
                _, responses = generator.next()
                for response in responses:
                    job = active[response.uid]
                    if response.prompt_cache is not None:  # a finished one: the next turn of its chat starts here
                        self._prompts.insert_cache("model", response.all_tokens, response.prompt_cache)
                    text, finish = job.take(response.token, response.finish_reason)
                    if text:
                        self.outbox.add(job, "text", text)
                    if finish is not None:
                        self.finish(active.pop(response.uid), finish)
                        if response.finish_reason is None:  # a stop string: the generator goes on without it
                            generator.remove([response.uid])
            self.outbox.flush()

    def _prefill(self, job: Job, stream) -> None:
        """One chunk of a long prompt into its cache (its last token is left for the generator), and the next
        chunk's size from this one's time: the largest power of two that takes PREFILL_SLICE_S or less,
        so that a GPU compiles its kernels for few shapes."""
        size = min(self.chunk, len(job.todo) - 1)
        part, job.todo = job.todo[:size], job.todo[size:]
        started = time.perf_counter()
        cache = job.cache or []  # a long prompt's cache is made when it starts waiting
        with mx.stream(stream):
            self.model(mx.array(part)[None], cache=cache)
            mx.eval([c.state for c in cache])
        seconds = time.perf_counter() - started
        mx.clear_cache()
        if size == self.chunk:  # a full chunk measures the rate
            fits = size * PREFILL_SLICE_S / max(seconds, 1e-6)
            self.chunk = max(1, min(self.spec.prefill_chunk, 1 << max(0, round(fits).bit_length() - 1)))
