"""chat and chat.ask: the checks before a chat, the runtime's spec, and starting it in the venv's Python.

No MLX here: runtime/chat.py talks to the model. The sampling flags are shared with cluster.chat/ask.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import files
from .catalog import Model
from .config import Settings
from .errors import MlxTasksError
from .facts import GB
from .protocol import ChatModel, ChatSpec, Sampling, sampling_value


@dataclass(frozen=True)
class Flags:
    """The sampling flags of chat, chat.ask and cluster.chat/ask, as given (None: not given)."""

    temp: Any = None
    top_p: Any = None
    max_tokens: Any = None
    system: str | None = None
    seed: Any = None

    def __post_init__(self) -> None:  # each flag checked before anything else happens
        self.overrides()
        if self.seed is not None:
            _flag("seed", self.seed)
        if self.system is not None:
            utf8(os.fsencode(self.system), "--system")

    def overrides(self) -> dict[str, float]:
        """The sampling flags given; they win over each model's defaults."""
        given = {"temp": self.temp, "top_p": self.top_p, "max_tokens": self.max_tokens}
        return {name: _flag(name, value) for name, value in given.items() if value is not None}

    @property
    def seed_value(self) -> int | None:
        return None if self.seed is None else int(_flag("seed", self.seed))


def _flag(name: str, value: Any) -> float | int:
    """A sampling flag's text as its number, within its range; else one sentence naming the flag."""
    flag = f"--{name.replace('_', '-')}"
    try:
        return sampling_value(name, value)
    except ValueError as exc:
        example = {"temp": "0.7", "top_p": "0.9", "max_tokens": "256", "seed": "42"}[name]
        raise MlxTasksError(f"{flag} must be {exc}, got {value!r}.", fix=f"pass {flag} {example}") from None


def utf8(data: bytes, where: str) -> str:
    """Text that must be UTF-8 (a prompt, a system prompt); where: what gave it, for the sentence."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MlxTasksError(
            f"{where} is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} is not a character in it.",
            fix="convert it to UTF-8 first, such as: iconv -f LATIN1 -t UTF-8 FILE | invoke chat.ask -",
        ) from None


def prompt_text(prompt: str, stdin: Any) -> str:
    """chat.ask's prompt ("-": all of stdin) as checked text: UTF-8, and not empty."""
    if prompt == "-":
        if stdin is None:
            raise MlxTasksError(
                "chat.ask - reads the prompt from stdin, which is closed.",
                fix="give it on stdin (echo 'your question' | invoke chat.ask -), or as the argument",
            )
        text = utf8(stdin.buffer.read(), "The prompt on stdin")
    else:
        text = utf8(os.fsencode(prompt), "The prompt")
    if not text.strip():
        raise MlxTasksError(
            "The prompt is empty, so there is nothing to answer.", fix='invoke chat.ask "your question"'
        )
    return text


JSON_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}


def answer_format(schema: str | None, as_json: bool) -> dict | None:
    """chat.ask's structured answer as OpenAI's response_format: JSON matching the schema in the file `schema`, any
    JSON object (as_json), or None (text). The schema is checked here as far as JSON goes; the grammar engine
    says what else it cannot use."""
    if schema is None:
        return {"type": "json_object"} if as_json else None
    fix = 'give --schema a file holding a JSON schema, such as {"type": "object"}'
    try:
        given = json.loads(files.read_text(Path(schema).expanduser()))
    except FileNotFoundError:
        raise MlxTasksError(f"The schema file {schema} does not exist.", fix=fix) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise MlxTasksError(f"The schema file {schema} is not JSON: {exc}.", fix=fix) from None
    types = given.get("type", []) if isinstance(given, dict) else None
    if types is None or not set([types] if isinstance(types, str) else types) <= JSON_TYPES:
        raise MlxTasksError(
            f"The schema file {schema} holds no JSON schema (an object whose type is a JSON type).", fix=fix
        )
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": given, "strict": True}}


def sampling(model: Model) -> Sampling:
    return Sampling(model.temperature, model.top_p, model.max_tokens)


def installed(s: Settings, budget: int = 0) -> tuple[dict[str, ChatModel], dict[str, str]]:
    """Every installed model as the runtime sees it, with the context it gets (capped to what fits `budget`;
    0: not judged), and the notes of the ones capped, by alias."""
    from .fit import installed_context
    from .store import installed_models, size_on_disk

    models, notes = {}, {}
    for m in [m for m in installed_models(s.models, s.catalog) if m.kind == "chat"]:
        folder = s.models / m.folder
        context, notes[m.alias] = (
            installed_context(folder, size_on_disk(folder), budget, s.context, kv=s.kv_for(m))
            if budget
            else (s.context, "")
        )
        models[m.alias] = chat_model(m, folder, context, s.kv_bits_for(m))
    return models, notes


def chat_only(model: Model) -> Model:
    """A model to chat with; an embedding model refused, with where it answers."""
    if model.kind == "embedding":
        raise MlxTasksError(
            f"{model.alias} is an embedding model: it turns text into vectors and does not chat.",
            fix=f"chat with a chat model (invoke models.list); for vectors, invoke serve {model.alias} and POST "
            "to /v1/embeddings",
        )
    return model


def chat_model(model: Model, folder: Path, context: int, kv_bits: int = 0) -> ChatModel:
    return ChatModel(str(folder), sampling(model), (*model.also, model.folder, model.repo), context, kv_bits)


def choose(s: Settings, prompt: str):
    """The router's pick among the installed models (protocol.Choice)."""
    from . import router
    from .store import installed_models

    return router.route(prompt, {m.alias for m in installed_models(s.models, s.catalog)}, s.router)


def server_url(s: Settings) -> str:
    """The base URL of the server that runs on the configured port and answers ("": none)."""
    from . import serve

    server = serve.running(s.state)
    return server.url if server and server.port == s.serve_port and serve.healthy(server) else ""


def served(
    s: Settings, alias: str, ask: str, flags: Flags, verbose: bool, response_format: dict | None = None
) -> int | None:
    """One answer from the server running on the configured port, asked from this process before the checks that
    loading the model here needs (memory, the venv, its files): the exit status; None where no server answers
    (none runs, or it refused before answering), and the caller prepares a local answer."""
    from . import store
    from .runtime import chat as runtime  # the server's client: no MLX

    server = server_url(s)
    if not server or alias == "auto":
        return None
    model, folder = store.local_model(s.model_name(alias), s.models, s.catalog)
    chat_only(model)
    spec = ChatSpec(
        {model.alias: chat_model(model, folder, s.context)},
        model.alias,
        flags.overrides(),
        s.router,
        flags.system,
        flags.seed_value,
        "",
        ask,
        verbose,
        server,
        response_format,
    )
    return runtime.run(spec, here=False)


def prepare(
    s: Settings,
    alias: str,
    ask: str | None,
    flags: Flags,
    verbose: bool,
    terminal: bool,
    local: bool = False,
    response_format: dict | None = None,
) -> tuple[ChatSpec, str]:
    """The spec for a chat (ask None) or one answer, after every check that can fail before MLX starts;
    and a warning to show ("" for none). alias: "default", "auto" (the router picks) or a model's name.
    Unless `local`, a running server is asked first (runtime/remote.py), and the model loads in the runtime
    only where it cannot answer."""
    from . import catalog, store
    from .facts import probe
    from .venv import require

    facts = probe()
    models, notes = installed(s, catalog.memory_budget(facts))
    alias = s.model_name(alias)
    if alias == "auto":  # the router picks, on the first message
        if not models:
            raise MlxTasksError(
                "No model is installed, so there is nothing to chat with.", fix="invoke models.pull qwen7b"
            )
        model = None
    else:
        model, folder = store.local_model(alias, s.models, s.catalog)
        chat_only(model)
    require(s)
    if model:  # what models.verify says, before mlx_lm meets the damage
        from .validate import require_loadable

        require_loadable(model.alias, folder)
    if ask is None and not terminal:
        raise MlxTasksError(
            "A chat needs a terminal to type in; for input from a pipe or a file, ask for one answer.",
            fix="echo 'your question' | invoke chat.ask - " + (f"--model {model.alias}" if model else "--auto"),
        )
    warning = notes.get(model.alias, "") if model else ""
    context = models[model.alias].context if model else 0
    if model:
        model = replace(model, kv_bits=s.kv_bits_for(model))  # judged with the KV cache it will keep
    if model and not catalog.fits(model, facts, context):
        warning = (
            f"Warning: {model.alias} needs about {model.ram_bytes(context) / GB:.1f} GB of memory, more than "
            "this machine can give it; it may be slow or fail to load."
        )
    spec = ChatSpec(
        models,
        model.alias if model else None,
        flags.overrides(),
        s.router,
        flags.system,
        flags.seed_value,
        str(s.state / "chat_history"),
        ask,
        verbose,
        "" if local else server_url(s),
        response_format,
        s.kv,
    )
    return spec, warning


def run(venv_python: Path, spec: ChatSpec) -> int:
    """The runtime's chat, in this terminal; its exit status, as a shell would give it (killed by signal N: 128+N)."""
    import signal
    import subprocess
    import tempfile

    # The spec, prompt included, goes in a file: argv has a size limit, and the runtime's argparse would
    # read a prompt such as "-x" as an option.
    with tempfile.NamedTemporaryFile("w", prefix="mlxtasks-chat-", suffix=".json") as handle:
        handle.write(spec.to_json())
        handle.flush()
        # Ctrl-C belongs to the runtime (it stops a reply, or ends an answer with 130); this process only
        # waits. A handler, not SIG_IGN, so the child starts with Python's usual one.
        previous = signal.signal(signal.SIGINT, lambda *_: None)
        try:
            code = subprocess.call([str(venv_python), "-m", "mlxtasks.runtime.chat", "--spec", handle.name])
        finally:
            signal.signal(signal.SIGINT, previous)
    return 128 - code if code < 0 else code
