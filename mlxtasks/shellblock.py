"""The shell block: which file each shell reads, the block rendered from its template, and putting it in
or taking it out of one file (through rcfile.update)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from . import rcfile
from .catalog import ALIAS_PATTERN, Model
from .config import Settings, config_home, user_path
from .errors import MlxTasksError
from .facts import probe

SHELLS = ("zsh", "bash", "fish")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOKEN = re.compile(r"@@[A-Z_]+@@")
_MODEL_SECTION = re.compile(r"^@@BEGIN_MODEL@@\n(.*?)^@@END_MODEL@@\n", re.M | re.S)


@dataclass(frozen=True)
class RcTarget:
    shell: str
    path: Path
    note: str = ""  # said to the user when the choice of file needs explaining
    own_file: bool = False  # fish: the whole file is ours, deleted on remove


def template_dir() -> Path:
    """shell/ in a checkout; mlxtasks/shell/ inside an installed wheel."""
    packaged = Path(__file__).parent / "shell"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "shell"


def shells_for(choice: str, login_shell: str | None) -> list[str]:
    """zsh, bash, fish, all, or auto: the shell named by $SHELL (choice already validated by config)."""
    if choice == "all":
        return list(SHELLS)
    if choice in SHELLS:
        return [choice]
    name = Path(login_shell or "").name
    if name not in SHELLS:
        raise MlxTasksError(
            f"Cannot tell which shell you use from SHELL={login_shell or '(unset)'}.",
            fix="name it: invoke shell.install --shell zsh|bash|fish|all",
        )
    return [name]


def targets(choice: str, rc_file: str | None, home: Path, env: Mapping[str, str]) -> list[RcTarget]:
    """The file of each chosen shell (see shells_for); rc_file instead, for exactly one shell."""
    shells = shells_for(choice, env.get("SHELL"))
    if rc_file:
        if len(shells) != 1:
            raise MlxTasksError("--rc-file needs exactly one shell.", fix="add --shell zsh|bash|fish")
        return [RcTarget(shells[0], user_path("--rc-file", rc_file, home))]
    os_name = probe().os
    return [rc_target(name, os_name, home, env) for name in shells]


def rc_target(shell: str, os_name: str, home: Path, env: Mapping[str, str]) -> RcTarget:
    """The file each shell reads at start-up for an interactive session."""
    if shell == "zsh":
        return RcTarget(shell, Path(env.get("ZDOTDIR") or home) / ".zshrc")
    if shell == "fish":
        return RcTarget(shell, config_home(home, env) / "fish" / "conf.d" / "mlxtasks.fish", own_file=True)
    if os_name != "darwin":
        return RcTarget(shell, home / ".bashrc")
    # macOS terminals start bash as a login shell, which reads the first of these that exists.
    for name in (".bash_profile", ".bash_login"):
        if (home / name).exists():
            return RcTarget(shell, home / name)
    if (home / ".profile").exists():
        return RcTarget(
            shell, home / ".profile", "wrote to ~/.profile: creating ~/.bash_profile would stop bash reading ~/.profile"
        )
    return RcTarget(shell, home / ".bash_profile")


def quote(shell: str, text: str) -> str:
    """A single-quoted word for the shell: nothing inside is expanded."""
    if shell == "fish":
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return "'" + text.replace("'", "'\\''") + "'"


def check_alias(alias: str) -> str:
    if not ALIAS_PATTERN.fullmatch(alias):
        raise MlxTasksError(
            f"The model alias {alias!r} is not allowed in a shell command name; "
            "use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit.",
            fix="rename it in the models section of your config, then: invoke shell.install",
        )
    return alias


def check_path(label: str, path: Path) -> str:
    text = str(path)
    if _CONTROL.search(text):
        raise MlxTasksError(
            f"The {label} path {text!r} contains a control character (such as a newline).",
            fix=f"choose another {label} folder, then: invoke shell.install",
        )
    return text


CHECKOUT = Path(__file__).resolve().parent.parent  # this package's checkout, when it runs from one


def setup_command(checkout: Path = CHECKOUT) -> str:
    """What repairs the venv from a new terminal, where `invoke` is not on PATH and the venv's own tools are what
    broke: this checkout's bootstrap, else its tool environment's invoke (else, installed from a wheel, setup)."""
    if (checkout / "bootstrap.sh").is_file():
        return f"sh {shlex.quote(str(checkout / 'bootstrap.sh'))}"
    if (checkout / ".venv" / "bin" / "invoke").is_file():
        return f"cd {shlex.quote(str(checkout))} && .venv/bin/invoke setup"
    return "invoke setup"


def render(shell: str, venv: Path, models_path: Path, models: Iterable[Model], setup: str | None = None) -> str:
    """The block's body for one shell; every value checked, then quoted. setup: the command that repairs the
    venv (default: setup_command()). Embedding models get no commands: there is nothing to chat with."""
    models = [m for m in models if m.kind == "chat"]
    for model in models:
        check_alias(model.alias)
    template = (template_dir() / f"mlxtasks.{shell}").read_text()

    def model_section(match: re.Match) -> str:
        return "".join(match.group(1).replace("@@ALIAS@@", m.alias) for m in models)

    text = _MODEL_SECTION.sub(model_section, template)
    names = " ".join(f"mlx-{m.alias} mlx-chat-{m.alias}" for m in models)
    text = (
        text.replace("@@VENV@@", quote(shell, check_path("venv", venv)))
        .replace("@@MODELS@@", quote(shell, check_path("models", models_path)))
        .replace("@@SETUP@@", quote(shell, setup or setup_command()))
        .replace("@@COMMAND_NAMES@@", names)
    )
    leftover = _TOKEN.search(text)
    if leftover:
        raise ValueError(f"template mlxtasks.{shell} has an unknown token {leftover.group()}")
    return text


def created_record(state: Path) -> Path:
    """The rc files install created, so that remove deletes them again once they are empty."""
    return state / "created-rc-files"


def install(target: RcTarget, settings: Settings, dry: bool) -> rcfile.Change:
    """Put the block (rendered for the settings) into the target's file, or only say what would change."""
    body = render(target.shell, settings.venv, settings.models, settings.catalog)
    return rcfile.update(
        target.path,
        lambda text: rcfile.apply_block(text, body, str(target.path)),
        dry=dry,
        created=created_record(settings.state),
    )


def remove(target: RcTarget, state: Path, dry: bool) -> rcfile.Change | None:
    """Take the block out of the target's file; None when there is no such file."""
    if not target.path.exists():
        return None
    return rcfile.update(
        target.path,
        lambda text: (rcfile.remove_block(text, str(target.path)), []),
        dry=dry,
        own_file=target.own_file,
        created=created_record(state),
    )


def outcome(
    change: rcfile.Change, target: RcTarget, dry: bool, verb: str, after: str
) -> tuple[str, str, str, list[str]]:
    """(kind, step name, summary, lines to print after it) for one file; after: the diff's new side."""
    name = f"shell ({target.shell})"
    notes = [f"    {line}" for line in (target.note, *change.warnings) if line]
    if not change.modified:
        return "done", name, f"no change: {target.path}", notes
    if dry:
        return (
            "dry",
            name,
            f"{verb} {target.path}",
            [rcfile.unified_diff(change.old, change.new, target.path, after), *notes],
        )
    if change.target == target.path:
        return "changed", name, f"{verb} {target.path}", notes
    if change.deleted:  # the file goes, and the symlink stays as it was before install made its target
        return "changed", name, f"{verb} {change.target}, which the symlink {target.path} points to", notes
    return "changed", name, f"{verb} {target.path} (a symlink to {change.target})", notes
