"""serve: a local OpenAI-compatible endpoint (our server over mlx_lm) for editors and tools, on loopback by default."""

from invoke import Collection

from ._common import PATH_HELP, is_dry, record, require_venv, settings, task

HOST_HELP = ("address to listen on (default 127.0.0.1, this machine only); anything else lets other machines "
             "in, with no authentication")
START_HELP = {
    "model": "an installed model such as qwen7b (invoke models.list); default: mlx.default_model",
    "port": "port to listen on (default: mlx.serve_port, 8080)",
    "host": HOST_HELP,
    "force": "serve it even if it looks too big for this machine's memory",
    "venv": PATH_HELP["venv"],
    "models": PATH_HELP["models"],
}


def _prepare(c, model, port, host, force, venv, models):
    """Settings, the model, the host and the server's argv, checked as every start checks them."""
    from .. import config, serve
    from ..errors import MlxTasksError
    from ..facts import probe

    port = None if port is None else config.port_number("--port", port)
    s = settings(c, venv=venv, models=models, serve_port=port)
    require_venv(s)
    entry, folder = serve.choose_model(s, model, probe(), force)
    host = host or "127.0.0.1"
    return s, entry, host, serve.server_argv(s.venv_python, entry, folder, host, s.serve_port, s.serve_allowed_origins,
                                             s.state)


def _warn_if_open(host):
    import sys

    from ..protocol import is_loopback

    if not is_loopback(host):
        print(f"Warning: listening on {host}, so other machines can reach this server, and it has no "
              "authentication: anyone who can connect can use the model.", file=sys.stderr)


@task(default=True, positional=["model"], auto_shortflags=False, help={**START_HELP, "foreground": "stay attached: output here, Ctrl-C stops it"})
def start(c, model, port=None, host=None, force=False, foreground=False, venv=None, models=None):
    """Serve a model at an OpenAI-compatible URL (background; `default` = mlx.default_model)."""
    from .. import serve, ui

    s, entry, host, argv = _prepare(c, model, port, host, force, venv, models)
    serve.refuse_second(s.state)
    serve.check_port(host, s.serve_port, retry=f"invoke serve {entry.alias}")
    _warn_if_open(host)
    if foreground:
        serve.run_attached(argv, s.state, entry.alias, host, s.serve_port)
    ui.out(f"Starting {entry.alias} on {host} port {s.serve_port} (log: {serve.log_path(s.state)})...")
    server = serve.start(argv, s.state, entry.alias, host, s.serve_port, s.serve_start_timeout_s)
    ui.out(f"Serving {entry.alias} at {server.url} (pid {server.pid}); any API key works. Stop it: invoke serve.stop")
    ui.out(f"Try: {serve.client_example(server)}")


@task(help={})
def status(c):
    """Say whether a server runs: pid, model, URL, uptime, and whether it answers."""
    from invoke import Exit

    from .. import serve, ui

    state = settings(c).state
    crash = serve.crashed(state)
    if crash:
        ui.out(crash)
        serve.running(state)  # removes the record: the next status says no server runs
        raise Exit(code=1)
    server = serve.running(state)
    if not server:
        ui.out("No server is running. Start one: invoke serve default")
        raise Exit(code=1)
    healthy = serve.healthy(server)
    for name, value in [("model", server.alias), ("url", server.url), ("pid", server.pid),
                        ("uptime", serve.uptime(server)),
                        ("health", "ok" if healthy else "not answering: invoke serve.logs")]:
        ui.out(f"{name:<8}{value}")
    if not healthy:
        raise Exit(code=1)


@task(help={})
def stop(c):
    """Stop the server (TERM, then KILL if it lingers) and clean up its pid file."""
    from .. import serve, ui

    server = serve.stop(settings(c).state)
    ui.out(f"Stopped {server.alias} (pid {server.pid})." if server else "No server is running.")


@task(help={"lines": "how many of the last lines to show (default 50; 0: all)"})
def logs(c, lines=50):
    """Show the end of the server's log."""
    from .. import serve, ui
    from ..errors import MlxTasksError

    path = serve.log_path(settings(c).state)
    if not path.is_file():
        raise MlxTasksError(f"There is no server log yet ({path}).", fix="start a server: invoke serve default")
    text = path.read_text(errors="replace").splitlines()
    ui.out("\n".join(text[-lines:] if lines else text))


@task(name="install-service", positional=["model"], auto_shortflags=False,
      help={**START_HELP, "dry_run": "show the file and commands, change nothing"})
def install_service(c, model, port=None, host=None, force=False, venv=None, models=None, dry_run=False):
    """Start the server at every login: a launchd agent (macOS) or a systemd user unit (Linux)."""
    from .. import serve, service
    from ..errors import MlxTasksError

    s, entry, host, _ = _prepare(c, model, port, host, force, venv, models)
    mlxtasks = s.venv / "bin" / "mlxtasks"
    if not mlxtasks.exists():
        raise MlxTasksError(f"mlxtasks is not installed in {s.venv}, and the service runs it from there.",
                            fix="invoke install")
    _warn_if_open(host)
    where = _target()
    text = service.render(where.kind, serve.attached_argv(s, entry.alias, host, force), serve.log_path(s.state),
                          serve.service_env(s))
    if is_dry(c, dry_run):
        record("dry", "serve", f"would write {where.path} and run", _commands(where.load))
        return
    _require_session(c, where)
    old = where.path.read_text() if where.path.exists() else None
    if old is not None:
        _unload(c, where)
    s.state.mkdir(parents=True, exist_ok=True)
    where.path.parent.mkdir(parents=True, exist_ok=True)
    where.path.write_text(text)
    try:
        _run_all(c, where.load, check=True)
    except MlxTasksError as failed:
        if old is None:
            where.path.unlink()  # not left half-installed
            raise
        where.path.write_text(old)  # never no service at all: the one that ran before comes back
        _run_all(c, where.load, check=False)
        raise MlxTasksError(failed.message + " The service as it was before is back in place.", failed.fix) from None
    record("changed", "serve", f"{entry.alias} starts at login ({where.kind}: {where.path})")


@task(name="uninstall-service", help={"dry_run": "show what would be removed, change nothing"})
def uninstall_service(c, dry_run=False):
    """Stop the login service and remove its file."""
    where = _target()
    if not where.path.exists():
        record("done", "serve", f"no service file ({where.path})")
        return
    if is_dry(c, dry_run):
        record("dry", "serve", f"would run these and delete {where.path}", _commands(where.unload))
        return
    _unload(c, where)
    where.path.unlink()
    record("changed", "serve", f"removed {where.path}")


UNLOAD_WAIT_S = 15.0  # launchd sends SIGTERM, and the server may take a while to end


def _require_session(c, where):
    from ..errors import MlxTasksError

    if where.session and not c.run(_commands([where.session])[0], warn=True, hide=True, in_stream=False).ok:
        raise MlxTasksError(where.no_session, fix="log in at the Mac (or through Screen Sharing), then run "
                                                  "invoke serve.install-service again; or serve now: invoke serve default")


def _unload(c, where):
    """Unload the service and wait until the manager has let it go: launchd refuses to load a label
    it is still stopping ("Bootstrap failed: 5")."""
    import time

    from ..errors import MlxTasksError

    _run_all(c, where.unload, check=False)
    if not where.loaded:
        return
    deadline = time.monotonic() + UNLOAD_WAIT_S
    while c.run(_commands([where.loaded])[0], warn=True, hide=True, in_stream=False).ok:
        if time.monotonic() > deadline:
            raise MlxTasksError(f"The service is still stopping after {UNLOAD_WAIT_S:g} s, so it was left as it is.",
                                fix="run the same command again in a minute")
        time.sleep(0.25)


def _target():
    import os
    import platform
    from pathlib import Path

    from .. import service

    home = Path.home()
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    return service.target(platform.system().lower(), home, config_home, os.getuid())


def _commands(commands):
    import shlex

    return [shlex.join(command) for command in commands]


def _run_all(c, commands, check):
    """Run each command; with check, the first failure is an error carrying its last line."""
    from ..errors import MlxTasksError

    for command in _commands(commands):
        result = c.run(command, warn=True, hide=True, in_stream=False)
        if check and not result.ok:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise MlxTasksError(f"`{command}` failed: {detail[-1] if detail else 'no output'}.",
                                fix="fix what it says, then run invoke serve.install-service again")


ns = Collection("serve", start, status, stop, logs, install_service, uninstall_service)
