"""shell: the managed block of MLX commands in your shell's start-up file."""

from invoke import Collection

from ._common import PATH_HELP, is_dry, record, settings, task

SHELL_HELP = "zsh, bash, fish or all (default: the shell in $SHELL)"
RC_HELP = "write this file instead of the shell's usual one (one shell only)"


def _targets(c, shell, rc_file, venv=None, models=None, everywhere=False):
    """(settings, [RcTarget]) for the chosen shells; `everywhere` means every shell, for removal."""
    import os
    from pathlib import Path

    from .. import shellblock
    from ..errors import MlxTasksError
    from ..facts import probe

    s = settings(c, venv=venv, models=models, shell=shell)
    choice = "all" if everywhere and shell is None else s.shell
    shells = shellblock.shells_for(choice, os.environ.get("SHELL"))
    if rc_file:
        if len(shells) != 1:
            raise MlxTasksError("--rc-file needs exactly one shell.", fix="add --shell zsh|bash|fish")
        return s, [shellblock.RcTarget(shells[0], Path(rc_file).expanduser().absolute())]
    os_name, home = probe().os, Path(os.environ["HOME"])
    return s, [shellblock.rc_target(name, os_name, home, os.environ) for name in shells]


@task(
    default=True,
    help={"shell": SHELL_HELP, "rc_file": RC_HELP, "venv": PATH_HELP["venv"], "models": PATH_HELP["models"],
          "dry_run": "print the change as a diff, write nothing"},
)
def install(c, shell=None, rc_file=None, venv=None, models=None, dry_run=False):
    """Write the block of MLX commands (mlx-activate, mlx-status, mlx-qwen7b...) into your shell's rc file."""
    from .. import rcfile, shellblock

    s, targets = _targets(c, shell, rc_file, venv, models)
    dry = is_dry(c, dry_run)
    outcomes = []
    for target in targets:
        body = shellblock.render(target.shell, s.venv, s.models, s.catalog)
        change = rcfile.update(target.path, lambda text: rcfile.apply_block(text, body, str(target.path)), dry=dry,
                               created=_created_record(s))
        outcomes.append(_report(change, target, dry, "modified", "after shell.install"))
    return outcomes


@task(help={"shell": "only this shell's file: zsh, bash, fish or all (default: every shell's)", "rc_file": RC_HELP,
            "dry_run": "print the change as a diff, write nothing"})
def remove(c, shell=None, rc_file=None, dry_run=False):
    """Take the block out of every shell's rc file, leaving the rest exactly as it was."""
    from .. import rcfile

    s, targets = _targets(c, shell, rc_file, everywhere=True)
    dry = is_dry(c, dry_run)
    for target in targets:
        if not target.path.exists():
            continue
        change = rcfile.update(target.path, lambda text: (rcfile.remove_block(text), []), dry=dry,
                               own_file=target.own_file, created=_created_record(s))
        _report(change, target, dry, "deleted" if change.deleted else "removed the block from", "after shell.remove")


@task(help={"shell": SHELL_HELP, "venv": PATH_HELP["venv"], "models": PATH_HELP["models"]})
def show(c, shell=None, venv=None, models=None):
    """Print the block, for people who manage their dotfiles by hand."""
    from .. import rcfile, shellblock, ui

    s, targets = _targets(c, shell, None, venv, models)
    for target in targets:
        ui.out(f"# for {target.path}")
        ui.out(rcfile.block_text(shellblock.render(target.shell, s.venv, s.models, s.catalog)))


def _created_record(s):
    """The rc files shell.install created, so that shell.remove deletes them again once they are empty."""
    return s.state / "created-rc-files"


def _report(change, target, dry, verb, after):
    from .. import rcfile, ui

    name = f"shell ({target.shell})"
    if not change.modified:
        outcome = record("done", name, f"no change: {target.path}")
    elif dry:
        outcome = record("dry", name, f"{verb} {target.path}")
        ui.out(rcfile.unified_diff(change.old, change.new, target.path, after))
    else:
        outcome = record("changed", name, f"{verb} {target.path}" + (f" (a symlink to {change.target})" if change.target != target.path else ""))
    for line in (target.note, *change.warnings):
        if line:
            ui.out(f"    {line}")
    return outcome


ns = Collection("shell", install, remove, show)
