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
        "dry_run": "checks only read, so this changes nothing; accepted so setup can pass it on",
    },
)
def check(c, python=None, venv=None, workspace=None, models=None, json=False, verbose=False, dry_run=False):
    """Check OS, chip, Python, free disk and RAM before anything is installed."""
    from .. import preflight, ui
    from ..checks import any_failed

    s = settings(c, python=python, venv=venv, workspace=workspace, models=models)
    results = preflight.check(preflight.gather(s), s)
    ui.results(results, as_json=json, verbose=verbose)
    if any_failed(results):
        raise Exit(code=1)


ns = Collection("preflight", check)
