"""`invoke bench`'s measurements, run by the venv's Python; prints a protocol.BenchAnswer on stdout.

    python -m mlxtasks.runtime.bench --spec '{"models": [{"alias": "qwen7b", "path": "/.../qwen25-coder-7b"}],
        "prompt_tokens": [128, 1024], "generation_tokens": 256, "runs": 3, "warmup": 1}'

Per model: the load time, then for each prompt length warm-up runs and timed runs through mlx_lm's
stream_generate. Token counts are mlx_lm's own (every GenerationResponse counted); end of sequence is
ignored, as in mlx_lm's benchmark, so every run generates the same number of tokens. Progress on stderr.
The raw times come back; the tool side derives the rates and summaries (bench.py).
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version

from ..protocol import BenchAnswer, BenchLength, BenchMachine, BenchResult, BenchRun, BenchSpec, prompt_text
from . import gpu


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def backend() -> str:
    import mlx.core as mx

    if mx.metal.is_available():
        return "metal"
    return "cuda" if mx.cuda.is_available() else "cpu"


def machine() -> BenchMachine:
    import mlx.core as mx

    return BenchMachine(
        backend(),
        str(mx.default_device()),
        mx.device_info().get("device_name"),
        version("mlx"),
        version("mlx-lm"),
        platform.python_version(),
    )


class Bench:
    def __init__(self, spec: BenchSpec):
        from mlx_lm.sample_utils import make_sampler

        self.spec = spec
        self.sampler = make_sampler(0.0)  # greedy: speed does not depend on sampling, results repeat

    def prompt(self, tokenizer, run: int, length: int) -> list[int]:
        ids = tokenizer.encode(prompt_text(run, length), add_special_tokens=False)[:length]
        if len(ids) < length:
            raise RuntimeError(f"the prompt text made only {len(ids)} of {length} tokens")
        return ids

    def measure(self, model, tokenizer, ids: list[int]) -> BenchRun:
        import mlx.core as mx
        from mlx_lm import stream_generate

        gpu.before_generation(say)
        mx.reset_peak_memory()
        count, first, last = 0, None, None
        start = time.perf_counter()
        for last in stream_generate(
            model, tokenizer, ids, max_tokens=self.spec.generation_tokens, sampler=self.sampler
        ):
            count += 1
            now = time.perf_counter()
            first = first or now
        if last is None or count != last.generation_tokens:
            raise RuntimeError(f"mlx_lm said {last and last.generation_tokens} tokens but yielded {count}")
        assert first is not None  # count > 0
        return BenchRun(last.prompt_tokens, count, first - start, now - first, last.peak_memory)

    def model(self, alias: str, path: str) -> BenchResult:
        from mlx_lm import load

        say(f"{alias}: loading {path}")
        start = time.perf_counter()
        model, tokenizer = load(path)
        load_s = time.perf_counter() - start
        tokenizer.eos_token_ids = set()  # never stop early: every run generates the same count
        s = self.spec
        lengths = []
        for length in s.prompt_tokens:
            for warm in range(s.warmup):
                say(f"{alias}: prompt of {length} tokens: warm-up {warm + 1}/{s.warmup}")
                self.measure(model, tokenizer, self.prompt(tokenizer, 0, length))
            runs, prompts = [], []
            for run in range(1, s.runs + 1):
                say(f"{alias}: prompt of {length} tokens: run {run}/{s.runs}")
                ids = self.prompt(tokenizer, run, length)
                runs.append(self.measure(model, tokenizer, ids))
                prompts.append(tokenizer.decode(ids))
            lengths.append(BenchLength(length, tuple(runs), tuple(prompts)))
        return BenchResult(alias, path, load_s, tuple(lengths))


def run(spec: BenchSpec) -> BenchAnswer:
    import mlx.core as mx

    mx.random.seed(0)
    measure = Bench(spec)
    results, failed = [], {}
    for entry in spec.models:
        try:
            results.append(measure.model(entry.alias, entry.path))
        except Exception as exc:  # noqa: BLE001 - one model that fails to load or run is that model's answer
            failed[entry.alias] = f"{exc.__class__.__name__}: {exc}"
        gc.collect()
        mx.clear_cache()  # the next model starts with the memory this one held
    return BenchAnswer(datetime.now(UTC).isoformat(timespec="seconds"), machine(), tuple(results), failed)


def main() -> None:
    gpu.use_kernel_cache()
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True, help="JSON: a protocol.BenchSpec")
    args = parser.parse_args()
    print(run(BenchSpec.from_json(args.spec)).to_json())


if __name__ == "__main__":
    main()
