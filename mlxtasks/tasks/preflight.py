"""preflight: can this machine run MLX?"""

from invoke import Collection, Exit

from ._common import PATH_HELP, settings, task


@task(
    default=True,
    help={
        "python": "the Python to build the venv with (default: found on PATH, Homebrew, python.org or uv)",
        **PATH_HELP,
        "json": "print the results as JSON, with stable check ids",
        "verbose": "show the detail lines of each check",
        "only": "run one check, by its id (see --list)",
        "list": "list the check ids, and run nothing",
        "dry_run": "checks only read, so this changes nothing; accepted so setup can pass it on",
    },
)
def check(
    c,
    python=None,
    venv=None,
    workspace=None,
    models=None,
    json=False,
    verbose=False,
    only=None,
    list=False,
    dry_run=False,
):
    """Check OS, chip, Python, free disk and RAM before anything is installed."""
    from .. import registry, ui
    from ..checks import any_failed

    if list:
        for line in registry.listing([registry.HOST]):
            ui.out(line)
        return
    checks = registry.for_preflight(only)
    s = settings(c, python=python, venv=venv, workspace=workspace, models=models)
    results = registry.run(registry.Inputs(s), checks)
    ui.results(results, as_json=json, verbose=verbose)
    if any_failed(results):
        raise Exit(code=1)


ns = Collection("preflight", check)
