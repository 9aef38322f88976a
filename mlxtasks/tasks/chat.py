"""chat: talk to a model, or get one answer for a pipeline. Both run in the venv's Python."""

from invoke import Collection

from ._common import PATH_HELP, require_venv, settings, task

SAMPLING_HELP = {
    "temp": "sampling temperature (default: the model's, from the catalogue)",
    "top_p": "nucleus sampling (default: the model's)",
    "max_tokens": "longest reply, in tokens (default: the model's)",
    "system": "a system prompt",
    "seed": "random seed, for repeatable replies",
    "venv": PATH_HELP["venv"],
    "models": PATH_HELP["models"],
}


def _run(c, alias, ask, temp, top_p, max_tokens, system, seed, venv, models, verbose=False):
    """Start the venv's chat with the chosen model and settings (a session, or one answer to `ask`); its exit
    status is ours."""
    import json
    import signal
    import subprocess
    import sys
    import tempfile

    from invoke import Exit

    from .. import catalog, store, validate
    from ..errors import MlxTasksError
    from ..facts import probe

    s = settings(c, venv=venv, models=models)
    installed = {m.alias: {"path": str(s.models / m.folder), "names": [*m.also, m.folder, m.repo],
                           "sampling": {"temp": m.temperature, "top_p": m.top_p, "max_tokens": m.max_tokens}}
                 for m in store.installed_models(s.models, s.catalog)}
    if alias == "default":
        alias = s.default_model
    if alias == "auto":  # the router picks, on the first message
        if not installed:
            raise MlxTasksError("No model is installed, so there is nothing to chat with.", fix="invoke models.pull qwen7b")
        model = None
    else:
        model, folder = store.local_model(alias, s.models, s.catalog)
    require_venv(s)
    problems = store.model_problems(folder) if model else []
    if problems:  # what validate says, before mlx_lm meets the damage
        damaged = validate.model_check(folder, problems, 0, model.alias)
        raise MlxTasksError(f"{model.alias} cannot be loaded: {damaged.message}.",
                            fix=f"{damaged.fix} (invoke models.verify {model.alias} lists every problem)")
    if ask is None and not sys.stdin.isatty():
        raise MlxTasksError("A chat needs a terminal to type in; for input from a pipe or a file, ask for one answer.",
                            fix="echo 'your question' | invoke chat.ask - " + (f"--model {model.alias}" if model else "--auto"))
    if model and not catalog.fits(model, probe()):
        print(f"Warning: {model.alias} needs about {model.ram_gb:.1f} GB of memory, more than this machine can give it; "
              "it may be slow or fail to load.", file=sys.stderr)
    given = {"temp": temp, "top_p": top_p, "max_tokens": max_tokens}
    spec = {
        "models": installed,
        "alias": model.alias if model else None,
        "overrides": {k: (int if k == "max_tokens" else float)(v) for k, v in given.items() if v is not None},
        "rules": s.router,
        "system": system,
        "seed": None if seed is None else int(seed),
        "history": str(s.state / "chat_history"),
        "ask": ask,
        "verbose": verbose,
    }
    # The spec, prompt included, goes in a file: argv has a size limit, and the runtime's argparse would
    # read a prompt such as "-x" as an option.
    with tempfile.NamedTemporaryFile("w", prefix="mlxtasks-chat-", suffix=".json") as handle:
        json.dump(spec, handle)
        handle.flush()
        # Ctrl-C belongs to the runtime (it stops a reply, or ends an answer with 130); this process only
        # waits. A handler, not SIG_IGN, so the child starts with Python's usual one.
        previous = signal.signal(signal.SIGINT, lambda *_: None)
        try:
            code = subprocess.call([str(s.venv_python), "-m", "mlxtasks.runtime.chat", "--spec", handle.name])
        finally:
            signal.signal(signal.SIGINT, previous)
    if code:
        raise Exit(code=128 - code if code < 0 else code)  # killed by signal N: 128+N, as a shell says


@task(default=True, positional=["model"],
      help={"model": "an installed model such as qwen7b (invoke models.list); default: mlx.default_model; auto: the router picks for "
                     "your first message",
            **SAMPLING_HELP})
def start(c, model, temp=None, top_p=None, max_tokens=None, system=None, seed=None, venv=None, models=None):
    """Chat with a model: streamed replies, history, /help for commands."""
    _run(c, model, None, temp, top_p, max_tokens, system, seed, venv, models)


@task(positional=["prompt"], help={"prompt": "the question; - reads it from stdin",
                                   "model": "an installed model (default: mlx.default_model)",
                                   "auto": "let the router pick the model for the prompt (said on stderr)",
                                   "verbose": "after the answer, its speed and memory on stderr", **SAMPLING_HELP})
def ask(c, prompt, model=None, auto=False, temp=None, top_p=None, max_tokens=None, system=None, seed=None, venv=None,
        models=None, verbose=False):
    """One answer on stdout and nothing else, so it pipes: invoke chat.ask "..." --model qwen7b."""
    import sys

    prompt = sys.stdin.read() if prompt == "-" else prompt
    if auto:
        choice = _choose(c, prompt, models)
        print(f"Using {choice.alias}: {choice.reason}", file=sys.stderr)
        model = choice.alias
    _run(c, model or settings(c).default_model, prompt, temp, top_p, max_tokens, system, seed, venv, models, verbose)


@task(positional=["prompt"], help={"prompt": "the question to route", "explain": "show every category's score",
                                   "models": PATH_HELP["models"]})
def route(c, prompt, explain=False, models=None):
    """Say which installed model the router would pick for a prompt, and why."""
    from .. import ui

    choice = _choose(c, prompt, models)
    ui.out(f"{choice.alias}: {choice.reason}")
    if explain:
        for category, points in sorted(choice.scores.items(), key=lambda item: -item[1]):
            words = ", ".join(choice.matched[category]) or "no keywords"
            ui.out(f"  {category:<10}{points:>5g}  {words}")


def _choose(c, prompt, models):
    from .. import router
    from ..store import installed_models

    s = settings(c, models=models)
    return router.route(prompt, {m.alias for m in installed_models(s.models, s.catalog)}, s.router)


ns = Collection("chat", start, ask, route)
