"""Tool calls in a model's answer, for every API: the text is split into content and calls at the model's
markers (mlx_lm's tool_call_start and tool_call_end), each call read by mlx_lm's parser for the model."""

from __future__ import annotations

import json
import uuid

from .jobs import split_at_stop
from .problems import invalid


class ToolCalls:
    """One choice's text as it arrives. A call that does not parse (say, one cut off by max_tokens) stays in the
    content, markers and all. Calls come back in OpenAI's shape: {"id", "type": "function", "function": {"name",
    "arguments": a JSON string}}."""

    def __init__(self, tokenizer, tools: list[dict]):
        self.start, self.end, self.parser, self.tools = (
            tokenizer.tool_call_start,
            tokenizer.tool_call_end,
            tokenizer.tool_parser,
            tools,
        )
        self.held, self.inside, self.count = "", False, 0

    def feed(self, text: str) -> tuple[str, list[dict]]:
        """(content to send now, the calls this text completed)."""
        self.held += text
        content, calls = "", list[dict]()
        while True:
            if not self.inside:
                at = self.held.find(self.start)
                if at < 0:
                    now, self.held, _ = split_at_stop(self.held, [self.start])  # it may end in a marker's start
                    return content + now, calls
                content, self.held, self.inside = content + self.held[:at], self.held[at + len(self.start) :], True
            at = self.held.find(self.end) if self.end else -1  # no end marker: a call runs to the answer's end
            if at < 0:
                return content, calls
            unparsed, found = self.parse(self.held[:at])
            content, calls = content + (unparsed + self.end if unparsed else ""), calls + found
            self.held, self.inside = self.held[at + len(self.end) :], False

    def finish(self) -> tuple[str, list[dict]]:
        """At the answer's end: the text held back, and a call still open."""
        held, inside, self.held, self.inside = self.held, self.inside, "", False
        return self.parse(held) if inside else (held, [])

    def parse(self, text: str) -> tuple[str, list[dict]]:
        """("", the calls in one call's text) or, if it does not parse, (the text with its start marker, [])."""
        try:
            parsed = self.parser(text, self.tools)
            calls = [
                {
                    "id": one.get("id") or f"call_{uuid.uuid4().hex[:24]}",
                    "type": "function",
                    "function": {
                        "name": one["name"],
                        "arguments": one["arguments"]
                        if isinstance(one["arguments"], str)
                        else json.dumps(one["arguments"], ensure_ascii=False),
                    },
                }
                for one in (parsed if isinstance(parsed, list) else [parsed])
            ]
        except Exception:  # the model wrote something its parser cannot read: it stays text
            return self.start + text, []
        self.count += len(calls)
        return "", calls


def arguments_object(arguments: str | dict, param: str) -> dict:
    """A tool call's arguments sent back to the model (a JSON object, or a string holding one), as an object."""
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise invalid(param, "a tool call's arguments must be a JSON object.")
    return parsed


def arguments_input(call: dict) -> dict:
    """A parsed call's arguments as an object (Anthropic's tool_use input); {} where the model wrote no object."""
    try:
        given = json.loads(call["function"]["arguments"])
    except ValueError:
        given = None
    return given if isinstance(given, dict) else {}
