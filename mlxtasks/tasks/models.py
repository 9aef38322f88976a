"""models: the catalogue, pulling models from the hub, and looking after the ones installed."""

from invoke import Collection

from ._common import PATH_HELP, record, settings, task

MODEL_HELP = "a catalogue alias (invoke models.list) or a hub repo id such as mlx-community/phi-4-4bit"


@task(name="list", default=True, help={"models": PATH_HELP["models"], "json": "print it as JSON"})
def list_(c, models=None, json=False):
    """List installed models and the catalogue: sizes, what fits this machine, what is in the HF cache."""
    import json as json_module

    from .. import catalog, hub, store, ui
    from ..facts import GB, probe

    s = settings(c, models=models)
    facts = probe()
    installed = []
    named = store.known_models(s.models, s.catalog)
    for folder in store.model_folders(s.models):
        recorded = store.read_manifest(folder) or {}
        known = catalog.by_folder(folder.name, named)
        installed.append({"alias": known.alias if known else recorded.get("alias"), "repo": recorded.get("repo"),
                          "folder": folder.name, "path": str(folder), "size": store.size_on_disk(folder),
                          "complete": hub.is_complete(folder)})
    cached = hub.cached_repos()
    present = {entry["folder"] for entry in installed}
    entries = [{"alias": m.alias, "repo": m.repo, "size_gb": m.size_gb, "category": m.category,
                "fits": catalog.fits(m, facts), "installed": m.folder in present, "in_hf_cache": m.repo in cached,
                "description": m.description} for m in s.catalog]
    if json:
        ui.out(json_module.dumps({"models_folder": str(s.models), "installed": installed, "catalogue": entries}, indent=2))
        return
    # Columns as wide as their longest name, so a long alias (a model pulled by repo id) never runs into the next.
    alias_width = max([11, *(len(e["alias"] or "-") + 1 for e in [*installed, *entries])])
    folder_width = max([22, *(len(e["folder"]) + 1 for e in installed)])
    ui.out(f"Installed in {s.models}:" if installed else f"No models installed in {s.models} yet.")
    for entry in installed:
        state = "complete" if entry["complete"] else "incomplete: invoke models.verify"
        ui.out(f"  {entry['alias'] or '-':<{alias_width}}{entry['folder']:<{folder_width}}{entry['size'] / GB:>7.2f} GB  {state}")
    ui.out("")
    ui.out(f"{'alias':<{alias_width}}{'size':>9}  {'kind':<10}{'fits':<6}{'installed':<11}description")
    for e in entries:
        note = " (in the HF cache: models.pull --from-cache)" if e["in_hf_cache"] and not e["installed"] else ""
        ui.out(f"{e['alias']:<{alias_width}}{e['size_gb']:>7.2f}GB  {e['category']:<10}{'yes' if e['fits'] else 'no':<6}"
               f"{'yes' if e['installed'] else 'no':<11}{e['description']}{note}")


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
    fetched, summary = hub.pull(s, probe([s.models]), model, force=force, use_cache=from_cache, revision=revision,
                                say=ui.out)
    record("changed" if fetched else "done", "models", summary)


@task(help={"model": MODEL_HELP, "models": PATH_HELP["models"]})
def info(c, model, models=None):
    """Show a model's catalogue entry, default sampling, and where and how complete its copy is."""
    from .. import catalog, hub, store, ui
    from ..facts import GB, probe

    s = settings(c, models=models)
    entry = store.find_model(model, s.models, s.catalog)
    folder = hub.final_path(s.models, entry)
    recorded = store.read_manifest(folder)
    lines = [
        ("alias", entry.alias + (f" (also {', '.join(entry.also)})" if entry.also else "")),
        ("repo", entry.repo),
        ("about", entry.description),
        ("kind", f"{entry.category}, {entry.arch} architecture"),
        ("size", f"{entry.size_gb:.2f} GB on disk, about {entry.ram_gb:.1f} GB of memory to run"),
        ("fits", "yes" if catalog.fits(entry, probe()) else "no, too big for this machine's memory"),
        ("sampling", f"temperature {entry.temperature}, top_p {entry.top_p}, max_tokens {entry.max_tokens}"),
        ("folder", str(folder)),
        ("installed", "no: invoke models.pull " + entry.alias if not folder.exists() else
         ("complete" if hub.is_complete(folder) else "incomplete: invoke models.verify --model " + entry.alias)),
    ]
    if recorded:
        lines.append(("pulled", f"{recorded['pulled']}, revision {recorded['revision']}, {recorded['size'] / GB:.2f} GB"))
    for name, value in lines:
        ui.out(f"{name:<10}{value}")


@task(help={"model": "only this alias (default: every installed model)", "models": PATH_HELP["models"]})
def verify(c, model=None, models=None):
    """Check installed models' files: config, tokenizer, every shard, safetensors headers and sizes."""
    from invoke import Exit

    from .. import catalog, store, ui, validate
    from ..checks import any_failed, run_checks

    s = settings(c, models=models)
    folders = [store.local_model(model, s.models, s.catalog)[1]] if model else store.model_folders(s.models)
    checks = []
    for folder in folders:
        known = catalog.by_folder(folder.name, s.catalog)
        checks.append((f"models.{folder.name}", folder.name, lambda folder=folder, alias=known.alias if known else None:
                       validate.model_check(folder, store.model_problems(folder), store.size_on_disk(folder), alias)))
    results = run_checks(checks)
    ui.results(results)
    if any_failed(results):
        raise Exit(code=1)


@task(help={"model": "the alias of an installed model", "yes": "delete without asking", "models": PATH_HELP["models"]})
def rm(c, model, yes=False, models=None):
    """Delete an installed model's folder (only ever inside the models folder)."""
    from .. import store, ui
    from ..errors import MlxTasksError

    s = settings(c, models=models)
    entry = store.find_model(model, s.models, s.catalog)
    path = s.models / entry.folder
    if not path.exists() and not path.is_symlink():
        raise MlxTasksError(f"{entry.alias} is not installed (no {path}).", fix="see what is: invoke models.list")
    question = f"Delete {path}?"
    unanswered = MlxTasksError(f"Deleting {path} needs a yes, and there is no terminal to ask.",
                               fix=f"invoke models.rm {entry.alias} --yes")
    if not (yes or ui.confirm(question, unanswered)):
        raise MlxTasksError(f"{path} was not deleted.", fix=f"invoke models.rm {entry.alias} --yes")
    record("changed", "models", f"deleted {store.remove_model(s.models, entry.folder)}")


ns = Collection("models", list_, pull, info, verify, rm)
