"""models: the catalogue, pulling models from the hub, and looking after the ones installed."""

from invoke import Collection

from ._common import PATH_HELP, record, settings, task

MODEL_HELP = "a catalogue alias (invoke models.list) or a hub repo id such as mlx-community/phi-4-4bit"


@task(name="list", default=True, help={"models": PATH_HELP["models"], "json": "print it as JSON"})
def list_(c, models=None, json=False):
    """List installed models and the catalogue: sizes, what fits this machine, what is in the HF cache."""
    import json as json_module

    from .. import inventory, ui
    from ..facts import probe

    s = settings(c, models=models)
    listing = inventory.listing(s, probe())
    ui.out(json_module.dumps(listing, indent=2) if json else "\n".join(inventory.listing_lines(listing)))


@task(
    positional=["query"],
    help={
        "query": "words the repo id contains, such as qwen3 or coder",
        "author": "whose models (default: mlx-community; any: everyone's)",
        "sort": "downloads (default), likes or recent",
        "limit": "how many rows (default 20)",
        "fits": "only models that fit this machine's memory",
        "json": "print the rows as JSON",
        "models": PATH_HELP["models"],
    },
)
def search(c, query, author=None, sort="downloads", limit=20, fits=False, json=False, models=None):
    """Search the hub: size, whether it fits this machine and the venv's mlx-lm runs it, downloads, last change."""
    import json as json_module

    from .. import search as core
    from .. import ui
    from ..facts import probe

    rows = core.search(settings(c, models=models), probe(), query, sort, limit, author, fits)
    ui.out(json_module.dumps(rows, indent=2) if json else "\n".join(core.lines(rows, query)))


@task(
    help={
        "model": MODEL_HELP,
        "force": "pull even if it looks too big for this machine, or refresh a complete copy",
        "from_cache": "adopt the copy already in the Hugging Face cache instead of downloading",
        "revision": "a branch, tag or commit of the repo (default: main)",
        "models": PATH_HELP["models"],
    },
)
def pull(c, model, force=False, from_cache=False, revision=None, models=None):
    """Download a model into the models folder; never leaves a partial one at its final path."""
    from .. import hub, ui
    from ..facts import probe

    s = settings(c, models=models)
    fetched, summary = hub.pull(
        s, probe([s.models]), model, force=force, use_cache=from_cache, revision=revision, say=ui.out
    )
    record("changed" if fetched else "done", "models", summary)


@task(help={"model": MODEL_HELP + ", installed or not", "models": PATH_HELP["models"]})
def info(c, model, models=None):
    """A model's catalogue entry and copy; for a hub repo not installed: its files, type, quantization, fit, whether it runs."""
    from .. import catalog, inventory, speed, store, ui
    from ..facts import probe

    s = settings(c, models=models)
    if "/" in model and not catalog.lookup(model, store.known_models(s.models, s.catalog)):
        return ui.out("\n".join(inventory.remote_info_lines(s, probe(), model)))
    entry = store.find_model(model, s.models, s.catalog)
    ui.out("\n".join(inventory.info_lines(entry, s.models, probe(), speed.history(s))))


@task(
    positional=["model"],
    help={"model": "only this alias (default: every installed model)", "models": PATH_HELP["models"]},
)
def verify(c, model=None, models=None):
    """Check installed models' files: config, tokenizer, every shard, safetensors headers and sizes."""
    from invoke import Exit

    from .. import inventory, ui
    from ..checks import any_failed

    results = inventory.verify(settings(c, models=models), model)
    ui.results(results)
    if any_failed(results):
        raise Exit(code=1)


@task(help={"model": "the alias of an installed model", "yes": "delete without asking", "models": PATH_HELP["models"]})
def rm(c, model, yes=False, models=None):
    """Delete an installed model's folder (only ever inside the models folder)."""
    from .. import store, ui
    from ..errors import MlxTasksError

    s = settings(c, models=models)
    entry, path = store.removable(model, s.models, s.catalog)
    again = f"invoke models.rm {entry.alias} --yes"
    unanswered = MlxTasksError(f"Deleting {path} needs a yes, and there is no terminal to ask.", fix=again)
    if not (yes or ui.confirm(f"Delete {path}?", unanswered)):
        raise MlxTasksError(f"{path} was not deleted.", fix=again)
    record("changed", "models", f"deleted {store.remove_model(s.models, entry.folder)}")


ns = Collection("models", list_, search, pull, info, verify, rm)
