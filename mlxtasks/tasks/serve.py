"""serve: a local OpenAI-compatible endpoint (our server over mlx_lm) for editors and tools, on loopback by default."""

from invoke import Collection

from ._common import PATH_HELP, is_dry, record, require_venv, settings, task
from .cache import cache

HOST_HELP = (
    "address to listen on (default 127.0.0.1, this machine only); anything else lets other machines "
    "in, with no authentication"
)
START_HELP = {
    "model": "the installed model loaded at start, such as qwen7b (invoke models.list); default: mlx.default_model; "
    "none: no model until a request names one",
    "port": "port to listen on (default: mlx.serve_port, 8080)",
    "host": HOST_HELP,
    "force": "serve it even if it looks too big for this machine's memory",
    "ollama": "serve Ollama's clients too, on mlx.serve_ollama_port or else 11434 (Ollama's own port)",
    "venv": PATH_HELP["venv"],
    "models": PATH_HELP["models"],
}


def _prepare(c, model, port, host, force, venv, models, context=None, ollama=False, kv_bits=None):
    """Settings, the model, the host and the server's argv, checked as every start checks them."""
    from .. import config, serve
    from ..facts import probe

    port = None if port is None else config.port_number("--port", port)
    s = serve.asking_ollama(
        settings(c, venv=venv, models=models, serve_port=port, context=context, kv_bits=kv_bits), ollama
    )
    require_venv(s)
    return (s, *serve.prepare(s, model, host, probe(), force))


def _warn_if_open(host):
    from .. import serve, ui

    warning = serve.open_warning(host)
    if warning:
        ui.note(warning)


def _runner(c):
    """service's Runner: one command through c.run, quietly, its failure returned."""
    return lambda command: c.run(command, warn=True, hide=True, in_stream=False)


@task(
    default=True,
    positional=["model"],
    auto_shortflags=False,
    help={
        **START_HELP,
        "foreground": "stay attached: output here, Ctrl-C stops it",
        "context": "tokens a request may use, prompt and reply (default: the largest that fits, up to the model's own)",
        "kv_bits": "keep the models' KV caches at 4 or 8 bits, for more context in the same memory "
        "(default: mlx.kv_bits, off)",
    },
)
def start(
    c,
    model,
    port=None,
    host=None,
    force=False,
    foreground=False,
    venv=None,
    models=None,
    context=None,
    ollama=False,
    kv_bits=None,
):
    """Serve the installed models at an OpenAI-compatible URL, one loaded at start (background; `none`: none)."""
    from .. import serve, ui

    s, alias, host, argv, capped = _prepare(c, model, port, host, force, venv, models, context, ollama, kv_bits)
    serve.refuse_second(s.state)
    serve.check_ports(host, s, retry=f"invoke serve {alias}")
    _warn_if_open(host)
    if capped:
        ui.note(capped)
    if foreground:
        serve.run_attached(argv, s.state, alias, host, s.serve_port, s.serve_ollama_port)
    ui.out(f"Starting {serve.called(alias)} on {host} port {s.serve_port} (log: {serve.log_path(s.state)})...")
    server = serve.start(argv, s.state, alias, host, s.serve_port, s.serve_start_timeout_s, s.serve_ollama_port)
    ui.out(serve.started_text(server, s))


@task(help={})
def status(c):
    """Say whether a server runs: pid, model, URL, uptime, and whether it answers."""
    from invoke import Exit

    from .. import serve, ui

    text, healthy = serve.status_report(settings(c).state)
    ui.out(text)
    if not healthy:
        raise Exit(code=1)


@task(help={})
def stop(c):
    """Stop the server (TERM, then KILL if it lingers) and clean up its pid file."""
    from .. import serve, ui

    server = serve.stop(settings(c).state)
    ui.out(f"Stopped {serve.called(server.alias)} (pid {server.pid})." if server else "No server is running.")


@task(help={})
def ps(c):
    """List the running server's loaded models: memory, idle time, and when each unloads."""
    from .. import serve, ui

    ui.out(serve.ps_text(serve.ask(settings(c).state, "ps")))


@task(positional=["model"], help={"model": "a loaded model (invoke serve.ps)"})
def unload(c, model):
    """Unload a model from the running server now, or once its requests end."""
    from .. import serve, ui

    ui.out(serve.unload(settings(c).state, model))


@task(help={"lines": "how many of the last lines to show (default 50; 0: all)"})
def logs(c, lines=50):
    """Show the end of the server's log."""
    from .. import serve, ui

    ui.out(serve.log_text(settings(c).state, lines))


@task(
    name="install-service",
    positional=["model"],
    auto_shortflags=False,
    help={**START_HELP, "dry_run": "show the file and commands, change nothing"},
)
def install_service(c, model, port=None, host=None, force=False, venv=None, models=None, dry_run=False, ollama=False):
    """Start the server at every login: a launchd agent (macOS) or a systemd user unit (Linux)."""
    from .. import serve, service, ui

    s, alias, host, _, _ = _prepare(c, model, port, host, force, venv, models, ollama=ollama)
    where, text, warning = serve.service_file(s, alias, host, force)
    _warn_if_open(host)
    if warning:
        ui.note(warning)
    if is_dry(c, dry_run):
        record("dry", "serve", f"would write {where.path} and run", service.command_lines(where.load))
        return
    serve.install_service(s, where, text, _runner(c))
    record(
        "changed",
        "serve",
        f"{alias} starts at login ({where.kind}: {where.path}); serving at {serve.base_url(host, s.serve_port)}"
        + (f" and Ollama's clients at port {s.serve_ollama_port}" if s.serve_ollama_port else ""),
    )


@task(name="uninstall-service", help={"dry_run": "show what would be removed, change nothing"})
def uninstall_service(c, dry_run=False):
    """Stop the login service and remove its file."""
    from .. import service

    where = service.local_target(settings(c).home)
    if not where.path.exists():
        record("done", "serve", f"no service file ({where.path})")
        return
    if is_dry(c, dry_run):
        record("dry", "serve", f"would run these and delete {where.path}", service.command_lines(where.unload))
        return
    service.uninstall(where, _runner(c))
    record("changed", "serve", f"removed {where.path}")


ns = Collection("serve", start, status, stop, ps, unload, cache, logs, install_service, uninstall_service)
