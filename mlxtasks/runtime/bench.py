"""`invoke bench`'s measurements, run by the venv's Python; prints one JSON object on stdout.

    python -m mlxtasks.runtime.bench --spec '{"models": [{"alias": "qwen7b", "path": "/.../qwen25-coder-7b"}],
        "prompt_tokens": [128, 1024], "generation_tokens": 256, "runs": 3, "warmup": 1}'

Per model: the load time, then for each prompt length warm-up runs and timed runs through mlx_lm's
stream_generate. Token counts are mlx_lm's own (every GenerationResponse counted); end of sequence is
ignored, as in mlx_lm's benchmark, so every run generates the same number of tokens. Progress on stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import version

from .. import bench
from ..facts import GB, probe
from . import gpu


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def backend() -> str:
    import mlx.core as mx

    if mx.metal.is_available():
        return "metal"
    return "cuda" if mx.cuda.is_available() else "cpu"


def machine() -> dict:
    import mlx.core as mx

    host = probe()
    return {"chip": host.chip, "ram_gb": round(host.ram_total / GB, 1), "os": host.os, "os_version": host.os_version,
            "arch": host.machine, "backend": backend(), "device": str(mx.default_device()),
            "device_name": mx.device_info().get("device_name"), "mlx": version("mlx"), "mlx_lm": version("mlx-lm"),
            "python": platform.python_version()}


class Bench:
    def __init__(self, settings: dict):
        from mlx_lm.sample_utils import make_sampler

        self.settings = settings
        self.sampler = make_sampler(0.0)  # greedy: speed does not depend on sampling, results repeat

    def prompt(self, tokenizer, run: int, length: int) -> list[int]:
        ids = tokenizer.encode(bench.prompt_text(run, length), add_special_tokens=False)[:length]
        if len(ids) < length:
            raise RuntimeError(f"the prompt text made only {len(ids)} of {length} tokens")
        return ids

    def measure(self, model, tokenizer, ids: list[int]) -> dict:
        import mlx.core as mx
        from mlx_lm import stream_generate

        gpu.before_generation(say)
        mx.reset_peak_memory()
        count, first, last = 0, None, None
        start = time.perf_counter()
        for last in stream_generate(model, tokenizer, ids, max_tokens=self.settings["generation_tokens"],
                                    sampler=self.sampler):
            count += 1
            now = time.perf_counter()
            first = first or now
        if last is None or count != last.generation_tokens:
            raise RuntimeError(f"mlx_lm said {last and last.generation_tokens} tokens but yielded {count}")
        return bench.mlx_run(last.prompt_tokens, count, first - start, now - first, last.peak_memory)

    def model(self, alias: str, path: str) -> tuple[dict, dict]:
        """The model's result, and the prompts' texts (for Ollama) by length."""
        from mlx_lm import load

        say(f"{alias}: loading {path}")
        start = time.perf_counter()
        model, tokenizer = load(path)
        load_s = time.perf_counter() - start
        tokenizer.eos_token_ids = set()  # never stop early: every run generates the same count
        s = self.settings
        runs, prompts = {}, {}
        for length in s["prompt_tokens"]:
            for warm in range(s["warmup"]):
                say(f"{alias}: prompt of {length} tokens: warm-up {warm + 1}/{s['warmup']}")
                self.measure(model, tokenizer, self.prompt(tokenizer, 0, length))
            runs[length], prompts[length] = [], []
            for run in range(1, s["runs"] + 1):
                say(f"{alias}: prompt of {length} tokens: run {run}/{s['runs']}")
                ids = self.prompt(tokenizer, run, length)
                runs[length].append(self.measure(model, tokenizer, ids))
                prompts[length].append(tokenizer.decode(ids))
        result = {"alias": alias, "engine": "mlx", "name": path, "load_s": load_s, "lengths": bench.by_length(runs)}
        return result, prompts


def run(spec: dict) -> dict:
    import mlx.core as mx

    mx.random.seed(0)
    settings = {key: spec[key] for key in ("prompt_tokens", "generation_tokens", "runs", "warmup")}
    measure = Bench(settings)
    results, prompts, failed = [], {}, []
    for entry in spec["models"]:
        try:
            result, prompts[entry["alias"]] = measure.model(entry["alias"], entry["path"])
            results.append(result)
        except Exception as exc:  # noqa: BLE001 - one model that fails to load or run is that model's answer
            failed.append({"alias": entry["alias"], "reason": f"{exc.__class__.__name__}: {exc}"})
        gc.collect()
        mx.clear_cache()  # the next model starts with the memory this one held
    return {"schema": bench.SCHEMA, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "settings": settings, "results": results, "failed": failed, "prompts": prompts}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True, help="JSON: models [{alias, path}], prompt_tokens, generation_tokens, "
                                                      "runs, warmup")
    args = parser.parse_args()
    print(json.dumps(run(json.loads(args.spec))))


if __name__ == "__main__":
    main()
