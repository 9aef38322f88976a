"""Structured answers, constrained token by token with llguidance (docs/serve.md says why it, and what it costs):
a request's Format (any JSON object, JSON matching a schema, or a call of one of its tools in the model's
tool-call syntax) becomes a grammar, compiled and checked before the request's jobs are submitted; each job then
gets a matcher of its own inside a logits processor, which masks every token the grammar does not allow and
follows the tokens sampled. Once the grammar is complete only the end-of-sequence tokens are allowed, so the
answer ends as any other does ("stop"). Imported by engine.py alone: it masks MLX arrays."""

from __future__ import annotations

import json
import threading

import llguidance
import llguidance.hf
import mlx.core as mx
import numpy as np

from .problems import cannot, invalid
from .request import Format

# JSON as models mostly write it (", " and ": "), and no whitespace elsewhere: a model that may write newlines
# between items could write them forever.
JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
HERMES = "mlx_lm.tool_parsers.json_tools"  # the parser of calls written as JSON between markers (Qwen, Hermes)
LONGEST_REASON = 300  # characters of llguidance's reason kept in a refusal


class Grammars:
    """One model's grammars: its vocabulary as llguidance reads it, made at the first structured request (0.6 s
    for 49k tokens, 3.6 s for 152k on a slow CPU) and kept, and each Format compiled into a matcher."""

    def __init__(self, tokenizer, vocab_size: int, eos: list[int]):
        self.tokenizer, self.vocab_size, self.eos = tokenizer, vocab_size, eos
        self._vocabulary: llguidance.LLTokenizer | None = None
        self._lock = threading.Lock()

    def vocabulary(self) -> llguidance.LLTokenizer:
        with self._lock:
            if self._vocabulary is None:
                self._vocabulary = llguidance.hf.from_tokenizer(
                    self.tokenizer._tokenizer, n_vocab=self.vocab_size, eos_token=self.eos
                )
            return self._vocabulary

    def compile(self, format: Format) -> llguidance.LLMatcher:
        """A matcher at the answer's start, which each job copies; a Problem naming format.param if the format
        cannot be compiled."""
        if format.tools is not None:
            for tool in format.tools:  # each alone first, so that a refusal names the tool
                function = tool["function"]
                self.matcher(
                    json_grammar(function.get("parameters") or {"type": "object"}, format.param), format.param, function
                )
            return self.matcher(self.tool_call(format), format.param)
        schema = {"type": "object"} if format.schema is None else format.schema
        return self.matcher(json_grammar(schema, format.param), format.param)

    def matcher(self, grammar: str, param: str, function: dict | None = None) -> llguidance.LLMatcher:
        try:
            vocabulary = self.vocabulary()
        except ValueError:  # llguidance reads Hugging Face's fast tokenizers only
            raise cannot(param, "this model's tokenizer is not one the grammar engine can read") from None
        matcher = llguidance.LLMatcher(vocabulary, grammar, log_level=0)
        if matcher.is_error():
            reason = " ".join(matcher.get_error().split())[:LONGEST_REASON]
            what = f"the parameters of tool {function['name']!r}" if function else "this schema"
            raise invalid(param, f"{what} cannot constrain an answer: {reason}", code="invalid_schema")
        return matcher

    def tool_call(self, format: Format) -> str:
        """One call of one of format.tools, JSON between the model's markers as its chat template shows it:
        <tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>."""
        tokenizer = self.tokenizer
        if not tokenizer.has_tool_calling or getattr(tokenizer.tool_parser, "__module__", "") != HERMES:
            raise cannot(
                format.param,
                "a required tool call needs a model that writes its calls as JSON between markers "
                "(such as Qwen's <tool_call>); use tool_choice auto with this one",
            )
        calls = [
            {
                "type": "object",
                "properties": {
                    "name": {"const": function["name"]},
                    "arguments": function.get("parameters") or {"type": "object"},
                },
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for function in (tool["function"] for tool in format.tools or [])
        ]
        schema = {"x-guidance": JSON_OPTIONS, **(calls[0] if len(calls) == 1 else {"anyOf": calls})}
        start, end = self.marker(tokenizer.tool_call_start), self.marker(tokenizer.tool_call_end)
        return llguidance.LLMatcher.grammar_from_lark(
            f'start: {start} "\\n" call "\\n" {end}\ncall: %json {json.dumps(schema)}\n'
        )

    def marker(self, text: str) -> str:
        """A tool-call marker in the grammar: the model's own token where the marker is one, else its text."""
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        return f"<[{ids[0]}]>" if len(ids) == 1 else json.dumps(text)

    def processor(self, matcher: llguidance.LLMatcher) -> Constrained:
        return Constrained(matcher.deep_copy(), self.vocab_size, self.eos)


def json_grammar(schema: dict, param: str) -> str:
    try:
        return llguidance.LLMatcher.grammar_from_json_schema(schema, overrides=JSON_OPTIONS)  # type: ignore[arg-type]
    except ValueError as exc:
        raise invalid(param, f"this schema cannot constrain an answer: {exc}", code="invalid_schema") from None


class Constrained:
    """One job's logits processor ((tokens, logits) -> logits, as mlx_lm's generator calls it): every token the
    grammar does not allow is masked out. The first call comes with the prompt's last token; each later one with
    the token sampled last, which the matcher takes first: the one wait for the device in a step, after which
    the mask is computed while the model's step runs. A matcher that fails (it should not: only allowed
    tokens are sampled) leaves the end of the turn alone allowed."""

    def __init__(self, matcher: llguidance.LLMatcher, vocab_size: int, eos: list[int]):
        self.matcher, self.vocab_size, self.eos, self.started = matcher, vocab_size, eos, False
        self.bits = np.zeros((vocab_size + 31) // 32, dtype=np.int32)

    def __call__(self, tokens: mx.array, logits: mx.array) -> mx.array:
        mx.async_eval(logits)  # first: the model's step is queued behind the last token, and runs during the mask
        if self.started:
            self.matcher.consume_token(int(tokens[-1].item()))
        self.started = True
        if self.matcher.is_error():
            allowed = np.zeros(self.vocab_size, dtype=np.bool_)
            allowed[self.eos] = True
        else:
            self.matcher.unsafe_compute_mask_ptr(self.bits.ctypes.data, self.bits.nbytes)
            allowed = np.unpackbits(self.bits.view(np.uint8), count=self.vocab_size, bitorder="little").astype(np.bool_)
        return mx.where(mx.array(allowed), logits, -mx.inf)
