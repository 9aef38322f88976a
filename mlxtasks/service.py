"""Autostart for `invoke serve`: a launchd agent (macOS) or a systemd user unit (Linux), rendered as
text from plain inputs, with the commands that load and unload it. Nothing here writes or runs."""

from __future__ import annotations

import plistlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from .errors import MlxTasksError

LABEL = "org.mlxtasks.serve"
UNIT = "mlxtasks-serve.service"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
