"""setup: every step, in order, each also runnable alone."""


from . import install, preflight, venv, workspace
from ._common import JOURNAL, PATH_HELP, is_dry, settings, task

STEPS = [preflight.check, venv.create, install.packages, workspace.create]


@task(
    pre=STEPS,
    help={
        "yes": "answer yes to every question (for unattended runs)",
        "dry_run": "print every action, file writes included, and change nothing",
        "python": "the Python to build the venv with (default: found on PATH, Homebrew, python.org or uv)",
        **PATH_HELP,
        "installer": "auto (uv if it runs, else pip), uv or pip",
        "backend": "auto (from the platform), metal, cpu, cuda12 or cuda13",
        "upgrade": "move past the shipped version pins to the newest releases",
    },
)
def setup(c, yes=False, dry_run=False, python=None, venv=None, workspace=None, models=None,
          installer=None, backend=None, upgrade=False):
    """Set up MLX end to end: preflight, venv, packages, workspace. Safe to repeat."""
    from .. import ui

    # The steps ran as pre-tasks with these same options; what is left is the summary.
    changed = [f"{name}: {summary}" for kind, name, summary in JOURNAL if kind == "changed"]
    fine = [name for kind, name, _ in JOURNAL if kind == "done"]
    ui.out()
    if is_dry(c, dry_run):
        ui.out("Dry run: nothing was changed.")
        return
    ui.out("Changed: " + ("; ".join(changed) if changed else "nothing, everything was already set up."))
    if fine:
        ui.out("Already fine: " + ", ".join(fine) + ".")
    activate = settings(c, venv=venv).venv / "bin" / "activate"
    ui.out(f"Next: source {activate}, then: python -c 'import mlx.core as mx; print(mx.default_device())'")
