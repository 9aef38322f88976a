"""What models.list, models.info and models.verify say: the installed models and the catalogue, as data and
as the lines printed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from . import catalog, fit, hub, speed, store, validate
from .catalog import Model
from .checks import Result, run_checks
from .config import Settings
from .facts import GB, HostFacts


def listing(settings: Settings, facts: HostFacts) -> dict:
    """models.list --json: the models folder, what is installed in it, and the catalogue."""
    installed, budget, records = [], catalog.memory_budget(facts), speed.history(settings)
    named = store.known_models(settings.models, settings.catalog)
    for folder in store.model_folders(store.check_models_path(settings.models)):
        recorded = store.read_manifest(folder) or {}
        known = catalog.by_folder(folder.name, named)
        size = store.size_on_disk(folder)
        kind = known.kind if known else store.folder_kind(folder, {})
        installed.append(
            {
                "alias": known.alias if known else recorded.get("alias"),
                "repo": recorded.get("repo"),
                "folder": folder.name,
                "path": str(folder),
                "kind": kind,
                "size": size,
                "complete": hub.is_complete(folder),
                "fits": fit.verdict(
                    size, fit.folder_shape(folder, kind == "embedding", settings.kv_for(known)), budget
                ),
            }
        )
    cached = hub.cached_repos()
    present = {entry["folder"] for entry in installed}
    entries = [
        {
            "alias": m.alias,
            "repo": m.repo,
            "size_gb": m.size_gb,
            "category": m.category,
            "kind": m.kind,
            "fits": fit.need(int(m.size_gb * GB), shape(settings, m)) <= budget,
            "context": fit.largest_context(int(m.size_gb * GB), shape(settings, m), budget),
            "kv_bits": settings.kv_bits_for(m),
            **_speed(m, facts, records),
            "installed": m.folder in present,
            "in_hf_cache": m.repo in cached,
            "description": m.description,
        }
        for m in settings.catalog
    ]
    return {"models_folder": str(settings.models), "installed": installed, "catalogue": entries}


EMBEDS = "it embeds; it does not generate (serve's embeddings: docs/performance.md)"


def shape(settings: Settings, model: Model) -> fit.Shape:
    """A catalogue model's shape with its KV cache as the settings keep it (kv_bits)."""
    return replace(model.shape, kv=settings.kv_for(model))


def _speed(model: Model, facts: HostFacts, records: list[dict]) -> dict:
    if model.kind == "embedding":  # no tokens to generate
        return {"tokens_per_s": None, "speed": "embedding", "speed_short": "-", "speed_text": EMBEDS}
    rate = speed.expected(facts, int(model.size_gb * GB), model.active, {model.alias, model.folder}, records)
    return {
        "tokens_per_s": round(rate.tokens_per_s, 1),
        "speed": rate.how,
        "speed_short": rate.short,
        "speed_text": rate.text,
    }


def listing_lines(listing: dict) -> list[str]:
    """models.list as a table: the installed models, then the catalogue."""
    installed, entries, models = listing["installed"], listing["catalogue"], listing["models_folder"]
    # Columns as wide as their longest name, so a long alias (a model pulled by repo id) never runs into the next.
    alias_width = max([11, *(len(e["alias"] or "-") + 1 for e in [*installed, *entries])])
    folder_width = max([22, *(len(e["folder"]) + 1 for e in installed)])
    lines = [f"Installed in {models}:" if installed else f"No models installed in {models} yet."]
    for entry in installed:
        state = "complete" if entry["complete"] else "incomplete: invoke models.verify"
        lines.append(
            f"  {entry['alias'] or '-':<{alias_width}}{entry['folder']:<{folder_width}}"
            f"{entry['size'] / GB:>7.2f} GB  {state}; fits: {entry['fits']}"
        )
    lines += [
        "",
        f"{'alias':<{alias_width}}{'size':>9}  {'kind':<10}{'fits':<6}{'speed':<11}{'installed':<11}description",
    ]
    for e in entries:
        note = " (in the HF cache: models.pull --from-cache)" if e["in_hf_cache"] and not e["installed"] else ""
        fits = "no" if not e["fits"] else f"{e['context'] // 1000}k" if e["context"] else "yes"
        lines.append(
            f"{e['alias']:<{alias_width}}{e['size_gb']:>7.2f}GB  {e['category']:<10}"
            f"{fits:<6}{e['speed_short']:<11}{'yes' if e['installed'] else 'no':<11}{e['description']}{note}"
        )
    if any(e["context"] for e in entries):
        bits = sorted({e["kv_bits"] for e in entries if e.get("kv_bits")})
        kept = f", the KV cache at {' or '.join(map(str, bits))} bits (kv_bits)" if bits else ""
        lines.append(
            f"fits: Nk = it fits with up to N thousand tokens of context (weights + KV cache + overhead{kept})"
        )
    return lines + speed.legend([e["speed"] for e in entries])


def info_lines(entry: Model, models_path: Path, facts: HostFacts, records: list[dict] | None = None) -> list[str]:
    """models.info: the catalogue entry, its default sampling, and where and how complete its copy is."""
    folder = hub.final_path(models_path, entry)
    recorded = store.read_manifest(folder)
    rows = [
        ("alias", entry.alias + (f" (also {', '.join(entry.also)})" if entry.also else "")),
        ("repo", entry.repo),
        ("about", entry.description),
        ("kind", f"{entry.category}, {entry.arch} architecture"),
        ("size", f"{entry.size_gb:.2f} GB on disk, about {entry.ram_gb:.1f} GB of memory to run"),
        ("fits", fit.verdict(int(entry.size_gb * GB), entry.shape, catalog.memory_budget(facts))),
        ("speed", _speed(entry, facts, records or [])["speed_text"]),
        *(
            [("sampling", f"temperature {entry.temperature}, top_p {entry.top_p}, max_tokens {entry.max_tokens}")]
            if entry.kind == "chat"
            else []
        ),
        ("folder", str(folder)),
        (
            "installed",
            "no: invoke models.pull " + entry.alias
            if not folder.exists()
            else ("complete" if hub.is_complete(folder) else "incomplete: invoke models.verify " + entry.alias),
        ),
    ]
    if recorded:
        rows.append(
            (
                "pulled",
                f"{recorded.get('pulled') or 'unknown date'}, revision {recorded.get('revision') or 'unknown'}, "
                f"{recorded.get('size', 0) / GB:.2f} GB",
            )
        )
    return [f"{name:<10}{value}" for name, value in rows]


def quantization_text(config: dict) -> str:
    """A config.json's quantization in words: MLX's own `quantization` or a transformers `quantization_config`."""
    found = config.get("quantization") or config.get("quantization_config")
    if not isinstance(found, dict):
        return "none (full precision)"
    bits = found.get("bits") or found.get("quant_method", "")
    group = f", group size {found['group_size']}" if found.get("group_size") else ""
    return f"{bits}{'-bit' if isinstance(bits, int) else ''}{group}, {found.get('mode', 'affine')} mode"


def remote_info_lines(s: Settings, facts: HostFacts, repo: str) -> list[str]:
    """models.info for a hub repo that is not installed: what mlx-lm would fetch, its model type and
    quantization (from its config.json, fetched alone), whether it fits and whether the venv runs it."""
    import tempfile

    from . import compat, fit

    hub.endpoint()  # checked before huggingface_hub reads it
    with tempfile.TemporaryDirectory(prefix="mlxtasks-info-") as scratch:
        the_plan = hub.answered(
            s.pull_stall_timeout_s,
            lambda: hub.plan(catalog.from_repo(repo, 0.0), say=lambda _: None, staged=Path(scratch) / "config"),
            f"asking about {repo}",
        )
    known, config, weights = compat.support(s), the_plan.config, the_plan.total
    shape = fit.from_config(config)
    problem = compat.problem(repo, config, known, the_plan.pipeline) if known else None
    runs = (
        "cannot tell: no venv with mlx-lm to ask (invoke setup)"
        if known is None
        else f"no: {problem.message} Fix: {problem.fix}"
        if problem
        else f"yes, with the venv's mlx-lm {known.mlx_lm}"
    )
    rows = [
        ("repo", f"{repo} (not installed: invoke models.pull {repo})"),
        ("files", ", ".join(path for path, _ in the_plan.files)),
        ("size", f"{weights / GB:.2f} GB to download, revision {the_plan.revision[:12]}"),
        ("type", f"{config.get('model_type', 'unknown')} ({the_plan.pipeline or 'no pipeline tag'})"),
        ("quantized", quantization_text(config)),
        ("fits", fit.verdict(weights, shape, catalog.memory_budget(facts))),
        ("speed", speed.expected(facts, weights, shape.active, {repo.split("/")[-1]}, speed.history(s)).text),
        ("runs", runs),
    ]
    return [f"{name:<10}{value}" for name, value in rows]


def verify(settings: Settings, name: str | None = None) -> list[Result]:
    """Check one installed model's files (by any name local_model takes), or every model folder's."""
    if name:
        folders = [store.local_model(name, settings.models, settings.catalog)[1]]
    else:
        folders = store.model_folders(store.check_models_path(settings.models))
    checks = []
    for folder in folders:
        known = catalog.by_folder(folder.name, settings.catalog)
        checks.append(
            (
                f"models.{folder.name}",
                folder.name,
                lambda folder=folder, alias=known.alias if known else None: validate.model_check(
                    folder, store.model_problems(folder), store.size_on_disk(folder), alias
                ),
            )
        )
    return run_checks(checks)
