"""models.search: the hub's model listing (HfApi.list_models) as rows judged for this machine: size on
disk, whether it fits (catalog.memory_budget, fit.need), whether the venv's mlx-lm runs its model type
(compat), downloads, last change, and whether it is pulled already."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from . import catalog, compat, fit, speed, store
from .config import Settings
from .errors import MlxTasksError
from .facts import GB, HostFacts

SORTS = {"downloads": "downloads", "likes": "likes", "recent": "last_modified"}
DEFAULT_AUTHOR = "mlx-community"
# What each listed model comes with: only these keys (the hub's trimmed config carries model_type).
EXPAND = ["safetensors", "usedStorage", "downloads", "likes", "lastModified", "config", "pipeline_tag"]
# Bytes per parameter of each safetensors dtype the hub counts (MLX's packed 4-bit weights count as U32).
DTYPE_BYTES = {
    "F64": 8,
    "I64": 8,
    "U64": 8,
    "F32": 4,
    "I32": 4,
    "U32": 4,
    "F16": 2,
    "BF16": 2,
    "I16": 2,
    "U16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "F8_E8M0": 1,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}


def options(sort: str, limit: Any, author: str | None) -> tuple[str, int, str | None]:
    """--sort, --limit and --author checked: (list_models' sort key, limit, author or None for any)."""
    if sort not in SORTS:
        raise MlxTasksError(
            f"--sort must be one of {', '.join(SORTS)}, got {sort!r}.", fix="invoke models.search QUERY --sort likes"
        )
    try:
        count = int(limit)
    except (TypeError, ValueError):
        count = 0
    if count < 1:
        raise MlxTasksError(
            f"--limit must be a whole number of 1 or more, got {limit!r}.", fix="invoke models.search QUERY --limit 20"
        )
    author = author or DEFAULT_AUTHOR
    return SORTS[sort], count, None if author == "any" else author


@contextlib.contextmanager
def _quiet_retries() -> Iterator[None]:
    """huggingface_hub logs each retry of a refused connection as a warning; the one sentence after says it all."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def listing(query: str, sort: str, limit: int, author: str | None, wait_s: float) -> list:
    """The hub's ModelInfo entries, best first. Unreachable (after huggingface_hub's own retries), or no answer in
    wait_s seconds: one sentence."""
    from .hub import answered, endpoint, is_network_error

    endpoint()  # checked before huggingface_hub reads it
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        with _quiet_retries():
            asked: dict[str, Any] = dict(search=query or None, author=author, sort=sort, limit=limit, expand=EXPAND)
            return answered(wait_s, lambda: list(HfApi().list_models(**asked)), "searching")
    except Exception as exc:  # noqa: BLE001 - classified here
        cause = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        if is_network_error(exc):
            raise MlxTasksError(
                f"Cannot reach the hub at {endpoint()}, so there is nothing to search: {cause}.",
                fix="check the network (and HF_ENDPOINT), then run the same command",
            ) from None
        if isinstance(exc, HfHubHTTPError):
            raise MlxTasksError(f"The hub refused the search: {cause}.", fix="try again later") from None
        raise


def weights_bytes(info) -> int:
    """The weights' size from the hub's safetensors parameter counts per dtype, else the repo's stored bytes (0: unknown)."""
    counts = (info.safetensors or {}).get("parameters") or {}
    total = sum(count * DTYPE_BYTES.get(dtype, 2) for dtype, count in counts.items())
    return total or int(info.used_storage or 0)


def pulled_repos(s: Settings) -> set[str]:
    """Repo ids of the models in the models folder (by manifest, or by catalogue folder)."""
    repos = set()
    for folder in store.model_folders(s.models):
        known = catalog.by_folder(folder.name, s.catalog)
        repos.add((store.read_manifest(folder) or {}).get("repo") or (known.repo if known else ""))
    return repos - {""}


def row(info, budget: int, known, pulled: set[str], facts: HostFacts, records: list[dict], models: tuple) -> dict:
    """One listed model judged: fits (weights with room for the context), runs (None: cannot tell), and its
    expected speed (a bench run of it here, else the estimate)."""
    size = weights_bytes(info)
    entry = catalog.lookup(info.id, models)
    names = {info.id.split("/")[-1], info.id.split("/")[-1].lower(), *((entry.alias, entry.folder) if entry else ())}
    rate = speed.expected(facts, size, names=names, records=records)
    config = info.config if isinstance(info.config, dict) else {}
    problem = compat.problem(info.id, config, known, info.pipeline_tag or "") if known and config else None
    return {
        "repo": info.id,
        "size": size,
        "fits": fit.need(size, fit.Shape()) <= budget if size else None,
        "runs": (problem is None) if known and config else None,
        "why_not": problem.message if problem else "",
        "model_type": config.get("model_type", ""),
        "downloads": info.downloads,
        "likes": info.likes,
        "updated": info.last_modified.date().isoformat() if info.last_modified else "",
        "pulled": info.id in pulled,
        "tokens_per_s": round(rate.tokens_per_s, 1),
        "speed": rate.how,
        "speed_short": rate.short,
    }


def search(
    s: Settings,
    facts: HostFacts,
    query: str,
    sort: str = "downloads",
    limit: Any = 20,
    author: str | None = None,
    only_fits: bool = False,
) -> list[dict]:
    sort_key, count, owner = options(sort, limit, author)
    infos = listing(query, sort_key, count, owner, s.pull_stall_timeout_s)
    budget, known, pulled, records = catalog.memory_budget(facts), compat.support(s), pulled_repos(s), speed.history(s)
    rows = [row(info, budget, known, pulled, facts, records, s.catalog) for info in infos]
    return [r for r in rows if r["fits"]] if only_fits else rows


def _mark(value: bool | None) -> str:
    return "?" if value is None else "yes" if value else "no"


def lines(rows: list[dict], query: str) -> list[str]:
    """The rows as a table, a pulled model marked; ? where the hub or the venv could not tell."""
    if not rows:
        return [f"The hub lists no model matching {query!r} (try --author any, or another word)."]
    width = max(len(r["repo"]) for r in rows) + 2
    out = [f"{'repo':<{width}}{'size':>9}  {'fits':<6}{'speed':<11}{'runs':<6}{'downloads':>10}  updated"]
    for r in rows:
        size = f"{r['size'] / GB:.1f} GB" if r["size"] else "-"
        out.append(
            f"{r['repo']:<{width}}{size:>9}  {_mark(r['fits']):<6}{r['speed_short']:<11}{_mark(r['runs']):<6}"
            f"{r['downloads'] or 0:>10,}  {r['updated']:<12}{'pulled' if r['pulled'] else ''}".rstrip()
        )
    out += speed.legend([r["speed"] for r in rows])
    if any(r["runs"] is None for r in rows):
        out.append("runs ?: no venv with mlx-lm to ask (invoke setup), or the hub gave no model type")
    return out
