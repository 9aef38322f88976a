"""install: the MLX packages (and mlxtasks itself) in the venv."""

from invoke import Collection

from ._common import PATH_HELP, converge, is_dry, require_venv, settings, task


@task(
    default=True,
    help={
        "venv": PATH_HELP["venv"],
        "installer": "auto (uv if it runs, else pip), uv or pip",
        "backend": "auto (from the platform), metal, cpu, cuda12 or cuda13",
        "upgrade": "move past the shipped version pins to the newest releases",
        "dry_run": "say what would change, change nothing",
    },
)
def packages(c, venv=None, installer=None, backend=None, upgrade=False, dry_run=False):
    """Install mlx, mlx-lm and friends at the shipped versions; do nothing when all are there."""
    from .. import install as core
    from ..facts import backend_for, probe
    from ..installer import choose

    s = settings(c, venv=venv, installer=installer, backend=backend)
    dry = is_dry(c, dry_run)
    if not dry or s.venv.exists():  # a dry setup says what it would install into the venv it would make
        require_venv(s)
    chosen_backend = backend_for(probe(), s.backend)
    chosen = choose(s.installer)
    return converge(
        c,
        core.plan(s, chosen_backend, chosen, upgrade),
        lambda: core.plan(s, chosen_backend, chosen),
        dry,
    )


ns = Collection("install", packages)
