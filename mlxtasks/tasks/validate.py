"""validate and status: is the environment healthy, and what does it look like right now."""

from ._common import JOURNAL, PATH_HELP, is_dry, record, require_venv, settings, task


@task(
    help={
        "json": "print the results as JSON (stable ids, status, message, fix, seconds)",
        "quiet": "print only problems and the summary",
        "verbose": "print detail lines and timings",
        "only": "run one group: system, mlx, accelerator, mlx-lm, packages, environment or models",
        "list": "list the groups and check ids, and run nothing",
        "deep": "also load every model and generate 8 tokens (load time, tokens/s)",
        "venv": PATH_HELP["venv"],
        "models": PATH_HELP["models"],
        "dry_run": "say that the checks would run, and run nothing",
    },
)
def validate(c, json=False, quiet=False, verbose=False, only=None, list=False, deep=False, venv=None, models=None,
             dry_run=False):
    """Check the environment and every installed model; say what is wrong and how to fix it."""
    import json as json_module

    from invoke import Exit

    from .. import ui, validate as core
    from ..checks import any_failed
    from ..errors import MlxTasksError

    if list:
        for group, ids in core.CHECK_IDS.items():
            ui.out(f"{group}: {', '.join(ids)}")
        return
    if is_dry(c, dry_run):
        record("dry", "validate", "run the checks")
        return
    if only and only not in core.GROUPS:
        raise MlxTasksError(f"--only must be one of {', '.join(core.GROUPS)}, got {only!r}.", fix="invoke validate --list")
    groups = [only] if only else [*core.GROUPS]
    # As setup's last step after a run that changed nothing, the slow in-venv checks (importing
    # mlx_lm takes seconds) can only repeat their last answer: skip them and say so.
    unchanged = bool(JOURNAL) and not any(kind == "changed" for kind, _, _ in JOURNAL)
    if unchanged and not only and not deep:
        groups = [g for g in groups if g not in core.RUNTIME_GROUPS]
        ui.out("(nothing changed, so the checks that import MLX were skipped; invoke validate runs them all)")
    results = core.run(settings(c, venv=venv, models=models), groups, deep=deep, say=ui.note)
    closing = core.summary(results)
    if json:
        ui.out(json_module.dumps({"checks": [r.as_dict() for r in results], "summary": closing}, indent=2))
    else:
        grouped = [(group, [r for r in results if core.group_of(r) == group]) for group in core.GROUPS]
        ui.report(grouped, closing, quiet=quiet, verbose=verbose)
    if any_failed(results):
        raise Exit(code=1)


@task(help={"venv": PATH_HELP["venv"], "models": PATH_HELP["models"]})
def status(c, venv=None, models=None):
    """One screen: venv, versions, backend, models, shell block (what mlx-status shows)."""
    import os
    import subprocess

    s = settings(c, venv=venv, models=models)
    require_venv(s)
    env = {**os.environ, "MLX_VENV_PATH": str(s.venv), "MLX_MODELS_PATH": str(s.models)}
    subprocess.run([str(s.venv_python), "-m", "mlxtasks.status"], env=env, check=False)
