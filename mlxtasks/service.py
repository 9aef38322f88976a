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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

from .config import config_home
from .errors import MlxTasksError

LABEL = "org.mlxtasks.serve"
UNIT = "mlxtasks-serve.service"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
UNLOAD_WAIT_S = 15.0  # launchd sends SIGTERM, and the server may take a while to end


@dataclass(frozen=True)
class Target:
    kind: str  # "launchd" or "systemd"
    path: Path
    load: tuple[tuple[str, ...], ...]  # commands that start it now and at every login
    unload: tuple[tuple[str, ...], ...]  # commands that stop it and forget it (failures harmless)
    loaded: tuple[str, ...] = ()  # succeeds while the manager still knows the service (launchd: until bootout is done)
    session: tuple[str, ...] = ()  # fails when there is no login session to start it in
    no_session: str = ""  # what that failure means, in a sentence


def target(os_name: str, home: Path, config_home: Path, uid: int) -> Target:
    """Where this platform keeps a login service for the user, and how it is loaded and unloaded."""
    if os_name == "darwin":
        path = home / "Library" / "LaunchAgents" / f"{LABEL}.plist"
        domain = f"gui/{uid}"
        return Target("launchd", path, load=(("launchctl", "bootstrap", domain, str(path)),),
                      unload=(("launchctl", "bootout", f"{domain}/{LABEL}"),),
                      loaded=("launchctl", "print", f"{domain}/{LABEL}"), session=("launchctl", "print", domain),
                      no_session=f"launchd has no {domain} domain: nobody is logged in at this Mac's screen as this "
                                 "user (an ssh session alone has none), and a login agent runs only in that session.")
    if os_name == "linux":
        user = ("systemctl", "--user")
        return Target("systemd", config_home / "systemd" / "user" / UNIT,
                      load=((*user, "daemon-reload"), (*user, "enable", UNIT), (*user, "restart", UNIT)),
                      unload=((*user, "disable", "--now", UNIT),))
    raise MlxTasksError(f"Autostart is made for macOS (launchd) and Linux (systemd), not {os_name}.",
                        fix="start the server yourself: invoke serve default")


def local_target(home: Path) -> Target:
    """target() for this machine and user."""
    return target(platform.system().lower(), home, config_home(home), os.getuid())


def render(kind: str, argv: Sequence[str], log: Path, env: Mapping[str, str]) -> str:
    """The service file's text. argv: the command that runs the server attached; log: where its output goes;
    env: variables the server needs (the state folder, so `serve.status` finds what the service started)."""
    for word in [*argv, str(log), *env.values()]:
        if _CONTROL.search(word):
            raise MlxTasksError(f"{word!r} contains a control character, which a service file cannot hold.",
                                fix="choose folders without newlines or tabs in their names")
    return launchd_plist(argv, log, env) if kind == "launchd" else systemd_unit(argv, log, env)


def launchd_plist(argv: Sequence[str], log: Path, env: Mapping[str, str]) -> str:
    # KeepAlive on a crash only: `serve.stop` (SIGTERM) stays stopped until the next login.
    return plistlib.dumps({
        "Label": LABEL,
        "ProgramArguments": list(argv),
        "EnvironmentVariables": dict(env),
        "RunAtLoad": True,
        "KeepAlive": {"Crashed": True},
        "StandardOutPath": str(log),
        "StandardErrorPath": str(log),
        "ProcessType": "Interactive",
    }).decode()


def systemd_unit(argv: Sequence[str], log: Path, env: Mapping[str, str]) -> str:
    # Restart on failure only: SIGTERM from `serve.stop` counts as a clean stop; three failures a minute end it.
    return "\n".join([
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
    ])


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


def install(where: Target, text: str, state: Path, run: Runner) -> None:
    """Write the service file and load it. A service that was there is unloaded first, and put back
    (file and loaded) when the new one fails to load; a first one that fails is not left half-installed."""
    if where.session and not run(shlex.join(where.session)).ok:
        raise MlxTasksError(where.no_session, fix="log in at the Mac (or through Screen Sharing), then run "
                                                  "invoke serve.install-service again; or serve now: invoke serve default")
    old = where.path.read_text() if where.path.exists() else None
    if old is not None:
        _unload(where, run)
    state.mkdir(parents=True, exist_ok=True)
    where.path.parent.mkdir(parents=True, exist_ok=True)
    where.path.write_text(text)
    try:
        _run_all(where.load, run, check=True)
    except MlxTasksError as failed:
        if old is None:
            where.path.unlink()
            raise
        where.path.write_text(old)  # never no service at all: the one that ran before comes back
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
            raise MlxTasksError(f"The service is still stopping after {UNLOAD_WAIT_S:g} s, so it was left as it is.",
                                fix="run the same command again in a minute")
        time.sleep(0.25)


def _run_all(commands: Sequence[Sequence[str]], run: Runner, check: bool) -> None:
    """Run each command; with check, the first failure is an error carrying its last line."""
    for command in command_lines(commands):
        result = run(command)
        if check and not result.ok:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise MlxTasksError(f"`{command}` failed: {detail[-1] if detail else 'no output'}.",
                                fix="fix what it says, then run invoke serve.install-service again")
