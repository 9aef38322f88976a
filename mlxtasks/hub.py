"""Pulling a model from the Hugging Face hub, never leaving a broken one where a complete one belongs.

Plan (ask the hub what would be fetched), check memory and disk, download into a hidden staging
folder inside the models folder (huggingface_hub skips files it already finished, so a re-run
goes on from the last finished file), verify, write a manifest, then rename into place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from . import catalog, files, store
from .catalog import Model
from .errors import MlxTasksError
from .facts import GB, HostFacts, free_disk, size_text

# mlx_lm's own download patterns (mlx_lm.utils.DEFAULT_ALLOW_PATTERNS, 0.32): what it loads.
ALLOW_PATTERNS = [
    "*.json",
    "model*.safetensors",
    "*.py",
    "tokenizer.model",
    "*.tiktoken",
    "tiktoken.model",
    "*.txt",
    "*.jsonl",
    "*.jinja",
]
TRIES = 4
EMBEDDING_PIPELINES = ("feature-extraction", "sentence-similarity")  # the hub's tags of embedding models
# A branch, tag or commit as git allows them in a URL: no spaces, newlines or "..".
T = TypeVar("T")
REVISION_PATTERN = re.compile(r"(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")


@dataclass(frozen=True)
class Plan:
    model: Model
    revision: str  # the commit everything is fetched from
    files: tuple[tuple[str, int], ...]  # (path in the repo, size)
    config: dict = field(default_factory=dict)  # the repo's config.json, read before any weight
    pipeline: str = ""  # the hub's pipeline tag ("text-generation", ...)

    @property
    def total(self) -> int:
        return sum(size for _, size in self.files)


def final_path(models_path: Path, model: Model) -> Path:
    return models_path / model.folder


def staging_path(models_path: Path, model: Model) -> Path:
    """Hidden, so listings and the validator never take a download in progress for a model."""
    return models_path / f".partial-{model.folder}"


def endpoint() -> str:
    """The hub's URL: HF_ENDPOINT, checked to be an http(s) URL with a host, or the public hub."""
    value = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    try:
        parts = urlsplit(value)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 1) > 0
    except ValueError:  # such as 'http://[::1', an IPv6 address never closed
        usable = False
    if not usable:
        raise MlxTasksError(
            f"HF_ENDPOINT={value!r} is not the http(s) URL of a hub.",
            fix="unset HF_ENDPOINT, or set it to a URL such as https://huggingface.co",
        )
    return value


def answered(seconds: float, work: Callable[[], T], what: str) -> T:
    """work() (a request to the hub) awaited at most `seconds`: huggingface_hub sets no read timeout, so a hub
    that takes the connection and never answers would hold this process for ever. The thread left behind is a
    daemon and ends with the process."""
    done: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            done.append((True, work()))
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            done.append((False, exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if not done:
        raise MlxTasksError(
            f"The hub at {endpoint()} took the connection but sent no answer in {seconds:g} s while {what}.",
            fix="check the network (and HF_ENDPOINT), then run the same command again "
            "(mlx.pull_stall_timeout_s sets how long to wait)",
        )
    ok, value = done[0]
    if ok:
        return value
    raise value


def login_command() -> str:
    """How to log in to the hub: the `hf` of this Python's environment by its full path (a venv's tools are on
    PATH only while it is active)."""
    hf = Path(sys.executable).parent / "hf"
    return f"{shlex.quote(str(hf)) if hf.is_file() else 'hf'} auth login"


@contextlib.contextmanager
def hub_errors(repo: str) -> Iterator[None]:
    """The hub's failures as one sentence and a fix each."""
    from huggingface_hub import errors

    try:
        yield
    except errors.GatedRepoError:
        raise MlxTasksError(
            f"{repo} is gated: its owners ask you to accept their terms before downloading.",
            fix=f"accept them at {endpoint()}/{repo}, then log in: {login_command()} (or set HF_TOKEN)",
        ) from None
    except errors.RepositoryNotFoundError:
        raise MlxTasksError(
            f"The hub has no model {repo} (or it is private and you are not logged in).",
            fix=f"check the name (invoke models.list), or log in: {login_command()} (or set HF_TOKEN)",
        ) from None
    except errors.RevisionNotFoundError:
        raise MlxTasksError(
            f"{repo} has no such revision on the hub.", fix="pull the default: leave out --revision"
        ) from None
    except errors.RemoteEntryNotFoundError:
        raise MlxTasksError(
            f"A file of {repo} is listed but missing on the hub.", fix="try again later; the repo may be being updated"
        ) from None
    except errors.HfHubHTTPError as exc:
        raise MlxTasksError(f"The hub refused the download of {repo}: {_cause(exc)}.", fix="try again later") from None
    except Exception as exc:
        if is_network_error(exc):
            raise MlxTasksError(
                f"Cannot reach the hub at {endpoint()}: {_cause(exc)}.",
                fix="check the network (and HF_ENDPOINT), then run the same command",
            ) from None
        raise


def local_error(exc: OSError, folder: Path | str) -> MlxTasksError | None:
    """The sentence for a disk or folder failure while writing into `folder` (full, read-only, no
    permission); None for a network failure, which is an OSError too."""
    if exc.errno is None or is_network_error(exc):
        return None
    return MlxTasksError(
        f"Cannot write into {folder}: {exc.strerror or exc}.",
        fix="free some space or fix the folder's permissions, then run the same command again; "
        "or keep models elsewhere: --models PATH (mlx.models in ~/.invoke.yaml)",
    )


@contextlib.contextmanager
def local_errors(folder: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise (local_error(exc, folder) or exc) from None


def is_network_error(exc: BaseException) -> bool:
    from huggingface_hub import errors

    names = {cls.__name__ for cls in type(exc).__mro__}
    return isinstance(exc, (ConnectionError, TimeoutError, errors.LocalEntryNotFoundError)) or bool(
        names & {"TransportError", "TimeoutException"}
    )


def is_retriable(exc: BaseException) -> bool:
    """Server errors and dropped or refused connections; never 4xx answers."""
    from huggingface_hub import errors

    if isinstance(exc, errors.HfHubHTTPError):
        status = getattr(exc.response, "status_code", 0) if exc.response is not None else 0
        return status >= 500
    return is_network_error(exc)


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else exc.__class__.__name__


def resolve(name: str, models: tuple[Model, ...]) -> tuple[Model, bool]:
    """(model, is_catalogued) for an alias or an ORG/NAME repo id."""
    if "/" in name:
        known = next((m for m in models if m.repo == name), None)
        return (known, True) if known else (catalog.from_repo(name, 0.0), False)
    return catalog.find(name, models), True


def plan(
    model: Model,
    revision: str | None = None,
    retry_delay: float = 2.0,
    say: Callable[[str], None] = print,
    staged: Path | None = None,
) -> Plan:
    """Ask the hub which files mlx_lm would fetch, and their sizes, before fetching any; with `staged`,
    fetch config.json into it, so the model can be judged before its weights come."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.utils import filter_repo_objects

    info = _retried(
        lambda: HfApi().model_info(model.repo, revision=revision, files_metadata=True),  # one request
        model.repo,
        retry_delay,
        say,
        "asking the hub again in {delay} s",
    )
    chosen = filter_repo_objects(info.siblings or [], allow_patterns=ALLOW_PATTERNS, key=lambda f: f.rfilename)
    files = tuple(sorted((f.rfilename, f.size) for f in chosen))
    sha = info.sha
    if not any(path.endswith(".safetensors") for path, _ in files):
        raise MlxTasksError(
            f"{model.repo} has no .safetensors weights, so MLX cannot load it.",
            fix="pick an MLX model, such as one from mlx-community: invoke models.list",
        )
    if not model.size_gb:  # an ad-hoc ORG/NAME: its size is what the hub says
        model = replace(model, size_gb=sum(size for _, size in files) / GB)
    config = {}
    if staged is not None and "config.json" in dict(files):
        with local_errors(staged.parent):
            staged.mkdir(parents=True, exist_ok=True)
        path = _retried(
            lambda: hf_hub_download(model.repo, "config.json", revision=sha, local_dir=staged),
            model.repo,
            retry_delay,
            say,
            "asking the hub again in {delay} s",
        )
        config = read_config(Path(path))
    pipeline = info.pipeline_tag or ""
    if pipeline in EMBEDDING_PIPELINES and model.kind == "chat":  # an ORG/NAME the hub calls an embedding model
        model = replace(model, kind="embedding", category="embedding")
    return Plan(model, sha, files, config, pipeline)


def read_config(path: Path) -> dict:
    """A config.json as a dict ({} when it is missing or not a JSON object)."""
    try:
        config = json.loads(files.read_bytes(path))
    except (OSError, ValueError, MlxTasksError):
        return {}
    return config if isinstance(config, dict) else {}


def check_runnable(the_plan: Plan, known) -> None:
    """Refuse a model the venv's mlx-lm cannot run (known: protocol.Support, None when the venv cannot say)."""
    from . import compat

    pipeline = "" if the_plan.model.kind == "embedding" else the_plan.pipeline  # mlx-lm runs its body, not a head
    found = compat.problem(the_plan.model.repo, the_plan.config, known, pipeline) if known else None
    if found:
        raise MlxTasksError(f"Not downloading: {found.message}", fix=found.fix)


def check_memory(model: Model, facts: HostFacts, models: tuple[Model, ...]) -> None:
    budget = catalog.memory_budget(facts)
    if catalog.fits_in(model, budget):
        return
    smaller = [m.alias for m in models if m.kind == model.kind and catalog.fits_in(m, budget)]
    where = (
        f"the GPU can use on this Mac ({catalog.budget_source(facts)})"
        if facts.is_mac
        else "this machine has available"
    )
    hint = f" Smaller models that fit: {', '.join(smaller)}." if smaller else ""
    raise MlxTasksError(
        f"{model.alias} needs about {model.ram_gb:.1f} GB of memory, more than the {budget / GB:.1f} GB {where}.{hint}",
        fix=f"pull a smaller one, or this one anyway: invoke models.pull {model.alias} --force",
    )


def check_disk(the_plan: Plan, models_path: Path, margin_gb: float) -> None:
    staged = staging_path(models_path, the_plan.model)
    have = sum(size for path, size in the_plan.files if store.has_size(staged / path, size))
    need = the_plan.total - have + margin_gb * GB
    free = free_disk(models_path)
    if free < need:
        raise MlxTasksError(
            f"{the_plan.model.alias} needs {size_text(need)} free in {models_path} (its files "
            f"and a {margin_gb:g} GB margin), but only {size_text(free)} is free.",
            fix="free some space, or keep models elsewhere: --models PATH (mlx.models in ~/.invoke.yaml)",
        )


def download(the_plan: Plan, staged: Path, retry_delay: float, say: Callable[[str], None] = print) -> None:
    """Fetch into `staged` in this process, retrying server errors and dropped connections with
    backoff (run inside mlxtasks.download's child process). Files finished by an earlier run are kept;
    a file cut off mid-way starts again."""
    from huggingface_hub import snapshot_download

    repo = the_plan.model.repo
    with local_errors(staged.parent):
        staged.mkdir(parents=True, exist_ok=True)

    def fetch() -> None:
        _remove_partials(staged)
        with local_errors(staged.parent):  # the disk or the folder, not the hub
            snapshot_download(repo, revision=the_plan.revision, local_dir=staged, allow_patterns=ALLOW_PATTERNS)

    _retried(
        fetch,
        repo,
        retry_delay,
        say,
        "trying again in {delay} s (finished files are kept)",
        give_up=lambda error: MlxTasksError(
            f"Downloading {repo} failed after {TRIES} tries: {_cause(error)}.",
            fix="run the same command again: finished files are kept",
        ),
    )


def _retried(
    action: Callable,
    repo: str,
    retry_delay: float,
    say: Callable[[str], None],
    again: str,
    give_up: Callable[[Exception], MlxTasksError] | None = None,
):
    """action(), with server errors and dropped connections tried TRIES times with backoff, each retry
    said with `again` (its {delay} filled in); anything else, and the last failure unless give_up words
    it, in hub_errors' sentences."""
    for attempt in range(1, TRIES + 1):
        try:
            return action()
        except MlxTasksError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified here
            if not is_retriable(exc) or (attempt == TRIES and give_up is None):
                with hub_errors(repo):
                    raise
            if attempt == TRIES and give_up:
                raise give_up(exc) from None
            delay = retry_delay * 2 ** (attempt - 1)
            say(f"    {_cause(exc)}; {again.format(delay=f'{delay:g}')}")
            time.sleep(delay)


class Fetch:
    """mlxtasks.download in a child process: it plans, waits for go, then downloads, saying what it does
    in JSON lines. Ctrl-C (KeyboardInterrupt goes on up) or a hub that sends nothing for stall_s seconds
    kills it at once, where huggingface_hub's own worker threads would finish their files first."""

    def __init__(self, model: Model, revision: str | None, staged: Path, retry_delay: float, stall_s: float):
        self.model, self.staged, self.stall_s = model, staged, stall_s
        spec = {
            "model": dataclasses.asdict(model),
            "revision": revision,
            "staged": str(staged),
            "retry_delay": retry_delay,
        }
        package_root = str(Path(__file__).resolve().parent.parent)  # importable however this process found it
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # the pull says its own progress; the hub's bar went to stderr too
        }
        self.child = subprocess.Popen(
            [sys.executable, "-m", "mlxtasks.download", json.dumps(spec)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.child.stdout is not None  # both pipes were asked for
        for line in self.child.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def __enter__(self) -> Fetch:
        return self

    def __exit__(self, *exc) -> None:
        if self.child.poll() is None:
            self.child.kill()
            self.child.wait()
            _remove_partials(self.staged)

    def plan(self, say: Callable[[str], None]) -> Plan:
        answer = self._until("plan", say)
        model = self.model if self.model.size_gb else replace(self.model, size_gb=answer["size_gb"])
        return Plan(
            model,
            answer["revision"],
            tuple((path, size) for path, size in answer["files"]),
            answer["config"],
            answer["pipeline"],
        )

    def download(self, say: Callable[[str], None]) -> None:
        assert self.child.stdin is not None
        self.child.stdin.write("go\n")
        self.child.stdin.flush()
        self._until("done", say)

    def _until(self, key: str, say: Callable[[str], None]):
        """Pass on what the child says until it gives `key`."""
        while key not in (event := self._next()):
            say(event["say"])
        return event[key]

    def _next(self) -> dict:
        """The child's next word; its error as a sentence, or the stall as one."""
        heard_at, size = time.monotonic(), -1
        while True:
            try:
                line = self.lines.get(timeout=0.5)
                break
            except queue.Empty:
                now, latest = time.monotonic(), _bytes_under(self.staged)
                if latest != size:
                    heard_at, size = now, latest
                elif now - heard_at > self.stall_s:
                    raise MlxTasksError(
                        f"The hub stopped answering: nothing arrived for {self.stall_s:g} s while "
                        f"fetching {self.model.repo}.",
                        fix="run the same command again to resume (finished files are kept)",
                    ) from None
        try:
            event = json.loads(line or "")  # None: the child ended
        except ValueError:
            raise MlxTasksError(
                f"Fetching {self.model.repo} stopped (exit status {self.child.wait()}).",
                fix="run the same command again",
            ) from None
        if "error" in event:
            raise MlxTasksError(event["error"]["message"], fix=event["error"]["fix"])
        return event


def _bytes_under(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total


def _remove_partials(staged: Path) -> None:
    """huggingface_hub names a file in progress uniquely per process, so a partial copy left by a run
    that was killed can never be resumed: remove it."""
    for partial in (staged / ".cache" / "huggingface" / "download").rglob("*.incomplete"):
        partial.unlink(missing_ok=True)


def from_cache(model: Model) -> tuple[Plan, Path]:
    """A model already in the Hugging Face cache (say, fetched by mlx_lm.generate): its plan and snapshot."""
    from huggingface_hub import snapshot_download

    try:
        snapshot = Path(snapshot_download(model.repo, allow_patterns=ALLOW_PATTERNS, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, in whatever way huggingface_hub says it
        raise MlxTasksError(
            f"{model.repo} is not in the Hugging Face cache.",
            fix=f"download it instead: invoke models.pull {model.alias}",
        ) from None
    files = tuple(sorted((str(p.relative_to(snapshot)), p.stat().st_size) for p in snapshot.rglob("*") if p.is_file()))
    return Plan(model, snapshot.name, files), snapshot


def copy_snapshot(snapshot: Path, the_plan: Plan, staged: Path) -> None:
    """Copy the cache's files (its symlinks followed) into the staging folder."""
    for path, _ in the_plan.files:
        (staged / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(snapshot / path, staged / path)


def cached_repos() -> set[str]:
    """Model repos in the Hugging Face cache."""
    try:
        from huggingface_hub import scan_cache_dir

        return {repo.repo_id for repo in scan_cache_dir().repos if repo.repo_type == "model"}
    except Exception:  # noqa: BLE001 - no cache (or an unreadable one) lists nothing
        return set()


def problems(the_plan: Plan, staged: Path) -> list[str]:
    """What is missing or wrong in the staged copy: every listed file at its listed size, then the
    same checks the validator makes."""
    found = [
        f"{path} is missing or not {size} bytes"
        for path, size in the_plan.files
        if not store.has_size(staged / path, size)
    ]
    return found or store.model_problems(staged)


def commit(the_plan: Plan, staged: Path, final: Path) -> None:
    """Manifest in, download bookkeeping out, then rename into place (replacing an older copy)."""
    manifest = {
        "repo": the_plan.model.repo,
        "revision": the_plan.revision,
        "alias": the_plan.model.alias,
        "kind": the_plan.model.kind,
        "pulled": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": dict(the_plan.files),
        "size": the_plan.total,
    }
    (staged / store.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(staged / ".cache", ignore_errors=True)  # huggingface_hub's resume notes
    if final.exists():
        old = final.with_name(f".old-{final.name}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(staged, final)
        shutil.rmtree(old)
    else:
        os.replace(staged, final)


def _fetching(the_plan: Plan, final: Path) -> str:
    return f"Fetching {the_plan.model.repo} ({the_plan.total / GB:.2f} GB, {len(the_plan.files)} files) into {final}"


def is_complete(folder: Path) -> bool:
    """models.verify's verdict (store.model_problems), manifest included."""
    return not store.model_problems(folder)


def pull(
    settings,
    facts: HostFacts,
    name: str,
    *,
    force: bool = False,
    use_cache: bool = False,
    revision: str | None = None,
    say: Callable[[str], None] = print,
) -> tuple[bool, str]:
    """Bring a model into the models folder, complete and verified; returns (fetched anything, what was done)."""
    if revision is not None and not REVISION_PATTERN.fullmatch(revision):
        raise MlxTasksError(
            f"{revision!r} is not a branch, tag or commit name.",
            fix="give one such as main or a commit's 40 hex digits, or leave out --revision",
        )
    endpoint()
    model, catalogued = resolve(name, settings.catalog)
    final = final_path(settings.models, model)
    staged = staging_path(settings.models, model)
    store.check_models_path(settings.models)
    store.check_models_path(staged)
    held = (store.read_manifest(final) or {}) if final.exists() else {}
    if held.get("repo") and held["repo"].casefold() != model.repo.casefold():
        # Another repo's folder by this name; on a Mac's case-insensitive disk Qwen3-8B is qwen3-8b, too.
        raise MlxTasksError(
            f"{final} already holds {held['repo']}, not {model.repo} (folder names that differ only in "
            "case are one folder on macOS), so it was left alone.",
            fix=f"add {model.repo} to mlx.catalog with a folder of its own (docs/models.md), or remove "
            f"the other one first: invoke models.rm {held.get('alias') or final.name}",
        )
    if final.exists() and not force:
        if store.read_manifest(final) is None:
            raise MlxTasksError(
                f"{final} exists but was not pulled by mlxtasks (or its manifest is damaged), so it was left alone.",
                fix=f"replace it: invoke models.pull {name} --force",
            )
        if is_complete(final):
            return False, f"{model.alias} is already installed and complete in {final}; nothing fetched"
    if catalogued and not force:
        check_memory(model, facts, settings.catalog)  # before asking the hub anything
    from . import compat

    known = compat.support(settings)
    with local_errors(settings.models):  # a full disk, a read-only or unwritable folder
        if force:
            shutil.rmtree(staged, ignore_errors=True)
        if use_cache:
            the_plan, snapshot = from_cache(model)
            check_runnable(replace(the_plan, config=read_config(snapshot / "config.json")), known)
            check_disk(the_plan, settings.models, settings.disk_margin_gb)
            say(_fetching(the_plan, final))
            staged.mkdir(parents=True, exist_ok=True)
            copy_snapshot(snapshot, the_plan, staged)
        else:
            with Fetch(model, revision, staged, settings.retry_delay_s, settings.pull_stall_timeout_s) as fetch:
                the_plan = fetch.plan(say)
                try:
                    check_runnable(the_plan, known)
                    if not catalogued and not force:
                        check_memory(the_plan.model, facts, settings.catalog)
                    check_disk(the_plan, settings.models, settings.disk_margin_gb)
                except MlxTasksError:  # refused before any weight: config.json alone leaves no staging folder
                    if not staged.exists() or {p.name for p in staged.iterdir()} <= {"config.json", ".cache"}:
                        shutil.rmtree(staged, ignore_errors=True)
                    raise
                say(_fetching(the_plan, final))
                fetch.download(say)
        found = problems(the_plan, staged)
        if found:
            raise MlxTasksError(
                f"The download of {model.repo} is incomplete or damaged: {found[0]}.",
                fix=f"run the same command again (finished files are kept), or start over: "
                f"invoke models.pull {name} --force",
            )
        commit(the_plan, staged, final)
    source = "the Hugging Face cache" if use_cache else model.repo
    return (
        True,
        f"{model.alias}: {the_plan.total / GB:.2f} GB from {source} (revision {the_plan.revision[:12]}) in {final}",
    )
