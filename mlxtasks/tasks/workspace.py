"""workspace: the folders models live in."""

from invoke import Collection

from ._common import PATH_HELP, converge, is_dry, settings, task


@task(
    default=True,
    help={
        "workspace": PATH_HELP["workspace"],
        "models": PATH_HELP["models"],
        "dry_run": "say what would change, change nothing",
    },
)
def create(c, workspace=None, models=None, dry_run=False):
    """Create ~/workspace and ~/workspace/mlx (the models folder) if missing."""
    from .. import workspace as core

    s = settings(c, workspace=workspace, models=models)
    return converge(c, core.plan(s), lambda: core.plan(s), is_dry(c, dry_run))


ns = Collection("workspace", create)
