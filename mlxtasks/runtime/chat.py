"""Chat and one-shot answers over mlx_lm's API, run by the venv's Python.

    python -m mlxtasks.runtime.chat --spec JSON             # interactive session
    python -m mlxtasks.runtime.chat --spec JSON --ask TEXT  # one answer on stdout ("-": read stdin)

The tool side passes the models (alias -> folder and default sampling) and the settings as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from . import gpu

HELP = """Commands:
  /help                       this list
  /reset                      forget the conversation (the system prompt stays)
  /system TEXT                set the system prompt (and start over)
  /set temp|top_p|max_tokens VALUE
  /model ALIAS                switch model; the conversation is kept and re-read by the new model
  /save [FILE] [--json]       write the transcript as Markdown (or JSON)
  /stats                      speed and memory of the last reply
  /quit                       leave (Ctrl-D too)
Ctrl-C stops a reply. Multi-line input: start and end it with a line of three double quotes.
Pasted text with several lines is sent as one message."""
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
DIM, RESET = "\x1b[2m", "\x1b[0m"
SETTABLE = {"temp": float, "top_p": float, "max_tokens": int}


@dataclass
class Stats:
    prompt_tokens: int = 0
    prompt_tps: float = 0.0
    generation_tokens: int = 0
    generation_tps: float = 0.0
    first_token_seconds: float = 0.0
    peak_memory_gb: float = 0.0

    def lines(self) -> str:
        return (f"prompt: {self.prompt_tokens} tokens at {self.prompt_tps:.1f} tokens/s; "
                f"reply: {self.generation_tokens} tokens at {self.generation_tps:.1f} tokens/s; "
                f"first token after {self.first_token_seconds:.2f} s; peak memory {self.peak_memory_gb:.2f} GB")


@dataclass
class Session:
    """A conversation with one loaded model; the KV cache is reused across turns."""

    models: dict  # alias -> {"path", "sampling": the model's defaults}
    alias: str | None  # None: the router picks one for the first message
    overrides: dict  # sampling given by flags or /set; they win over each model's defaults
    system: str | None = None
    messages: list = field(default_factory=list)
    stats: Stats | None = None
    notices: list = field(default_factory=list)
    sampling: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.alias:
            self.sampling = {**self.models[self.alias]["sampling"], **self.overrides}

    def load(self, alias: str) -> None:
        from mlx_lm.models.cache import make_prompt_cache

        self.model, self.tokenizer = self.open_model(self.models[alias]["path"])
        self.alias = alias
        self.sampling = {**self.models[alias]["sampling"], **self.overrides}
        self.cache = make_prompt_cache(self.model)
        self.cached: list[int] = []  # the tokens the cache holds
        config = json.loads((Path(self.models[alias]["path"]) / "config.json").read_text())
        self.context = int(config.get("max_position_embeddings") or 4096)

    def open_model(self, path: str):
        """(model, tokenizer) from a model folder; a sharded session loads its part instead."""
        from mlx_lm import load

        return load(path)

    def conversation(self) -> list[dict]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + self.messages

    def prompt_tokens(self) -> list[int]:
        """The whole conversation as the chat template renders it; oldest turns dropped to fit."""
        while True:
            tokens = list(self.tokenizer.apply_chat_template(self.conversation(), add_generation_prompt=True))
            if len(tokens) + self.sampling["max_tokens"] <= self.context or len(self.messages) <= 1:
                return tokens
            del self.messages[:2]
            self.notices.append("(the oldest turn was dropped to fit the model's context)")

    def reply(self, text: str, write) -> str:
        """Add the user's message, stream the answer through write(chunk), keep it in the conversation."""
        from mlx_lm import stream_generate
        from mlx_lm.models.cache import can_trim_prompt_cache, trim_prompt_cache
        from mlx_lm.sample_utils import make_sampler

        self.messages.append({"role": "user", "content": text})
        tokens = self.prompt_tokens()
        common = _common_prefix(self.cached, tokens)
        if common == len(tokens):  # always feed at least one token
            common -= 1
        if can_trim_prompt_cache(self.cache) and len(self.cached) > common:
            trim_prompt_cache(self.cache, len(self.cached) - common)
        elif len(self.cached) > common:
            from mlx_lm.models.cache import make_prompt_cache

            self.cache, common = make_prompt_cache(self.model), 0
        sampler = make_sampler(self.sampling["temp"], self.sampling["top_p"])
        gpu.before_generation()
        answer, generated, last, start, first = [], [], None, time.perf_counter(), None
        try:
            for last in stream_generate(self.model, self.tokenizer, tokens[common:], max_tokens=self.sampling["max_tokens"],
                                        sampler=sampler, prompt_cache=self.cache):
                first = first or time.perf_counter() - start
                generated.append(last.token)
                answer.append(last.text)
                write(last.text)
        finally:
            # Whatever happened (Ctrl-C included), the cache now holds these tokens.
            self.cached = (tokens + generated)[: self.cache[0].offset]
            self.messages.append({"role": "assistant", "content": "".join(answer)})
            if last is not None:
                self.stats = Stats(last.prompt_tokens, last.prompt_tps, last.generation_tokens, last.generation_tps,
                                   first or 0.0, last.peak_memory)
        return "".join(answer)

    def reset(self) -> None:
        self.messages.clear()

    def transcript(self, as_json: bool) -> str:
        if as_json:
            return json.dumps({"model": self.alias, "sampling": self.sampling, "messages": self.conversation()}, indent=2)
        parts = [f"# Chat with {self.alias}", ""]
        for message in self.conversation():
            parts += [f"## {dict(system='System', user='You', assistant=self.alias)[message['role']]}", "",
                      message["content"], ""]
        return "\n".join(parts)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class Output:
    """Writes replies, dimming reasoning models' thinking sections on a terminal."""

    def __init__(self, stream=sys.stdout):
        self.stream = stream
        self.colour = stream.isatty() and "NO_COLOR" not in os.environ
        self.thinking = False

    def write(self, text: str) -> None:
        if self.colour:
            text = text.replace(THINK_OPEN, DIM + THINK_OPEN).replace(THINK_CLOSE, THINK_CLOSE + RESET)
        self.stream.write(text)
        self.stream.flush()

    def end(self) -> None:
        self.write(RESET + "\n" if self.colour else "\n")


def command(session: Session, line: str, say) -> bool:
    """Run a /command; False means leave."""
    name, _, rest = line[1:].partition(" ")
    rest = rest.strip()
    if name in ("quit", "exit", "q"):
        return False
    if name == "help":
        say(HELP)
    elif name == "reset":
        session.reset()
        say("(conversation cleared)")
    elif name == "system":
        session.system = rest or None
        session.reset()
        say(f"(system prompt {'set' if rest else 'removed'}; conversation cleared)")
    elif name == "set":
        key, _, value = rest.partition(" ")
        try:
            session.sampling[key] = session.overrides[key] = SETTABLE[key](value)
            say(f"({key} = {session.sampling[key]})")
        except (KeyError, ValueError):
            say("usage: /set temp|top_p|max_tokens VALUE")
    elif name == "model":
        if rest not in session.models:
            say(f"(no installed model {rest!r}; installed: {', '.join(session.models)})")
        else:
            session.load(rest)
            say(f"(now {rest}; the conversation is kept; sampling {_sampling_text(session)})")
    elif name == "save":
        words = rest.split()
        as_json = "--json" in words
        names = [w for w in words if w != "--json"]
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path(names[0] if names else f"chat-{session.alias}-{stamp}.{'json' if as_json else 'md'}")
        path.write_text(session.transcript(as_json))
        say(f"(saved to {path.resolve()})")
    elif name == "stats":
        say(session.stats.lines() if session.stats else "(no reply yet)")
    else:
        say(f"(unknown command /{name}; /help lists them)")
    return True


def _sampling_text(session: Session) -> str:
    s = session.sampling
    return f"temp {s['temp']}, top_p {s['top_p']}, max_tokens {s['max_tokens']}"


def read_message(prompt: str) -> str:
    """One message: a line, a \"\"\" block, or a paste of several lines (sent together)."""
    line = input(prompt)
    if line.strip() == '"""':
        lines = []
        while (more := input("... ")).strip() != '"""':
            lines.append(more)
        return "\n".join(lines)
    lines = [line]
    while select.select([sys.stdin], [], [], 0.05)[0]:  # the rest of a paste is already waiting
        lines.append(sys.stdin.readline().rstrip("\n"))
    return "\n".join(lines)


def interactive(session: Session, history: Path | None, rules: dict | None = None) -> int:
    try:
        import readline
    except ImportError:  # no line editing on this Python; everything else works
        readline = None
    if readline and history:
        history.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            readline.read_history_file(history)
    out = Output()
    if session.alias:
        print(f"Chatting with {session.alias} ({_sampling_text(session)}). /help for commands, Ctrl-D to leave.", flush=True)
    else:
        print("The router picks the model for your first message. /help for commands, Ctrl-D to leave.", flush=True)
    try:
        while True:
            try:
                text = read_message(">>> ")
            except KeyboardInterrupt:
                print()
                continue
            except EOFError:
                print()
                return 0
            if not text.strip():
                continue
            if text.startswith("/"):
                if not command(session, text.strip(), lambda s: print(s, flush=True)):
                    return 0
                continue
            if not session.alias:
                from ..router import route

                choice = route(text, set(session.models), rules)
                print(f"(using {choice.alias}: {choice.reason})", flush=True)
                session.load(choice.alias)
            try:
                session.reply(text, out.write)
            except KeyboardInterrupt:
                out.write(" [stopped]")
            out.end()
            for notice in session.notices:
                print(notice, flush=True)
            session.notices.clear()
    finally:
        if readline and history:
            with contextlib.suppress(OSError):
                readline.write_history_file(history)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True, help="JSON: models, alias, sampling, system, seed, history")
    parser.add_argument("--ask", help="answer this prompt and exit ('-' reads stdin)")
    parser.add_argument("--verbose", action="store_true", help="with --ask: the answer's speed and memory on stderr")
    args = parser.parse_args()
    spec = json.loads(args.spec)
    import mlx.core as mx

    mx.random.seed(spec.get("seed") or 0)
    session = Session(spec["models"], spec["alias"], spec["overrides"], spec.get("system"))
    if args.ask is not None:
        text = sys.stdin.read() if args.ask == "-" else args.ask
        session.load(spec["alias"])
        out = Output()
        session.reply(text, out.write)
        out.end()
        if args.verbose:
            print(session.stats.lines(), file=sys.stderr)
        return 0
    if spec["alias"]:
        session.load(spec["alias"])
    return interactive(session, Path(spec["history"]) if spec.get("history") else None, spec.get("rules"))


if __name__ == "__main__":
    sys.exit(main())
