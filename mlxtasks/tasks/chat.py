"""chat: talk to a model, or get one answer for a pipeline. Both run in the venv's Python."""

from invoke import Collection

from ._common import PATH_HELP, settings, task

SAMPLING_HELP = {
    "temp": "sampling temperature (default: the model's, from the catalogue)",
    "top_p": "nucleus sampling (default: the model's)",
    "max_tokens": "longest reply, in tokens (default: the model's)",
    "system": "a system prompt",
    "seed": "random seed, for repeatable replies",
    "venv": PATH_HELP["venv"],
    "models": PATH_HELP["models"],
}
RUN_HELP = {
    "context": "tokens the model keeps, prompt and reply (default: the largest that fits, up to the model's own)",
    "local": "load the model in this process even when a server runs (invoke serve)",
    "kv_bits": "keep the KV cache at 4 or 8 bits, for more context in the same memory (default: mlx.kv_bits, off)",
}


def _run(c, alias, ask, flags, venv, models, context, local, kv_bits, verbose=False, response_format=None):
    """Start the venv's chat (a session, or one answer to `ask`); its exit status is ours. A running server
    answers unless `local` (a one-shot from this process; the model loads in the venv's Python where it cannot)."""
    import sys

    from invoke import Exit

    from .. import chat

    s = settings(c, venv=venv, models=models, context=context, kv_bits=kv_bits)
    s.kv_bits, s.kv  # noqa: B018 (checked before anything starts)
    code = None if local or ask is None else chat.served(s, alias, ask, flags, verbose, response_format)
    if code is None:
        spec, warning = chat.prepare(
            s, alias, ask, flags, verbose, sys.stdin.isatty(), local or ask is not None, response_format
        )
        if warning:
            print(warning, file=sys.stderr)
        code = chat.run(s.venv_python, spec)
    if code:
        raise Exit(code=code)


@task(
    default=True,
    positional=["model"],
    help={
        "model": "an installed model such as qwen7b (invoke models.list); default: mlx.default_model; auto: the router picks for "
        "your first message",
        **SAMPLING_HELP,
        **RUN_HELP,
    },
)
def start(
    c,
    model,
    temp=None,
    top_p=None,
    max_tokens=None,
    system=None,
    seed=None,
    venv=None,
    models=None,
    context=None,
    local=False,
    kv_bits=None,
):
    """Chat with a model: streamed replies, history, /help for commands."""
    from ..chat import Flags

    _run(c, model, None, Flags(temp, top_p, max_tokens, system, seed), venv, models, context, local, kv_bits)


@task(
    positional=["prompt"],
    help={
        "prompt": "the question; - reads it from stdin",
        "model": "an installed model (default: mlx.default_model)",
        "auto": "let the router pick the model for the prompt (said on stderr)",
        "verbose": "after the answer, its speed and memory on stderr",
        "schema": "a JSON schema file: the answer is JSON that matches it",
        "json": "the answer is a JSON object",
        **SAMPLING_HELP,
        **RUN_HELP,
    },
)
def ask(
    c,
    prompt,
    model=None,
    auto=False,
    temp=None,
    top_p=None,
    max_tokens=None,
    system=None,
    seed=None,
    venv=None,
    models=None,
    verbose=False,
    context=None,
    local=False,
    schema=None,
    json=False,
    kv_bits=None,
):
    """One answer on stdout and nothing else, so it pipes: invoke chat.ask "..." --model qwen7b."""
    import sys

    from .. import chat

    response_format = chat.answer_format(schema, json)
    prompt = chat.prompt_text(prompt, sys.stdin)
    if auto:
        choice = chat.choose(settings(c, models=models), prompt)
        print(f"Using {choice.alias}: {choice.reason}", file=sys.stderr)
        model = choice.alias
    _run(
        c,
        model or settings(c).default_model,
        prompt,
        chat.Flags(temp, top_p, max_tokens, system, seed),
        venv,
        models,
        context,
        local,
        kv_bits,
        verbose,
        response_format,
    )


@task(
    positional=["prompt"],
    help={"prompt": "the question to route", "explain": "show every category's score", "models": PATH_HELP["models"]},
)
def route(c, prompt, explain=False, models=None):
    """Say which installed model the router would pick for a prompt, and why."""
    from .. import chat, ui

    choice = chat.choose(settings(c, models=models), prompt)
    ui.out(f"{choice.alias}: {choice.reason}")
    if explain:
        for category, points in sorted(choice.scores.items(), key=lambda item: -item[1]):
            words = ", ".join(choice.matched[category]) or "no keywords"
            ui.out(f"  {category:<10}{points:>5g}  {words}")


ns = Collection("chat", start, ask, route)
