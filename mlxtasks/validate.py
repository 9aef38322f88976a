"""The validator's judgements: pure functions from answers to check results, and the gathering of those
answers. The venv's Python answers what needs MLX (runtime/probe.py); the judging is all here, on the
tool side. registry.py declares every check with its ids (GROUP.NAME, stable) and runs them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path

from . import install, installer, rcfile, shellblock, store, venv
from .catalog import BUILTIN, Model, fits_in
from .checks import CheckCrashed, Result, Status
from .config import Settings
from .errors import MlxTasksError
from .facts import GB
from .protocol import ProbeAnswer, ProbeSpec

MATMUL_TOLERANCE = 1e-3  # relative: float32 sums of 1024 products
INSTALL_FIX = "invoke install"
SETUP_FIX = "invoke setup"


def _check(check_id: str, title: str) -> partial:
    return partial(Result, check_id, title)


# mlx and accelerator (answers gathered by runtime/probe.py) ----------------------------------


def mlx_checks(answers: Mapping) -> list[Result]:
    if answers.get("import_error"):
        return [
            _check("mlx.import", "mlx.core imports")(
                Status.ERROR, f"import mlx.core failed: {answers['import_error']}", INSTALL_FIX
            )
        ]
    compute = answers["compute"]
    expected = {"sum_of_squares": 285, "matmul": [[19.0, 22.0], [43.0, 50.0]]}
    return [
        _check("mlx.import", "mlx.core imports")(Status.OK, f"mlx {answers['version']}"),
        _check("mlx.device", "Default device")(Status.OK, answers["default_device"]),
        _check("mlx.compute", "Array computation")(
            Status.OK if compute == expected else Status.ERROR,
            "sum of squares and a 2x2 matmul give the known answers"
            if compute == expected
            else f"wrong answers from MLX: {compute} (expected {expected})",
            "" if compute == expected else "invoke install --upgrade",
        ),
    ]


def accelerator_checks(
    os_name: str, backend: str, answers: Mapping, budget: tuple[int, str] = (0, ""), models: Iterable[Model] = BUILTIN
) -> list[Result]:
    """Which device MLX uses, whether a 1024x1024 matmul on it matches numpy, and (Mac) the GPU's memory.
    budget: catalog.memory_budget's bytes and budget_source's words, so a Mac's verdict is every command's."""
    if answers.get("import_error"):
        return [
            _check("accelerator.device", "Accelerator")(Status.ERROR, "skipped: mlx.core does not import", INSTALL_FIX)
        ]
    info = answers.get("device_info") or {}
    name = info.get("device_name") or info.get("architecture") or "unknown"
    on_gpu = answers["default_device"].startswith("Device(gpu")
    device = _check("accelerator.device", "Accelerator")
    if backend == "metal":
        if answers["metal_available"] and on_gpu:
            results = [device(Status.OK, f"Metal GPU ({name}) is the default device")]
        else:
            results = [
                device(
                    Status.ERROR,
                    "MLX cannot use the Metal GPU; it would run on the CPU",
                    "reinstall MLX for this Mac: invoke install --upgrade",
                )
            ]
    elif backend.startswith("cuda"):
        if answers["cuda_available"] and on_gpu:
            memory = info.get("memory_size") or info.get("total_memory")
            extra = f", {int(memory) / GB:.0f} GB" if memory else ""
            if "compute_capability_major" in info:
                extra += (
                    f", compute capability {info['compute_capability_major']}.{info.get('compute_capability_minor', 0)}"
                )
            results = [device(Status.OK, f"CUDA GPU ({name}{extra}) is the default device")]
        else:
            results = [
                device(
                    Status.ERROR,
                    f"MLX's {backend} build cannot see an NVIDIA GPU",
                    "check the driver (nvidia-smi), or use the CPU build: invoke install --backend cpu",
                )
            ]
    elif os_name == "darwin":
        results = [
            device(
                Status.WARNING,
                "MLX is using the CPU on a Mac, which is many times slower than the GPU",
                "invoke install --backend metal",
            )
        ]
    else:
        results = [device(Status.OK, f"CPU backend ({name}); this machine has no GPU MLX can use")]
    results.append(_matmul_result(answers.get("matmul_error"), answers["default_device"]))
    results.append(_memory(os_name, backend, info, budget, models))
    return results


def _matmul_result(error: float | None, device: str) -> Result:
    matmul = _check("accelerator.matmul", "1024x1024 matmul")
    if error is None:
        return matmul(Status.ERROR, "the matmul did not run", INSTALL_FIX)
    if error > MATMUL_TOLERANCE:
        return matmul(
            Status.ERROR, f"result differs from numpy by {error:.2e} (relative) on {device}", "invoke install --upgrade"
        )
    return matmul(Status.OK, f"matches numpy to {error:.1e} on {device}")


def _memory(os_name: str, backend: str, info: Mapping, budget: tuple[int, str], models: Iterable[Model]) -> Result:
    """How much memory the device gives a model, and which catalogue models fit in it."""
    memory = _check("accelerator.memory", "Memory for models")
    details: tuple[str, ...] = ()
    limit: int | None
    if os_name == "darwin":
        (limit, source), reported = budget, info.get("max_recommended_working_set_size")
        what = f"the GPU may use ({source})"
        if reported:
            details = (f"MLX reports a working-set limit of {int(reported) / GB:.1f} GB",)
    elif backend.startswith("cuda"):
        limit, what = info.get("memory_size") or info.get("total_memory"), "the GPU has"
    else:
        return memory(Status.OK, "the CPU backend uses system memory (see system.ram; models.list says what fits)")
    if not limit:
        return memory(Status.WARNING, "MLX did not report the GPU's memory")
    limit = int(limit)
    fitting = [m.alias for m in models if fits_in(m, limit)]
    too_big = [m.alias for m in models if m.alias not in fitting]
    message = f"{limit / GB:.1f} GB {what}; fits: {', '.join(fitting) or 'none'}"
    if too_big:
        message += f"; too big: {', '.join(too_big)}"
    fix = "raise the limit until reboot: sudo sysctl iogpu.wired_limit_mb=N" if os_name == "darwin" else ""
    return memory(Status.OK if fitting else Status.WARNING, message, "" if fitting else fix, details)


def mlx_lm_checks(answers: Mapping) -> list[Result]:
    if answers.get("import_error"):
        return [
            _check("mlx-lm.import", "mlx_lm imports")(
                Status.ERROR, f"import mlx_lm failed: {answers['import_error']}", INSTALL_FIX
            )
        ]
    missing = answers["missing_api"]
    return [
        _check("mlx-lm.import", "mlx_lm imports")(Status.OK, f"mlx-lm {answers['version']}"),
        _check("mlx-lm.api", "API mlxtasks uses")(
            Status.ERROR if missing else Status.OK,
            f"missing: {', '.join(missing)}" if missing else "load, stream_generate, make_sampler, make_prompt_cache",
            "install the tested version: invoke install" if missing else "",
        ),
    ]


# packages --------------------------------------------------------------------------------------


def package_checks(
    unsatisfied: list[str],
    installed: Mapping[str, str | None],
    names: list[str],
    requirements: tuple[bool, str],
    stale: str | None = None,
) -> list[Result]:
    """Versions of the package set against the shipped pins, whether the venv's mlxtasks runs this code
    (stale: why not), and `pip check`'s verdict."""
    listed = ", ".join(f"{name} {installed.get(name) or 'missing'}" for name in names)
    versions = _check("packages.versions", "Package versions")
    if unsatisfied or stale:
        problems = ", ".join(
            [f"{name} {installed.get(name) or 'missing'}" for name in unsatisfied]
            + ([f"mlxtasks ({stale})"] if stale else [])
        )
        result = versions(
            Status.ERROR, f"missing or older than the tested versions: {problems}", INSTALL_FIX, (listed,)
        )
    else:
        result = versions(Status.OK, f"{len(names)} packages at or above the tested versions", details=(listed,))
    ok, output = requirements
    lines = tuple(line for line in output.splitlines() if line.strip())
    check = _check("packages.requirements", "Requirements between packages")
    return [
        result,
        check(Status.OK, "no broken requirements")
        if ok
        else check(Status.ERROR, lines[0] if lines else "broken requirements", "invoke install --upgrade", lines),
    ]


# environment -----------------------------------------------------------------------------------


def venv_check(path: Path, problem: str | None, exists: bool) -> Result:
    check = _check("environment.venv", "Virtual environment")
    if not exists:
        return check(Status.ERROR, f"{path} does not exist", SETUP_FIX)
    if problem:
        return check(Status.ERROR, f"{path}: {problem}", venv.recreate_fix(path))
    return check(Status.OK, str(path))


def shell_check(blocks: list[tuple[Path, str, str]]) -> Result:
    """blocks: (rc file, the block found there or "", the block the templates render now)."""
    check = _check("environment.shell", "Shell block")
    if not blocks:
        return check(Status.WARNING, "no shell to check ($SHELL is not zsh, bash or fish)")
    missing = [str(path) for path, found, _ in blocks if not found]
    stale = [str(path) for path, found, wanted in blocks if found and found != wanted]
    if stale:  # its commands may point at old paths
        return check(Status.ERROR, f"out of date in {', '.join(stale)}", "invoke shell.install")
    if missing:  # people who manage their dotfiles may not want it
        return check(Status.WARNING, f"not installed in {', '.join(missing)}", "invoke shell.install")
    return check(Status.OK, "current in " + ", ".join(str(path) for path, _, _ in blocks))


def workspace_check(folders: list[Path], unwritable: list[Path]) -> Result:
    check = _check("environment.workspace", "Workspace folders")
    missing = [str(p) for p in folders if not p.is_dir()]
    if missing:
        return check(Status.ERROR, f"missing: {', '.join(missing)}", "invoke workspace")
    if unwritable:
        return check(Status.ERROR, f"not writable: {', '.join(map(str, unwritable))}", "fix the folder's permissions")
    return check(Status.OK, ", ".join(map(str, folders)))


# models ---------------------------------------------------------------------------------------


def model_check(folder: Path, problems: list[str], size: int, alias: str | None, fits: str = "") -> Result:
    """A model folder's files; `fits`: fit.verdict's words on its memory, added to a complete one's line."""
    check = _check(f"models.{folder.name}", folder.name)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        fix = f"invoke models.pull {alias} --force" if alias else f"delete {folder} and download the model again"
        return check(Status.ERROR, problems[0] + more, fix, tuple(problems))
    line = f"complete, {size / GB:.2f} GB on disk" + (f"; fits: {fits}" if fits else "")
    if fits.startswith("no"):
        return check(Status.WARNING, line, "a smaller model: invoke models.search QUERY --fits")
    return check(Status.OK, line)


def require_loadable(alias: str, folder: Path) -> None:
    """Refuse a damaged model before anything loads it: models.verify's verdict, in chat's words."""
    problems = store.model_problems(folder)
    if problems:
        damaged = model_check(folder, problems, 0, alias)
        raise MlxTasksError(
            f"{alias} cannot be loaded: {damaged.message}.",
            fix=f"{damaged.fix} (invoke models.verify {alias} lists every problem)",
        )


def deep_result(folder: str, answer: Mapping) -> Result:
    check = _check(f"models.{folder}.generate", f"{folder}: load and generate")
    if answer.get("error"):
        return check(Status.ERROR, f"failed: {answer['error']}", f"invoke models.pull --force (or delete {folder})")
    return check(
        Status.OK,
        f"loaded in {answer['load_seconds']:.1f} s, {answer['tokens']} tokens at "
        f"{answer['tokens_per_second']:.1f} tokens/s",
    )


def summary(results: list[Result]) -> list[str]:
    passed = sum(r.status is Status.OK for r in results)
    errors = sum(r.failed for r in results)
    warnings = sum(r.status is Status.WARNING for r in results)
    if errors:
        verdict = "Not ready: fix the errors above."
    elif warnings:
        verdict = "Ready, with warnings."
    else:
        verdict = "Ready: no issues found."
    return [f"Checks passed: {passed}/{len(results)}", f"Errors: {errors}", f"Warnings: {warnings}", verdict]


# gathering (registry.py runs the checks) -------------------------------------------------------


def venv_broken() -> MlxTasksError:
    """What each check that needs the venv says when there is none to ask."""
    return MlxTasksError("skipped: the venv is missing or broken", fix=SETUP_FIX)


def start_probe(settings: Settings, spec: ProbeSpec, env: Mapping[str, str]) -> subprocess.Popen:
    """runtime/probe.py in the venv's Python, started before the tool side's checks so both work at once.
    It imports what every MLX command imports; let it leave that bytecode in the venv, as pip does at
    install time, so later commands start fast even where PYTHONDONTWRITEBYTECODE is set."""
    argv = [str(settings.venv_python), "-m", "mlxtasks.runtime.probe", "--spec", spec.to_json()]
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"},
    )


def probe_answer(probe: subprocess.Popen) -> ProbeAnswer:
    out, err = probe.communicate()
    try:
        return ProbeAnswer.from_json(out)
    except ValueError:
        cause = next((line.strip() for line in reversed(err.splitlines()) if line.strip()), f"exit {probe.returncode}")
        raise CheckCrashed(f"the venv's Python stopped: {cause}") from None


def packages(settings: Settings, state: venv.VenvState, backend: str) -> list[Result]:
    if not state.healthy:
        raise venv_broken()
    items = install.wanted(backend, settings.packages)
    names = [item.name for item in items]
    installed, found = install.inspect(settings.venv_python, [*names, "mlxtasks"])
    stale = install.self_problem(installed.get("mlxtasks"), found, install.own_origin())
    chosen = installer.choose(settings.installer)
    if chosen.name == "uv":
        argv = [chosen.uv, "--no-cache", "pip", "check", "--python", str(settings.venv_python)]  # HOME may be read-only
    else:
        argv = [str(settings.venv_python), "-m", "pip", "check"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    # uv reports on stderr, around the problems themselves: keep only those.
    noise = ("Using Python", "Checked ", "Found ", "warning:")
    problems = "\n".join(line for line in (done.stdout + done.stderr).splitlines() if not line.startswith(noise))
    return package_checks(
        install.unsatisfied(items, installed, install.pins()), installed, names, (done.returncode == 0, problems), stale
    )


def shell_blocks(settings: Settings, os_name: str, env: Mapping[str, str]) -> list[tuple[Path, str, str]]:
    """(rc file, its block or "", the block rendered now) for each shell the user has."""
    try:
        shells = shellblock.shells_for(settings.shell, env.get("SHELL"))
    except MlxTasksError:
        return []  # no known shell: nothing to compare
    found = []
    for shell in shells:
        path = shellblock.rc_target(shell, os_name, settings.home, env).path
        text = rcfile.read(path)
        spans = rcfile.find_blocks(text, str(path))
        block = (
            text[spans[0].start : spans[0].end] if spans else ""
        )  # an older CRLF block is stale: zsh cannot parse it
        wanted = rcfile.block_text(shellblock.render(shell, settings.venv, settings.models, settings.catalog))
        found.append((path, block, wanted))
    return found
