"""One check registry for preflight and validate: each check declared once, with the ids of its results,
its phase and its verdict, so the same fact gets the same verdict in both. preflight runs the host
phase, validate all of them; their --list and --only come from here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from . import fit, preflight, store, validate, venv
from .catalog import budget_source, by_folder, memory_budget
from .checks import CheckCrashed, Result, run_group
from .config import Settings
from .errors import MlxTasksError
from .facts import HostFacts, backend_for, can_create, remember_working_set, working_set_path
from .protocol import CUDA_COMPILING, ProbeAnswer, ProbeSpec

HOST = "host"  # the machine and the Python for the venv: known before anything is installed
INSTALL = "install"  # what setup made: packages, the venv, the shell block, the workspace
RUNTIME = "runtime"  # asked of MLX in the venv's Python
MODELS = "models"  # each model folder's files
DEEP = "deep"  # with --deep: each model loaded and run in the venv's Python
PHASES = (HOST, INSTALL, RUNTIME, MODELS, DEEP)
MLX_PHASES = (RUNTIME, DEEP)  # the checks that import MLX
FOLDER = "<folder>"  # in a per-model check's id and title: each model folder's name
# Two processes side by side: importing mlx_lm (and transformers) alone takes seconds.
PROBE_BATCHES = (("mlx", "accelerator"), ("mlx-lm",))


def group_of(check_id: str) -> str:
    return check_id.split(".", 1)[0]


@dataclass(frozen=True)
class Check:
    ids: tuple[str, ...]  # GROUP.NAME of each result it may report; the first also names its crash
    title: str
    phase: str
    verdict: Callable[..., Result | list[Result]]  # (inputs), or (inputs, folder) for a per-model check

    @property
    def group(self) -> str:
        return group_of(self.ids[0])

    @property
    def per_model(self) -> bool:
        return FOLDER in self.ids[0]


class Inputs:
    """What the checks judge: the venv's state and the host's facts, gathered at once (so a --python that
    does not run stops the command), the rest on first use. Tests give the host's facts and MLX's
    answers as data."""

    def __init__(
        self,
        settings: Settings,
        env: Mapping[str, str] | None = None,
        host: HostFacts | None = None,
        answers: ProbeAnswer | None = None,
        folder: str | None = None,
    ):
        self.settings = settings
        self.folder = folder  # only this model folder (validate --only models.FOLDER)
        self.env = dict(os.environ if env is None else env)
        self.state = venv.inspect(settings.venv)
        self.host = host or preflight.gather(settings, self.state)
        self._probes: dict[str, Any] = {}  # answer key -> the process asked for it
        self._answered: dict[str, ProbeAnswer | CheckCrashed] = (
            {key: answers for key in answers.answers} if answers else {}
        )

    @cached_property
    def backend(self) -> str:
        return backend_for(self.host, self.settings.backend)

    @cached_property
    def folders(self) -> list[Path]:
        found = [f for f in store.model_folders(self.settings.models) if self.folder in (None, f.name)]
        if self.folder and not found:
            raise MlxTasksError(
                f"There is no model folder {self.folder!r} in {self.settings.models}.", fix="invoke models.list"
            )
        return found

    def ask(self, checks: Iterable[Check], say: Callable[[str], None]) -> None:
        """Start the venv's Python on what these checks judge, if they need it and it was not given."""
        if self._answered or not self.state.healthy:
            return
        checks = list(checks)
        groups = [c.group for c in checks if c.phase == RUNTIME]
        models = [str(f) for f in self.folders] if any(c.phase == DEEP for c in checks) else []
        for batch in PROBE_BATCHES:
            spec = ProbeSpec([g for g in groups if g in batch], models if batch == PROBE_BATCHES[-1] else [])
            if spec.models and self.backend.startswith("cuda"):
                say(CUDA_COMPILING)
            if spec.groups or spec.models:
                probe = validate.start_probe(self.settings, spec, self.env)
                self._probes.update(dict.fromkeys([*spec.groups, *spec.models], probe))

    def answer(self, key: str) -> dict:
        """MLX's answer for a group or a model folder, waiting for the venv's Python."""
        if key not in self._answered:
            if key not in self._probes:
                raise validate.venv_broken()
            probe = self._probes[key]
            got: ProbeAnswer | CheckCrashed
            try:
                got = validate.probe_answer(probe)
            except CheckCrashed as exc:
                got = exc
            self._answered.update({k: got for k, p in self._probes.items() if p is probe})
        got = self._answered[key]
        if isinstance(got, CheckCrashed):
            raise got
        if "crashed" in got.answers[key]:
            raise CheckCrashed(f"the check itself failed: {got.answers[key]['crashed']}")
        return got.answers[key]

    def seconds(self, key: str) -> float:
        got = self._answered.get(key)
        return got.seconds.get(key, 0.0) if isinstance(got, ProbeAnswer) else 0.0


def _workspace(inputs: Inputs) -> Result:
    folders = [inputs.settings.workspace, inputs.settings.models]
    return validate.workspace_check(folders, [p for p in folders if p.is_dir() and not can_create(p)])


def _model_files(inputs: Inputs, folder: Path) -> Result:
    model, size = by_folder(folder.name, inputs.settings.catalog), store.size_on_disk(folder)
    fits = fit.verdict(size, fit.folder_shape(folder), memory_budget(inputs.host))
    return validate.model_check(folder, store.model_problems(folder), size, model.alias if model else None, fits)


def _accelerator(inputs: Inputs) -> list[Result]:
    """The accelerator's checks; on a Mac, MLX's working-set limit is kept, and judged by, for every later command."""
    answers, host = inputs.answer("accelerator"), inputs.host
    reported = int((answers.get("device_info") or {}).get("max_recommended_working_set_size") or 0)
    if host.is_mac and reported:
        remember_working_set(working_set_path(inputs.settings.state), host.ram_total, reported)
        host = replace(host, working_set=reported)
    return validate.accelerator_checks(host.os, inputs.backend, answers, (memory_budget(host), budget_source(host)))


CHECKS = (
    Check(("system.os",), "Operating system", HOST, lambda i: preflight.check_platform(i.host)),
    Check(("system.python",), "Python for the venv", HOST, lambda i: preflight.check_python(i.host)),
    Check(("system.folders",), "Target folders", HOST, lambda i: preflight.check_folders(i.host)),
    Check(("system.disk",), "Free disk space", HOST, lambda i: preflight.check_disk(i.host, i.settings)),
    Check(("system.ram",), "Memory", HOST, lambda i: preflight.check_ram(i.host, i.settings)),
    Check(
        ("mlx.import", "mlx.device", "mlx.compute"),
        "mlx.core imports",
        RUNTIME,
        lambda i: validate.mlx_checks(i.answer("mlx")),
    ),
    Check(("accelerator.device", "accelerator.matmul", "accelerator.memory"), "Accelerator", RUNTIME, _accelerator),
    Check(
        ("mlx-lm.import", "mlx-lm.api"), "mlx_lm imports", RUNTIME, lambda i: validate.mlx_lm_checks(i.answer("mlx-lm"))
    ),
    Check(
        ("packages.versions", "packages.requirements"),
        "Package versions",
        INSTALL,
        lambda i: validate.packages(i.settings, i.state, i.backend),
    ),
    Check(
        ("environment.venv",),
        "Virtual environment",
        INSTALL,
        lambda i: validate.venv_check(i.settings.venv, i.state.problem, i.state.exists),
    ),
    Check(
        ("environment.shell",),
        "Shell block",
        INSTALL,
        lambda i: validate.shell_check(validate.shell_blocks(i.settings, i.host.os, i.env)),
    ),
    Check(("environment.workspace",), "Workspace folders", INSTALL, _workspace),
    Check((f"models.{FOLDER}",), FOLDER, MODELS, _model_files),
    Check(
        (f"models.{FOLDER}.generate",),
        f"{FOLDER}: load and generate",
        DEEP,
        lambda i, folder: validate.deep_result(folder.name, i.answer(str(folder))),
    ),
)


def groups(checks: Iterable[Check]) -> list[str]:
    return list(dict.fromkeys(c.group for c in checks))


def listing(phases: Iterable[str]) -> list[str]:
    """One line per group: its check ids (FOLDER stands for each model folder)."""
    chosen = [c for c in CHECKS if c.phase in set(phases)]
    return [f"{group}: {', '.join(i for c in chosen if c.group == group for i in c.ids)}" for group in groups(chosen)]


def named_folder(only: str | None) -> str | None:
    """The model folder an id such as models.qwen7b or models.qwen7b.generate names (the shortest reading)."""
    found = [_folder_in(only, pattern) for c in CHECKS for pattern in c.ids] if only else []
    return min((folder for folder in found if folder), key=len, default=None)


def _folder_in(only: str, pattern: str) -> str | None:
    head, marker, tail = pattern.partition(FOLDER)
    if marker and only.startswith(head) and only.endswith(tail) and len(only) > len(head) + len(tail):
        return only[len(head) : len(only) - len(tail)]
    return None


def select(only: str | None, phases: Iterable[str], task: str) -> list[Check]:
    """The checks of these phases, or of them those of one group or the one that reports the id `only`
    (for a model's id, the one whose pattern names the folder named_folder reads)."""
    chosen = [c for c in CHECKS if c.phase in set(phases)]
    folder = named_folder(only)
    picked = (
        [
            c
            for c in chosen
            if only in (c.group, *c.ids) or (folder and any(_folder_in(only, pattern) == folder for pattern in c.ids))
        ]
        if only
        else chosen
    )
    if not picked:
        raise MlxTasksError(
            f"--only must be one of {', '.join(groups(chosen))} or one of {task}'s check ids, got {only!r}.",
            fix=f"invoke {task} --list",
        )
    return picked


def for_preflight(only: str | None = None) -> list[Check]:
    return select(only, (HOST,), "preflight")


def for_validate(only: str | None = None, deep: bool = False, skip_mlx: bool = False) -> list[Check]:
    """--only naming a --deep check by its id runs it without --deep."""
    return [
        c
        for c in select(only, PHASES, "validate")
        if (deep or c.phase != DEEP or (only and only != c.group)) and not (skip_mlx and c.phase in MLX_PHASES)
    ]


def run(inputs: Inputs, checks: Iterable[Check], say: Callable[[str], None] = lambda text: None) -> list[Result]:
    """Every result of these checks, in registry order. The venv's Python starts first and its answers are
    judged last, so both sides work at once. say() hears of CUDA's kernel compilation."""
    checks = list(checks)
    inputs.ask(checks, say)
    later = [c for c in checks if c.phase in MLX_PHASES]
    done = {c: _results(c, inputs) for c in [*(c for c in checks if c not in later), *later]}
    return [r for c in checks for r in done[c]]


def _results(check: Check, inputs: Inputs) -> list[Result]:
    if check.per_model:
        return [r for folder in inputs.folders for r in _run(check, inputs, folder)]
    return _run(check, inputs)


def _run(check: Check, inputs: Inputs, folder: Path | None = None) -> list[Result]:
    name = folder.name if folder else ""
    results = run_group(
        check.ids[0].replace(FOLDER, name),
        check.title.replace(FOLDER, name),
        lambda: check.verdict(inputs, folder) if folder else check.verdict(inputs),
    )
    if check.phase in MLX_PHASES:  # timed where the work was done, in the venv's Python
        seconds = inputs.seconds(str(folder) if folder else check.group)
        results = [replace(r, seconds=seconds / len(results)) for r in results]
    return results
