"""validate and status: is the environment healthy, and what does it look like right now."""

from ._common import PATH_HELP, is_dry, record, require_venv, settings, task


@task(
    help={
        "json": "print the results as JSON (stable ids, status, message, fix, seconds)",
        "quiet": "print only problems and the summary",
        "verbose": "print detail lines and timings",
        "only": "run one group (system, mlx, accelerator, mlx-lm, packages, environment or models) or one check id",
        "list": "list the groups and check ids, and run nothing",
        "deep": "also load every model and generate 8 tokens (load time, tokens/s)",
        "skip_mlx": "skip the checks that import MLX (mlx, accelerator, mlx-lm and --deep's generation)",
        "venv": PATH_HELP["venv"],
        "models": PATH_HELP["models"],
        "dry_run": "say that the checks would run, and run nothing",
    },
)
def validate(
    c,
    json=False,
    quiet=False,
    verbose=False,
    only=None,
    list=False,
    deep=False,
    skip_mlx=False,
    venv=None,
    models=None,
    dry_run=False,
):
    """Check the environment and every installed model; say what is wrong and how to fix it."""
    import json as json_module

    from invoke import Exit

    from .. import registry, ui
    from .. import validate as core
    from ..checks import any_failed

    if list:
        for line in registry.listing(registry.PHASES):
            ui.out(line)
        return []
    if is_dry(c, dry_run):
        return [record("dry", "validate", "run the checks")]
    checks = registry.for_validate(only, deep=deep, skip_mlx=skip_mlx)
    if skip_mlx:
        (ui.note if json else ui.out)("(the checks that import MLX were skipped; invoke validate runs them all)")
    inputs = registry.Inputs(settings(c, venv=venv, models=models), folder=registry.named_folder(only))
    results = registry.run(inputs, checks, say=ui.note)
    closing = core.summary(results)
    if json:
        ui.out(json_module.dumps({"checks": [r.as_dict() for r in results], "summary": closing}, indent=2))
    else:
        grouped = [
            (group, [r for r in results if registry.group_of(r.id) == group]) for group in registry.groups(checks)
        ]
        ui.report(grouped, closing, quiet=quiet, verbose=verbose)
    if any_failed(results):
        raise Exit(code=1)
    return []


@task(help={"venv": PATH_HELP["venv"], "models": PATH_HELP["models"]})
def status(c, venv=None, models=None):
    """One screen: venv, versions, backend, models, shell block (what mlx-status shows)."""
    import os
    import subprocess

    from invoke import Exit

    s = settings(c, venv=venv, models=models)
    require_venv(s)
    env = {**os.environ, "MLX_VENV_PATH": str(s.venv), "MLX_MODELS_PATH": str(s.models)}
    code = subprocess.run([str(s.venv_python), "-m", "mlxtasks.status"], env=env, check=False).returncode
    if code:  # the screen could not be written (a reader that left, a full disk): the child has said so
        raise Exit(code=code)
