"""Which grammar engine constrains the server's structured answers: llguidance, xgrammar and outlines-core,
measured on one machine with one tokenizer. For each: the time to make its tokenizer index (once per model),
to compile a nested JSON schema (once per request), and the mean cost of one token's mask (compute it, then
advance by the token) along a valid answer's tokens. Run with a Python that has the engines and transformers:

    python benchmarks/grammar_engines.py TOKENIZER_FOLDER [--grow 151646]

--grow adds made-up tokens (pairs of the tokenizer's own) up to that vocabulary size: a Qwen-size vocabulary
from a small tokenizer. An engine that is not installed is left out. Prints one JSON object per engine."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "role": {"enum": ["admin", "editor", "viewer"]},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["city"],
        },
        "tags": {"type": "array", "items": {"type": "string"}},
        "scores": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"subject": {"type": "string"}, "value": {"type": "number"}},
                "required": ["subject", "value"],
            },
        },
    },
    "required": ["name", "age", "role", "address", "tags"],
}
ANSWER = {
    "name": "Ada Lovelace",
    "age": 36,
    "role": "admin",
    "address": {"city": "London", "zip": "W1"},
    "tags": ["math", "engines", "poetry"],
    "scores": [{"subject": "analysis", "value": 9.5}, {"subject": "notes", "value": 10}],
}


def grown(folder: str, size: int) -> str:
    """A copy of the tokenizer with made-up tokens (joined pairs of its own) up to `size`."""
    data = json.loads((Path(folder) / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    words = [w for w in vocab if len(w) > 1]
    pick = random.Random(0)
    while len(vocab) + len(data.get("added_tokens", [])) < size:
        word = pick.choice(words) + pick.choice(words)
        vocab.setdefault(word, len(vocab))
    out = Path(tempfile.mkdtemp(prefix="grown-tokenizer-"))
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (Path(folder) / name).exists():
            (out / name).write_text((Path(folder) / name).read_text())
    for token in data.get("added_tokens", []):  # added tokens keep their ids above the grown vocabulary
        token["id"] = len(vocab) + data["added_tokens"].index(token)
    config = json.loads((out / "tokenizer_config.json").read_text())
    config["added_tokens_decoder"] = {str(t["id"]): t for t in data.get("added_tokens", [])}
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    (out / "tokenizer.json").write_text(json.dumps(data))
    return str(out)


def timed(make):
    started = time.perf_counter()
    made = make()
    return made, time.perf_counter() - started


def walk(tokens: list[int], mask_then_take) -> float:
    """Mean seconds of one step (mask, then advance by the answer's next token)."""
    times = []
    for token in tokens:
        started = time.perf_counter()
        mask_then_take(token)
        times.append(time.perf_counter() - started)
    return statistics.mean(times)


def llguidance_figures(tok, tokens: list[int]) -> dict:
    import llguidance
    import llguidance.hf
    import llguidance.numpy

    lltok, index_s = timed(lambda: llguidance.hf.from_tokenizer(tok, n_vocab=len(tok)))

    def compile_one():
        matcher = llguidance.LLMatcher(lltok, llguidance.LLMatcher.grammar_from_json_schema(SCHEMA))
        assert not matcher.is_error(), matcher.get_error()
        return matcher

    compile_one()  # the first builds the engine's caches
    matcher, compile_s = timed(compile_one)
    mask = llguidance.numpy.allocate_token_bitmask(1, lltok.vocab_size)

    def step(token):
        llguidance.numpy.fill_next_token_bitmask(matcher, mask, 0)
        assert (mask[0, token // 32] >> (token % 32)) & 1, tok.decode([token])
        assert matcher.consume_token(token), matcher.get_error()

    return {"index_s": index_s, "compile_s": compile_s, "mask_ms": walk(tokens, step) * 1e3}


def xgrammar_figures(tok, tokens: list[int]) -> dict:
    import xgrammar

    info, index_s = timed(lambda: xgrammar.TokenizerInfo.from_huggingface(tok, vocab_size=len(tok)))
    compiler = xgrammar.GrammarCompiler(info, cache_enabled=False)
    compiler.compile_json_schema(json.dumps(SCHEMA), any_whitespace=False)
    compiled, compile_s = timed(lambda: compiler.compile_json_schema(json.dumps(SCHEMA), any_whitespace=False))
    matcher = xgrammar.GrammarMatcher(compiled)
    mask = xgrammar.allocate_token_bitmask(1, info.vocab_size)

    def step(token):
        matcher.fill_next_token_bitmask(mask)
        assert matcher.accept_token(token), tok.decode([token])

    return {"index_s": index_s, "compile_s": compile_s, "mask_ms": walk(tokens, step) * 1e3}


def outlines_figures(tok, tokens: list[int]) -> dict:
    import numpy as np
    import outlines_core
    from outlines_core.json_schema import build_regex_from_schema

    def vocabulary():
        decode = {c: b for b, c in byte_level().items()}
        special = set(tok.all_special_ids)
        words: dict[bytes, list[int]] = {}
        for word, ident in tok.get_vocab().items():
            if ident not in special:
                words.setdefault(bytes(decode.get(c, 0) for c in word), []).append(ident)
        return outlines_core.Vocabulary(tok.eos_token_id, words)

    vocab, index_s = timed(vocabulary)
    regex = build_regex_from_schema(json.dumps(SCHEMA))
    index, compile_s = timed(lambda: outlines_core.Index(regex, vocab))
    guide = outlines_core.Guide(index)
    mask = np.zeros((len(tok) + 31) // 32, dtype=np.int32)

    def step(token):
        guide.write_mask_into(mask.ctypes.data, mask.size, 4)
        guide.advance(token)

    return {"index_s": index_s, "compile_s": compile_s, "mask_ms": walk(tokens, step) * 1e3}


def byte_level() -> dict[int, str]:
    """GPT-2's byte-to-character table, which byte-level BPE vocabularies are written in."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--grow", type=int, default=0)
    parser.add_argument("--engines", default="llguidance,xgrammar,outlines-core")
    args = parser.parse_args()
    from transformers import AutoTokenizer

    folder = grown(args.folder, args.grow) if args.grow else args.folder
    tok = AutoTokenizer.from_pretrained(folder)
    tokens = tok.encode(json.dumps(ANSWER), add_special_tokens=False)
    runs = {"llguidance": llguidance_figures, "xgrammar": xgrammar_figures, "outlines-core": outlines_figures}
    for name in args.engines.split(","):
        try:
            figures = runs[name](tok, tokens)
        except ImportError as exc:
            figures = {"missing": str(exc)}
        print(json.dumps({"engine": name, "vocab": len(tok), "answer_tokens": len(tokens), **figures}), flush=True)


if __name__ == "__main__":
    main()
