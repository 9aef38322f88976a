"""venv: the virtual environment MLX runs in."""

from invoke import Collection

from ._common import PATH_HELP, converge, is_dry, settings, task


@task(
    default=True,
    help={
        "python": "the Python to build the venv with (default: found on PATH, Homebrew, python.org or uv)",
        "venv": PATH_HELP["venv"],
        "installer": "auto (uv if it runs, else pip), uv or pip",
        "force": "recreate the venv even if it is healthy",
        "yes": "answer yes to questions (recreate a broken venv)",
        "dry_run": "say what would change, change nothing",
    },
)
def create(c, python=None, venv=None, installer=None, force=False, yes=False, dry_run=False):
    """Create the venv (~/venv-mlx); keep a healthy one, recreate a broken one when asked."""
    from dataclasses import replace

    from .. import installer as installers
    from .. import pythons, ui
    from .. import venv as core
    from ..errors import MlxTasksError
    from ..facts import probe
    from ..preflight import check_python

    s = settings(c, python=python, venv=venv, installer=installer)
    chosen = installers.choose(s.installer)
    state = core.inspect(s.venv)
    recreate = force
    if state.exists and state.is_venv and not state.healthy and not force:
        unanswered = MlxTasksError(f"The venv {s.venv} is broken: {state.problem}.", fix=core.recreate_fix(s.venv))
        recreate = yes or ui.confirm(f"The venv {s.venv} is broken ({state.problem}). Recreate it?", unanswered)
    python_info = None
    if recreate or not state.exists:  # a Python is only needed when the venv is made
        facts = probe()
        python_info, rejected = pythons.for_venv(s.python, None, facts, chosen.uv or None)
        verdict = check_python(replace(facts, python=python_info, rejected_pythons=rejected))
        if verdict.failed:
            raise MlxTasksError(verdict.message, verdict.fix)
    return converge(
        c,
        core.plan(s, state, python_info, chosen, recreate),
        lambda: core.plan(s, core.inspect(s.venv), python_info, chosen, False),
        is_dry(c, dry_run),
    )


ns = Collection("venv", create)
