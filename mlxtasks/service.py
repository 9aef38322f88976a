"""Autostart for `invoke serve`: a launchd agent (macOS) or a systemd user unit (Linux), rendered as
text from plain inputs, with the commands that load and unload it. install and uninstall write the file
and run those commands through the runner they are given (the task's c.run)."""

from __future__ import annotations

import os
import platform
import plistlib
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .config import config_home
from .errors import MlxTasksError

LABEL = "org.mlxtasks.serve"
UNIT = "mlxtasks-serve.service"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
UNLOAD_WAIT_S = 15.0  # launchd sends SIGTERM, and the server may take a while to end
SERVICE_FILE_MODE = 0o644  # launchd refuses an agent whose file others may write; a umask of 077 must not matter
# Once the old label is gone (we wait for that), launchd's "Input/output error" is its policy saying no.
BOOTSTRAP_REFUSED = "Bootstrap failed: 5"
BOOTSTRAP_REFUSED_MEANS = (
    "That is launchd refusing the agent: on macOS 13 and later most often because its switch is "
    "off in System Settings > General > Login Items & Extensions > Allow in the Background "
    "(listed as python3 or mlxtasks)."
)
BOOTSTRAP_REFUSED_FIX = (
    "turn that switch on, then run invoke serve.install-service again (or serve without the "
    "service: invoke serve default)"
)
# Folders macOS's privacy protection (TCC) keeps from a background agent that no one granted Full Disk Access:
# home folders by name, and anything on another volume.
PROTECTED_HOME_FOLDERS = ("Desktop", "Documents", "Downloads", "Library/Mobile Documents", "Library/CloudStorage")


@dataclass(frozen=True)
class Target:
    kind: str  # "launchd" or "systemd"
    path: Path
    load: tuple[tuple[str, ...], ...]  # commands that start it now and at every login
    unload: tuple[tuple[str, ...], ...]  # commands that stop it and forget it (failures harmless)
    loaded: tuple[str, ...] = ()  # succeeds while the manager still knows the service (launchd: until bootout is done)
    session: tuple[str, ...] = ()  # fails when there is no login session to start it in
    no_session: str = ""  # what that failure means, in a sentence
    refusals: tuple[tuple[str, str, str], ...] = ()  # (words in a failed load's output, what they mean, the fix)


def target(os_name: str, home: Path, config_home: Path, uid: int) -> Target:
    """Where this platform keeps a login service for the user, and how it is loaded and unloaded."""
    if os_name == "darwin":
        path = home / "Library" / "LaunchAgents" / f"{LABEL}.plist"
        domain = f"gui/{uid}"
        return Target(
            "launchd",
            path,
            load=(("launchctl", "bootstrap", domain, str(path)),),
            unload=(("launchctl", "bootout", f"{domain}/{LABEL}"),),
            loaded=("launchctl", "print", f"{domain}/{LABEL}"),
            session=("launchctl", "print", domain),
            no_session=f"launchd has no {domain} domain: nobody is logged in at this Mac's screen as this "
            "user (an ssh session alone has none), and a login agent runs only in that session.",
            refusals=((BOOTSTRAP_REFUSED, BOOTSTRAP_REFUSED_MEANS, BOOTSTRAP_REFUSED_FIX),),
        )
    if os_name == "linux":
        user = ("systemctl", "--user")
        return Target(
            "systemd",
            config_home / "systemd" / "user" / UNIT,
            load=((*user, "daemon-reload"), (*user, "enable", UNIT), (*user, "restart", UNIT)),
            unload=((*user, "disable", "--now", UNIT),),
        )
    raise MlxTasksError(
        f"Autostart is made for macOS (launchd) and Linux (systemd), not {os_name}.",
        fix="start the server yourself: invoke serve default",
    )


def local_target(home: Path) -> Target:
    """target() for this machine and user."""
    return target(platform.system().lower(), home, config_home(home), os.getuid())


def render(kind: str, argv: Sequence[str], log: Path, env: Mapping[str, str]) -> str:
    """The service file's text. argv: the command that runs the server attached; log: where its output goes;
    env: variables the server needs (the state folder, so `serve.status` finds what the service started)."""
    for word in [*argv, str(log), *env.values()]:
        if _CONTROL.search(word):
            raise MlxTasksError(
                f"{word!r} contains a control character, which a service file cannot hold.",
                fix="choose folders without newlines or tabs in their names",
            )
    return launchd_plist(argv, log, env) if kind == "launchd" else systemd_unit(argv, log, env)


def launchd_plist(argv: Sequence[str], log: Path, env: Mapping[str, str]) -> str:
    # Restarted after any exit but a clean one: launchd watches the server's supervisor, which exits 0 for a stop
    # (`serve.stop`, logout), 70 after an engine fault and 128+N after signal N killed the server (139: a crash).
    return plistlib.dumps(
        {
            "Label": LABEL,
            "ProgramArguments": list(argv),
            "EnvironmentVariables": dict(env),
            "RunAtLoad": True,
            "KeepAlive": {"SuccessfulExit": False},
            "StandardOutPath": str(log),
            "StandardErrorPath": str(log),
            "ProcessType": "Interactive",
        }
    ).decode()


def systemd_unit(argv: Sequence[str], log: Path, env: Mapping[str, str]) -> str:
    # Restart on failure only: SIGTERM from `serve.stop` counts as a clean stop; three failures a minute end it.
    return "\n".join(
        [
            "[Unit]",
            "Description=mlxtasks: OpenAI-compatible MLX server (invoke serve)",
            "StartLimitIntervalSec=60",  # a server that cannot start (say, the port is taken) stops being retried
            "StartLimitBurst=3",
            "",
            "[Service]",
            "Type=simple",
            *(f"Environment={_systemd_quoted(f'{name}={value}')}" for name, value in env.items()),
            "ExecStart=" + " ".join(_systemd_word(word) for word in argv),
            "Restart=on-failure",
            "RestartSec=5",
            "StandardOutput=append:" + str(log).replace("%", "%%"),
            "StandardError=inherit",
            "",
            "[Install]",
            "WantedBy=default.target",
            "",
        ]
    )


def _systemd_word(word: str) -> str:
    """One ExecStart argument: specifiers (%) and variables ($) escaped, quoted when it has spaces or quotes."""
    word = word.replace("$", "$$")
    if word and not re.search(r"[\s\"'\\;]", word):
        return word.replace("%", "%%")
    return _systemd_quoted(word)


def _systemd_quoted(text: str) -> str:
    """A double-quoted value: specifiers (%) escaped, as are backslashes and quotes (Environment= expands no $)."""
    return '"' + text.replace("%", "%%").replace("\\", "\\\\").replace('"', '\\"') + '"'


class Ran(Protocol):
    ok: bool
    stdout: str
    stderr: str


Runner = Callable[[str], Ran]  # runs one command line, never raising on failure


def command_lines(commands: Sequence[Sequence[str]]) -> list[str]:
    return [shlex.join(command) for command in commands]


def blocked_folders(home: Path, folders: Sequence[Path]) -> list[Path]:
    """The folders a launchd agent is kept from without Full Disk Access: under Desktop, Documents, Downloads,
    iCloud Drive or a cloud storage provider in the home folder, or on another volume (/Volumes)."""
    protected = [home / name for name in PROTECTED_HOME_FOLDERS] + [Path("/Volumes")]
    return [folder for folder in folders if any(folder == p or p in folder.parents for p in protected)]


def blocked_text(folders: Sequence[Path]) -> str:
    return (
        f"Warning: {', '.join(map(str, folders))} is in a folder macOS keeps from background agents (Desktop, "
        "Documents, Downloads, iCloud Drive, another volume), so the service's server will likely be refused "
        "its files. Move it (the models: --models ~/mlx-models), or give the venv's python3 Full Disk Access "
        "in System Settings > Privacy & Security."
    )


def write_service_file(path: Path, text: str) -> None:
    """Write the whole file under a temporary name, mode 0644 whatever the umask, then put it in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SERVICE_FILE_MODE), "w") as file:
        file.write(text)
        os.fchmod(file.fileno(), SERVICE_FILE_MODE)
    temporary.replace(path)


def install(
    where: Target, text: str, state: Path, run: Runner, came_up: Callable[[], str | None] = lambda: None
) -> None:
    """Write the service file, load it and wait until came_up() says the server answers (None; else what went
    wrong). A service that was there is unloaded first, and put back (file and loaded) when the new one fails to
    load or to come up; a first one that fails is not left half-installed."""
    if where.session and not run(shlex.join(where.session)).ok:
        raise MlxTasksError(
            where.no_session,
            fix="log in at the Mac (or through Screen Sharing), then run "
            "invoke serve.install-service again; or serve now: invoke serve default",
        )
    old = where.path.read_text() if where.path.exists() else None
    if old is not None:
        _unload(where, run)
    state.mkdir(parents=True, exist_ok=True)
    write_service_file(where.path, text)
    try:
        _run_all(where.load, run, check=True, refusals=where.refusals)
        problem = came_up()
        if problem:
            _unload(where, run)
            raise MlxTasksError(
                problem,
                fix="read its log (invoke serve.logs), fix what it says, then run invoke serve.install-service again",
            )
    except MlxTasksError as failed:
        if old is None:
            where.path.unlink()
            raise
        write_service_file(where.path, old)  # never no service at all: the one that ran before comes back
        _run_all(where.load, run, check=False)
        raise MlxTasksError(failed.message + " The service as it was before is back in place.", failed.fix) from None


def uninstall(where: Target, run: Runner) -> None:
    _unload(where, run)
    where.path.unlink()


def _unload(where: Target, run: Runner) -> None:
    """Unload the service and wait until the manager has let it go: launchd refuses to load a label
    it is still stopping ("Bootstrap failed: 5")."""
    _run_all(where.unload, run, check=False)
    if not where.loaded:
        return
    deadline = time.monotonic() + UNLOAD_WAIT_S
    while run(shlex.join(where.loaded)).ok:
        if time.monotonic() > deadline:
            raise MlxTasksError(
                f"The service is still stopping after {UNLOAD_WAIT_S:g} s, so it was left as it is.",
                fix="run the same command again in a minute",
            )
        time.sleep(0.25)


def _run_all(
    commands: Sequence[Sequence[str]], run: Runner, check: bool, refusals: Sequence[tuple[str, str, str]] = ()
) -> None:
    """Run each command; with check, the first failure is an error carrying its last line, and what it
    means where `refusals` knows its words."""
    for command in command_lines(commands):
        result = run(command)
        if check and not result.ok:
            output = (result.stderr or result.stdout).strip()
            detail = output.splitlines()
            message = f"`{command}` failed: {detail[-1] if detail else 'no output'}."
            fix = "fix what it says, then run invoke serve.install-service again"
            for words, means, refusal_fix in refusals:
                if words in output:
                    message, fix = f"{message} {means}", refusal_fix
            raise MlxTasksError(message, fix=fix)
