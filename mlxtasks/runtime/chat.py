"""Chat and one-shot answers over mlx_lm's API, run by the venv's Python.

    python -m mlxtasks.runtime.chat --spec FILE

The tool side writes a protocol.ChatSpec (the models with their folders, names and default sampling,
the settings and, for one answer on stdout, the prompt) to a JSON file: prompts never travel in argv,
where a long one does not fit and one starting with "-" would read as an option.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .. import exits
from ..protocol import ChatModel, ChatSpec, KVSettings, route, sampling_value
from . import gpu, remote

HELP = """Commands:
  /help                       this list
  /reset                      forget the conversation (the system prompt stays)
  /system TEXT                set the system prompt (and start over)
  /set temp|top_p|max_tokens VALUE
  /model NAME                 switch model (alias, folder or repo id); the new model re-reads the conversation
  /save [FILE] [--json]       write the transcript as Markdown (or JSON)
  /stats                      speed and memory of the last reply
  /quit                       leave (Ctrl-D too)
Ctrl-C stops a reply. Enter sends; Alt-Enter (Esc, Enter) starts a new line, and so does Enter after a
line of three double quotes until the next such line. A paste of several lines is one message.
Tab completes commands and model names; Up and Down recall earlier messages, from earlier chats too."""
COMMANDS = tuple(re.findall(r"^  (/\w+)", HELP, re.MULTILINE))
FENCE = '"""'  # a line of its own that starts and ends a multi-line message
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
DIM, RESET = "\x1b[2m", "\x1b[0m"
SETTABLE = ("temp", "top_p", "max_tokens")


class Refused(Exception):
    """An expected failure: one sentence, and the command that fixes it."""

    def __init__(self, message: str, fix: str = ""):
        super().__init__(message)
        self.message, self.fix = message, fix

    def show(self) -> None:
        print(self.message + (f"\n  Fix: {self.fix}" if self.fix else ""), file=sys.stderr, flush=True)


@dataclass
class Stats:
    prompt_tokens: int = 0
    prompt_tps: float = 0.0
    generation_tokens: int = 0
    generation_tps: float = 0.0
    first_token_seconds: float = 0.0
    peak_memory_gb: float = 0.0
    server: str = ""  # the server that answered ("": the model here)

    def lines(self) -> str:
        where = (
            f"answered by the server at {self.server}" if self.server else f"peak memory {self.peak_memory_gb:.2f} GB"
        )
        return (
            f"prompt: {self.prompt_tokens} tokens at {self.prompt_tps:.1f} tokens/s; "
            f"reply: {self.generation_tokens} tokens at {self.generation_tps:.1f} tokens/s; "
            f"first token after {self.first_token_seconds:.2f} s; {where}"
        )

    @classmethod
    def streamed(cls, done: remote.Streamed, server: str) -> Stats:
        """A server's answer, timed here: the prompt's rate up to the first token, the reply's after it."""
        prompt_tps = done.prompt_tokens / done.first_token_seconds if done.first_token_seconds else 0.0
        after = done.seconds - done.first_token_seconds
        generation_tps = (done.completion_tokens - 1) / after if done.completion_tokens > 1 and after else 0.0
        return cls(
            done.prompt_tokens,
            prompt_tps,
            done.completion_tokens,
            generation_tps,
            done.first_token_seconds,
            server=server,
        )


@dataclass
class Session:
    """A conversation with one loaded model; the KV cache is reused across turns."""

    models: dict[str, ChatModel]  # by alias
    alias: str | None  # None: the router picks one for the first message
    overrides: dict  # sampling given by flags or /set; they win over each model's defaults
    system: str | None = None
    messages: list = field(default_factory=list)
    stats: Stats | None = None
    notices: list = field(default_factory=list)
    capped: set = field(default_factory=set)  # the models whose answer budget cap_answer has named
    sampling: dict = field(default_factory=dict)
    server: str = ""  # a running server's base URL: asked first; "": every model loads here
    seed: int = 0
    served: bool = False  # the server answers for the model (until it cannot)
    here: bool = True  # a model may load in this process (not in the tool's, which has no MLX)
    keeps_history: bool = False  # a chat, whose earlier turns need room in the context beside each answer
    response_format: dict | None = None  # a structured answer (OpenAI's response_format), constrained as it is made
    kv: KVSettings = KVSettings()  # how a quantized KV cache is made
    kv_bits: int = 0  # the loaded model's KV cache bits (0: 16-bit)

    def __post_init__(self) -> None:
        if self.alias:
            self.sampling = self.model_sampling(self.alias)

    def model_sampling(self, alias: str) -> dict:
        return {**dataclasses.asdict(self.models[alias].sampling), **self.overrides}

    def load(self, alias: str) -> None:
        if self.server:  # the server is asked first; the model loads here only if it cannot answer
            self.alias, self.sampling, self.served = alias, self.model_sampling(alias), True
            self.cap_answer(self.models[alias].context)
        else:
            self.load_here(alias)

    def cap_answer(self, context: int) -> None:
        """In a chat, a model's max_tokens is capped at half the context it runs with: a reply of max_tokens
        must fit beside the conversation, and a model whose max_tokens is near its context (one that only just
        fits this machine's memory) would otherwise drop every earlier turn. Said once per model; a max_tokens
        given by a flag or /set is kept as given."""
        half = context // 2
        if not self.keeps_history or "max_tokens" in self.overrides or not half or self.sampling["max_tokens"] <= half:
            return
        if self.alias not in self.capped:
            self.capped.add(self.alias)
            self.notices.append(
                f"(answers are capped at {half:,} tokens, half of the {context:,} tokens of context "
                f"{self.alias} has here, so the conversation keeps its earlier turns; "
                "/set max_tokens N to change it)"
            )
        self.sampling["max_tokens"] = half

    def load_here(self, alias: str) -> None:

        try:
            self.model, self.tokenizer = self.open_model(self.models[alias].path)
        except Exception as exc:  # mlx_lm fails in many ways (RuntimeError, ValueError, OSError...) on bad files
            said = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise Refused(
                f"{alias} could not be loaded: {said.rstrip('.')}.",
                f"invoke models.verify {alias}; if it finds damaged files: invoke models.pull {alias} --force",
            ) from None
        self.alias, self.served = alias, False
        self.sampling = self.model_sampling(alias)
        self.cached: list[int] = []  # the tokens the cache holds
        config = json.loads((Path(self.models[alias].path) / "config.json").read_text())
        own = int(
            config.get("max_position_embeddings")
            or (config.get("text_config") or {}).get("max_position_embeddings")
            or 4096
        )
        self.context = min(own, self.models[alias].context or own)
        self.cap_answer(self.context)
        self.kv_bits = self.models[alias].kv_bits
        if self.kv_bits:
            from .kvcache import unsupported

            text = config.get("text_config") or config
            heads = int(text.get("num_attention_heads") or 1)
            why = unsupported(
                self.model, int(text.get("head_dim") or text.get("hidden_size", 0) // heads), self.kv.group_size
            )
            if why:
                self.notices.append(f"({alias} keeps a 16-bit KV cache, kv_bits {self.kv_bits} is ignored: {why})")
                self.kv_bits = 0
        self.cache = self.new_cache()

    def new_cache(self) -> list:
        """An empty KV cache: 16-bit, or kept at kv_bits once it holds kv.start tokens (runtime/kvcache.py, as
        the server keeps it)."""
        from mlx_lm.models.cache import make_prompt_cache

        if not self.kv_bits:
            return make_prompt_cache(self.model)
        from .kvcache import KVBits, stream_cache

        return stream_cache(self.model, KVBits(self.kv_bits, self.kv.group_size, self.kv.start))

    def open_model(self, path: str):
        """(model, tokenizer) from a model folder; a sharded session loads its part instead."""
        from mlx_lm import load

        return load(path)

    def conversation(self, messages: list | None = None) -> list[dict]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + (self.messages if messages is None else messages)

    def find(self, name: str) -> str | None:
        """The alias of the installed model called `name` (alias, folder, repo id or another of its names)."""
        return next((alias for alias, entry in self.models.items() if name in (alias, *entry.names)), None)

    def prompt_tokens(self) -> list[int]:
        """The whole conversation as the chat template renders it; oldest turns dropped to fit. A last
        message that leaves no room for a reply on its own is refused before any of it is processed."""
        kept = self.messages
        while True:
            tokens = list(self.tokenizer.apply_chat_template(self.conversation(kept), add_generation_prompt=True))
            if len(tokens) + self.sampling["max_tokens"] <= self.context or len(kept) <= 1:
                break
            kept = kept[2:]
        if len(tokens) >= self.context:
            raise Refused(
                f"The prompt is {len(tokens)} tokens long, but {self.alias}'s context holds {self.context} "
                "tokens, prompt and reply together.",
                "shorten the prompt, or send it in parts",
            )
        if len(kept) < len(self.messages):
            self.messages[:] = kept
            self.notices.append("(the oldest turn was dropped to fit the model's context)")
        return tokens

    def reply(self, text: str, write) -> str:
        """Add the user's message, stream the answer through write(chunk), keep it in the conversation."""
        if self.served:
            self.messages.append({"role": "user", "content": text})
            try:
                return self.ask_server(write)
            except remote.Unserved:  # answered here, as with no server
                self.messages.pop()
                if not self.here:
                    raise
                seed_once(self.seed)
                assert self.alias is not None  # chosen when the server took it
                self.load_here(self.alias)
        return self.generate(text, write)

    def ask_server(self, write) -> str:
        """The answer to the conversation from the server, with the same template, sampling and seed."""
        answer: list[str] = []
        unwritten: list[OSError] = []  # our output failed (`| head` has what it wanted), not the server

        def shown(chunk: str) -> None:
            answer.append(chunk)
            try:
                write(chunk)
            except OSError as err:
                unwritten.append(err)
                raise

        body = {
            "model": self.alias,
            "messages": self.conversation(),
            "temperature": self.sampling["temp"],
            "top_p": self.sampling["top_p"],
            "max_tokens": self.sampling["max_tokens"],
            "seed": self.seed,
            **({"response_format": self.response_format} if self.response_format else {}),
        }

        try:
            done = remote.chat(self.server, body, shown)
        except remote.Failed as failed:
            if unwritten:
                raise unwritten[0] from None
            self.messages.pop()
            raise Refused(str(failed), "try again, or answer without the server: --local") from None
        except KeyboardInterrupt:  # the part shown stays in the conversation, as here
            self.messages.append({"role": "assistant", "content": "".join(answer)})
            raise
        self.messages.append({"role": "assistant", "content": "".join(answer)})
        self.stats = Stats.streamed(done, self.server)
        return "".join(answer)

    def generate(self, text: str, write) -> str:
        """reply() with the model loaded here."""
        from mlx_lm import stream_generate
        from mlx_lm.models.cache import can_trim_prompt_cache, trim_prompt_cache
        from mlx_lm.sample_utils import make_sampler

        self.messages.append({"role": "user", "content": text})
        try:
            tokens = self.prompt_tokens()
        except Refused:
            self.messages.pop()
            raise
        common = _common_prefix(self.cached, tokens)
        if common == len(tokens):  # always feed at least one token
            common -= 1
        if can_trim_prompt_cache(self.cache) and len(self.cached) > common:
            trim_prompt_cache(self.cache, len(self.cached) - common)
        elif len(self.cached) > common:
            self.cache, common = self.new_cache(), 0
        sampler = make_sampler(self.sampling["temp"], self.sampling["top_p"])
        processors = self.constrained()
        gpu.before_generation()
        answer, generated, last, start, first = [], [], None, time.perf_counter(), None
        try:
            for last in gpu.answer_only(
                stream_generate(
                    self.model,
                    self.tokenizer,
                    tokens[common:],
                    sampler=sampler,
                    max_tokens=self.sampling["max_tokens"],
                    prompt_cache=self.cache,
                    logits_processors=processors,
                )
            ):
                first = first or time.perf_counter() - start
                generated.append(last.token)
                answer.append(last.text)
                write(last.text)
        finally:
            # Whatever happened (Ctrl-C included), the cache now holds these tokens.
            self.cached = (tokens + generated)[: self.cache[0].offset]
            self.messages.append({"role": "assistant", "content": "".join(answer)})
            if last is not None:
                self.stats = Stats(
                    last.prompt_tokens,
                    last.prompt_tps,
                    last.generation_tokens,
                    last.generation_tps,
                    first or 0.0,
                    last.peak_memory,
                )
        return "".join(answer)

    def constrained(self) -> list | None:
        """The logits processor that keeps the answer to response_format, as the server's engine does."""
        if not self.response_format:
            return None
        try:
            from .server.grammar import Grammars
        except ImportError:  # a venv installed before structured answers
            raise Refused("This venv has no llguidance, which a structured answer needs.", "invoke install") from None
        from .server.problems import Problem
        from .server.request import Format

        spec = self.response_format.get("json_schema")
        format = Format(spec["schema"], "--schema") if spec else Format(None, "--json")
        config = json.loads((Path(self.models[self.alias].path) / "config.json").read_text())  # type: ignore[index]
        vocab = int((config.get("text_config") or config).get("vocab_size") or len(self.tokenizer.get_vocab()))
        try:
            grammars = Grammars(self.tokenizer, vocab, sorted(self.tokenizer.eos_token_ids))
            return [grammars.processor(grammars.compile(format))]
        except Problem as problem:
            raise Refused(f"{problem.message.rstrip('.')}.", "fix the schema file, or leave --schema out") from None

    def reset(self) -> None:
        self.messages.clear()

    def transcript(self, as_json: bool) -> str:
        if as_json:
            return json.dumps(
                {"model": self.alias, "sampling": self.sampling, "messages": self.conversation()}, indent=2
            )
        parts = [f"# Chat with {self.alias}", ""]
        for message in self.conversation():
            parts += [
                f"## {dict(system='System', user='You', assistant=self.alias)[message['role']]}",
                "",
                message["content"],
                "",
            ]
        return "\n".join(parts)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):  # up to the shorter one
        if x != y:
            break
        n += 1
    return n


class Output:
    """Writes replies, dimming reasoning models' thinking sections on a terminal."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout  # the one when written to, not when this module was imported
        self.colour = self.stream.isatty() and "NO_COLOR" not in os.environ
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
        if key not in SETTABLE:
            say("usage: /set temp|top_p|max_tokens VALUE")
            return True
        try:
            session.sampling[key] = session.overrides[key] = sampling_value(key, value.strip())
            say(f"({key} = {session.sampling[key]})")
        except ValueError as exc:
            say(f"({key} must be {exc}, got {value.strip()!r}; it stays {session.sampling.get(key, 'as it was')})")
    elif name == "model":
        alias = session.find(rest)
        if alias is None:
            say(f"(no installed model {rest!r}; installed: {', '.join(session.models)})")
        else:
            try:
                session.load(alias)
                say(f"(now {alias}; the conversation is kept; sampling {_sampling_text(session)})")
            except Refused as refusal:
                kept = f"Still {session.alias}." if session.alias else "No model is loaded yet."
                say(f"({refusal.message} {kept} Fix: {refusal.fix})")
    elif name == "save":
        words = rest.split()
        as_json = "--json" in words
        names = [w for w in words if w != "--json"]
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path(names[0] if names else f"chat-{session.alias}-{stamp}.{'json' if as_json else 'md'}")
        say(save(path, session.transcript(as_json)))
    elif name == "stats":
        say(session.stats.lines() if session.stats else "(no reply yet)")
    else:
        say(f"(unknown command /{name}; /help lists them)")
    return True


def save(path: Path, text: str, ask=input) -> str:
    """Write a transcript to `path`; what to say about it. A file already there is replaced only when the user
    says yes at a terminal; without one it is kept."""
    if os.path.lexists(path):
        if not path.is_file():
            return f"({path} is there and is not a regular file; it is kept: /save another name)"
        if not sys.stdin.isatty():
            return f"({path} exists and there is no terminal to ask about replacing it; it is kept: /save another name)"
        try:
            answer = ask(f"{path} exists. Replace it? [y/N] ")
        except (EOFError, KeyboardInterrupt):
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            return f"({path} is kept; /save another name)"
    try:
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(text)
    except OSError as exc:
        return f"(could not save to {path}: {exc.strerror or exc}; the conversation is kept: /save another path)"
    return f"(saved to {path.resolve()})"


def _sampling_text(session: Session) -> str:
    s = session.sampling
    return f"temp {s['temp']}, top_p {s['top_p']}, max_tokens {s['max_tokens']}"


def open_block(text: str) -> bool:
    """Whether the text starts a \"\"\" block that no later line has closed yet."""
    lines = text.split("\n")
    return lines[0].strip() == FENCE and (len(lines) == 1 or lines[-1].strip() != FENCE)


def unfence(text: str) -> str:
    """The message a \"\"\" block holds; any other text as it is."""
    lines = text.split("\n")
    return "\n".join(lines[1:-1]) if len(lines) > 1 and lines[0].strip() == lines[-1].strip() == FENCE else text


def completions(session: Session, text: str) -> tuple[str, list[str]]:
    """Tab's choices for the line typed so far: the part they replace, and the choices."""
    name, space, rest = text.partition(" ")
    if not text.startswith("/") or "\n" in text:
        return "", []
    choices: Iterable[str]
    if not space:
        typed, choices = name, COMMANDS
    elif name == "/model":
        typed, choices = rest, sorted({n for alias, entry in session.models.items() for n in (alias, *entry.names)})
    elif name == "/set":
        typed, choices = rest, SETTABLE
    else:
        return "", []
    return typed, [choice for choice in choices if choice.startswith(typed)]


def _read_lines(prompt: str) -> str:
    """One message from stdin line by line (a pipe, a dumb terminal, a venv without prompt_toolkit)."""
    try:
        text = input(prompt)
        while open_block(text):
            text += "\n" + input("... ")
    except (EOFError, KeyboardInterrupt):
        print()
        raise
    return text


def reader(session: Session, history: Path | None = None):
    """read(prompt) -> the text of one message (EOFError: Ctrl-D, KeyboardInterrupt: Ctrl-C). In a
    terminal, prompt_toolkit's editor; otherwise, or without prompt_toolkit, lines from stdin."""
    read = _read_lines
    if sys.stdin.isatty() and sys.stdout.isatty() and os.environ.get("TERM") not in ("dumb", "unknown"):
        try:
            from .editor import editor
        except ImportError:  # a venv made before the chat needed it
            print("(plain line input: prompt_toolkit is not installed; invoke install adds it)", flush=True)
        else:
            read = editor(history, lambda text: completions(session, text), open_block)
    return lambda prompt: unfence(read(prompt))


def interactive(session: Session, history: Path | None, rules: dict) -> int:
    out, read = Output(), reader(session, history)
    if session.alias:
        print(
            f"Chatting with {session.alias} ({_sampling_text(session)}). /help for commands, Ctrl-D to leave.",
            flush=True,
        )
    else:
        print("The router picks the model for your first message. /help for commands, Ctrl-D to leave.", flush=True)
    for notice in session.notices:
        print(notice, flush=True)
    session.notices.clear()
    while True:
        try:
            text = read(">>> ")
        except KeyboardInterrupt:
            continue
        except EOFError:
            return 0
        if not text.strip():
            continue
        if text.startswith("/"):
            if not command(session, text.strip(), lambda s: print(s, flush=True)):
                return 0
            continue
        try:
            if not session.alias:
                choice = route(text, set(session.models), rules)
                print(f"(using {choice.alias}: {choice.reason})", flush=True)
                session.load(choice.alias)
            session.reply(text, out.write)
        except Refused as refusal:
            refusal.show()
            continue
        except KeyboardInterrupt:
            out.write(" [stopped]")
        out.end()
        for notice in session.notices:
            print(notice, flush=True)
        session.notices.clear()


@functools.cache
def seed_once(seed: int) -> None:
    """MLX's random seed, set before the first model loads in this process (and MLX not even imported while
    the server answers)."""
    import mlx.core as mx

    mx.random.seed(seed)


def main(argv: list[str] | None = None) -> int:
    gpu.use_kernel_cache()
    exits.ready()  # imports done: Ctrl-C now stops a reply (or ends an answer with 130), see run
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True, help="a JSON file: a protocol.ChatSpec")
    return run(ChatSpec.read(Path(parser.parse_args(argv).spec))) or 0


def run(spec: ChatSpec, here: bool = True) -> int | None:
    """The chat or the one answer the spec asks for; the exit status. here=False (the tool's own process, which
    has no MLX, for a one-shot a running server answers): None, having written nothing, where the server cannot
    answer, so that the venv's runtime answers instead."""
    session = Session(
        dict(spec.models),
        spec.alias,
        dict(spec.overrides),
        spec.system,
        server=spec.server,
        seed=spec.seed or 0,
        here=here,
        keeps_history=spec.ask is None,
        response_format=spec.response_format,
        kv=spec.kv,
    )
    # One Ctrl-C policy: it ends a one-shot answer or a load at once, quietly, with 130; in a chat it
    # stops the reply (interactive handles that).
    try:
        if not spec.server:
            seed_once(session.seed)
        if spec.alias:
            session.load(spec.alias)
        if spec.ask is None:
            return interactive(session, Path(spec.history) if spec.history else None, spec.rules)
        out = Output()
        session.reply(spec.ask, out.write)
        out.end()
    except remote.Unserved:  # only where no model may load here
        return None
    except Refused as refusal:
        refusal.show()
        return 1
    except KeyboardInterrupt:
        return 130
    if spec.verbose and session.stats:
        print(session.stats.lines(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
