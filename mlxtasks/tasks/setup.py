"""setup and uninstall: every step in order (each also runnable alone), and the way back."""

from ..steps import summary
from . import install, preflight, serve
from . import shell as shell_tasks
from . import venv as venv_tasks
from . import workspace as workspace_tasks
from ._common import PATH_HELP, is_dry, perform, record, settings, task
from .validate import validate
from .warmup import warmup as warmup_task


@task(
    help={
        "yes": "answer yes to every question (for unattended runs)",
        "dry_run": "print every action, file writes included, and change nothing",
        "python": "the Python to build the venv with (default: found on PATH, Homebrew, python.org or uv)",
        **PATH_HELP,
        "installer": "auto (uv if it runs, else pip), uv or pip",
        "backend": "auto (from the platform), metal, cpu, cuda12 or cuda13",
        "upgrade": "move past the shipped version pins to the newest releases",
        "shell": shell_tasks.SHELL_HELP,
        "warmup": "on CUDA, end by compiling the GPU kernels so the first chat starts fast (--no-warmup skips it)",
    },
)
def setup(
    c,
    yes=False,
    dry_run=False,
    python=None,
    venv=None,
    workspace=None,
    models=None,
    installer=None,
    backend=None,
    upgrade=False,
    shell=None,
    warmup=True,
):
    """Set up MLX end to end: preflight, venv, packages, workspace, shell commands, validation. Safe to repeat."""
    from .. import ui
    from ..locks import hold_until_exit, setup_lock

    dry = is_dry(c, dry_run)
    # A wrong option value, or a second setup at once, is refused before any step runs.
    s = settings(
        c,
        python=python,
        venv=venv,
        workspace=workspace,
        models=models,
        installer=installer,
        backend=backend,
        shell=shell,
    )
    s.catalog  # noqa: B018 (read for its check) the shell step renders the catalogue: a broken mlx.catalog stops setup here, not half-way
    hold_until_exit(setup_lock(s.venv), "invoke setup")
    preflight.check(c, python=python, venv=venv, workspace=workspace, models=models, dry_run=dry)
    outcomes = [
        *venv_tasks.create(c, python=python, venv=venv, installer=installer, yes=yes, dry_run=dry),
        *install.packages(c, venv=venv, installer=installer, backend=backend, upgrade=upgrade, dry_run=dry),
        *workspace_tasks.create(c, workspace=workspace, models=models, dry_run=dry),
        *shell_tasks.install(c, shell=shell, venv=venv, models=models, dry_run=dry),
    ]
    # After a run that changed nothing, the slow checks that import MLX could only repeat their last answer.
    unchanged = not any(outcome.kind == "changed" for outcome in outcomes)
    outcomes += validate(c, venv=venv, models=models, dry_run=dry, skip_mlx=unchanged)
    outcomes += warmup_task(c, warmup=warmup, venv=venv, backend=backend, dry_run=dry)
    ui.out()
    for line in summary(outcomes, dry):
        ui.out(line)
    return outcomes


@task(
    help={
        "yes": "delete without asking",
        "delete_models": "also delete the downloaded models (--models, on other tasks, names their folder)",
        "venv": PATH_HELP["venv"],
        "dry_run": "say what would be removed, remove nothing",
    },
)
def uninstall(c, yes=False, delete_models=False, venv=None, dry_run=False):
    """Remove the shell block, the login service and the server, then the venv (and models only with --delete-models)."""
    from .. import serve as serve_core
    from .. import ui
    from .. import venv as venv_core
    from ..errors import MlxTasksError
    from ..steps import RemoveVenv
    from ..store import installed_folders, remove_model

    s = settings(c, venv=venv)
    dry = is_dry(c, dry_run)
    state = venv_core.inspect(s.venv)
    folders = installed_folders(s.models) if delete_models else []
    asked = ([f"the venv {s.venv}"] if state.is_venv else []) + (
        [f"{len(folders)} models in {s.models}"] if folders else []
    )
    if asked and not (yes or dry or ui.can_ask()):  # refused before anything is touched
        raise MlxTasksError(
            f"Deleting {' and '.join(asked)} needs a yes, and there is no terminal to ask; nothing was changed.",
            fix="invoke uninstall --yes" + (" --delete-models" if folders else ""),
        )
    shell_tasks.remove(c, dry_run=dry_run)
    serve.uninstall_service(c, dry_run=dry_run)  # it would start a server from the deleted venv at every login
    server = serve_core.running(s.state)
    if server and dry:
        record("dry", "serve", f"stop {server.alias} (pid {server.pid})")
    elif server:
        serve_core.stop(s.state)
        record("changed", "serve", f"stopped {server.alias} (pid {server.pid})")

    def confirmed(question: str, flag: str) -> bool:
        return yes or ui.confirm(
            question,
            MlxTasksError(
                f"{question[:-1]} needs a yes, and there is no terminal to ask.", fix=f"invoke uninstall {flag}"
            ),
        )

    cache = serve_core.cache_path(s.state)  # prompts' KV caches: they hold conversations, and need the venv's MLX
    if state.is_venv and (
        dry
        or confirmed(
            f"Delete the venv {s.venv}{' and the prompt cache ' + str(cache) if cache.exists() else ''}?", "--yes"
        )
    ):
        if dry:
            record("dry", "venv", f"delete {s.venv}")
        else:
            perform(c, RemoveVenv(s.venv))
            record("changed", "venv", f"deleted {s.venv}")
    if cache.exists() and (dry or not s.venv.exists()):  # with the venv, or where there is none
        if dry:
            record("dry", "serve", f"delete the prompt cache {cache}")
        else:
            record("changed", "serve", serve_core.clear_cache(s.state))
    if delete_models:
        if folders and (dry or confirmed(f"Delete {len(folders)} models in {s.models}?", "--yes --delete-models")):
            for folder in folders:
                if dry:
                    record("dry", "models", f"delete {s.models / folder}")
                else:
                    record("changed", "models", f"deleted {remove_model(s.models, folder)}")
