"""shell: the managed block of MLX commands in your shell's start-up file."""

from invoke import Collection

from ._common import PATH_HELP, is_dry, record, settings, task

SHELL_HELP = "zsh, bash, fish or all (default: the shell in $SHELL)"
RC_HELP = "write this file instead of the shell's usual one (one shell only)"


def _targets(c, shell, rc_file, venv=None, models=None, everywhere=False):
    """(settings, [RcTarget]) for the chosen shells; `everywhere` means every shell, for removal."""
    import os

    from .. import shellblock

    s = settings(c, venv=venv, models=models, shell=shell)
    return s, shellblock.targets("all" if everywhere and shell is None else s.shell, rc_file, s.home, os.environ)


@task(
    default=True,
    help={
        "shell": SHELL_HELP,
        "rc_file": RC_HELP,
        "venv": PATH_HELP["venv"],
        "models": PATH_HELP["models"],
        "dry_run": "print the change as a diff, write nothing",
    },
)
def install(c, shell=None, rc_file=None, venv=None, models=None, dry_run=False):
    """Write the block of MLX commands (mlx-activate, mlx-status, mlx-qwen7b...) into your shell's rc file."""
    from .. import shellblock

    s, targets = _targets(c, shell, rc_file, venv, models)
    dry = is_dry(c, dry_run)
    return [
        _report(shellblock.outcome(shellblock.install(target, s, dry), target, dry, "modified", "after shell.install"))
        for target in targets
    ]


@task(
    help={
        "shell": "only this shell's file: zsh, bash, fish or all (default: every shell's)",
        "rc_file": RC_HELP,
        "dry_run": "print the change as a diff, write nothing",
    }
)
def remove(c, shell=None, rc_file=None, dry_run=False):
    """Take the block out of every shell's rc file, leaving the rest exactly as it was."""
    from .. import shellblock

    s, targets = _targets(c, shell, rc_file, everywhere=True)
    dry = is_dry(c, dry_run)
    for target in targets:
        change = shellblock.remove(target, s.state, dry)
        if change:
            verb = "deleted" if change.deleted else "removed the block from"
            _report(shellblock.outcome(change, target, dry, verb, "after shell.remove"))


@task(help={"shell": SHELL_HELP, "venv": PATH_HELP["venv"], "models": PATH_HELP["models"]})
def show(c, shell=None, venv=None, models=None):
    """Print the block, for people who manage their dotfiles by hand."""
    from .. import rcfile, shellblock, ui

    s, targets = _targets(c, shell, None, venv, models)
    for target in targets:
        ui.out(f"# for {target.path}")
        ui.out(rcfile.block_text(shellblock.render(target.shell, s.venv, s.models, s.catalog)))


def _report(outcome):
    from .. import ui

    kind, name, summary, lines = outcome
    done = record(kind, name, summary)
    for line in lines:
        ui.out(line)
    return done


ns = Collection("shell", install, remove, show)
