"""`invoke serve`: our OpenAI-compatible server (mlxtasks.runtime.server) for one installed model, started from the venv and
looked after through a record in the state folder (pid, model, address), with its output in a log there.

Pure where it can be (which model, which argv, which URL); the rest starts, probes and stops processes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from . import catalog, store
from .catalog import Model
from .config import Settings
from .errors import MlxTasksError
from .facts import GB, HostFacts
from .protocol import ServeSpec, is_loopback

STOP_WAIT_S = 10.0  # after SIGTERM, before SIGKILL
TAIL_LINES = 15  # of the log, shown when a start fails
LOGS_FIX = "read its whole log: invoke serve.logs (and check the model's files: invoke models.verify)"


@dataclass(frozen=True)
class Server:
    pid: int
    alias: str
    host: str
    port: int
    started: float  # the process's start time: tells it from a later process given the same pid

    @property
    def url(self) -> str:
        return base_url(self.host, self.port)


def record_path(state: Path) -> Path:
    """The pid file: the running server as JSON."""
    return state / "serve.json"


def log_path(state: Path) -> Path:
    return state / "serve.log"


def exit_path(state: Path) -> Path:
    """Where the server says why it ended after a fault (its exit status and the error)."""
    return state / "serve.exit"


def base_url(host: str, port: int) -> str:
    """What clients on this machine use; a server on every interface is reached through loopback."""
    local = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://{f'[{local}]' if ':' in local else local}:{port}/v1"


def client_example(server: Server) -> str:
    body = json.dumps({"model": server.alias, "messages": [{"role": "user", "content": "Hello!"}]})
    return f"curl {server.url}/chat/completions -H 'Content-Type: application/json' -d '{body}'"


def choose_model(settings: Settings, alias: str, facts: HostFacts, force: bool) -> tuple[Model, Path]:
    """The catalogue model to serve and its folder; refused when unknown, not downloaded or too big."""
    model, folder = store.local_model(settings.default_model if alias == "default" else alias, settings.models,
                                      settings.catalog)
    if not force and not catalog.fits(model, facts):
        budget = catalog.memory_budget(facts) / GB
        raise MlxTasksError(f"{model.alias} needs about {model.ram_gb:.1f} GB of memory and this machine can give a "
                            f"model {budget:.1f} GB, so it would fail to load or crawl.",
                            fix=f"serve a model that fits (invoke models.list), or try anyway: invoke serve {model.alias} --force")
    return model, folder


def prepare(settings: Settings, alias: str, host: str | None, facts: HostFacts,
            force: bool) -> tuple[Model, str, list[str], str]:
    """The model (see choose_model), the host (default loopback), the server's argv, as every start checks them,
    and the note to say once when --context had to be capped to what fits."""
    from .fit import installed_context

    model, folder = choose_model(settings, alias, facts, force)
    host = host or "127.0.0.1"
    context, note = installed_context(folder, store.size_on_disk(folder), catalog.memory_budget(facts), settings.context)
    argv = server_argv(settings.venv_python, model, folder, host, settings.serve_port, settings.serve_allowed_origins,
                       settings.state, context, settings.serve_model_map)
    return model, host, argv, note


def open_warning(host: str) -> str | None:
    """What to say before listening beyond this machine."""
    if is_loopback(host):
        return None
    return (f"Warning: listening on {host}, so other machines can reach this server, and it has no "
            "authentication: anyone who can connect can use the model.")


def server_argv(python: Path, model: Model, folder: Path, host: str, port: int, origins: Sequence[str],
                state: Path, context: int = 0, model_map: dict[str, str] | None = None) -> list[str]:
    """The server's command line: our server (mlxtasks.runtime.server) with its spec, the catalogue's sampling
    as its defaults, and the names a request may use for the model."""
    spec = ServeSpec(alias=model.alias, model=str(folder), names=sorted({folder.name, model.repo, str(folder)}),
                     host=host, port=port, allowed_origins=list(origins), temperature=model.temperature,
                     top_p=model.top_p, max_tokens=model.max_tokens, log_file=str(log_path(state)),
                     exit_file=str(exit_path(state)), context=context, model_map=dict(model_map or {}))
    return [str(python), "-m", "mlxtasks.runtime.server", spec.to_json()]


def attached_argv(settings: Settings, alias: str, host: str, force: bool) -> list[str]:
    """What a login service runs: the venv's mlxtasks, serving attached after the same checks as `serve`."""
    if not (settings.venv / "bin" / "mlxtasks").exists():
        raise MlxTasksError(f"mlxtasks is not installed in {settings.venv}, and the service runs it from there.",
                            fix="invoke install")
    return [str(settings.venv / "bin" / "mlxtasks"), "serve", alias, "--foreground", "--venv", str(settings.venv),
            "--models", str(settings.models), "--port", str(settings.serve_port),
            *(["--host", host] if host != "127.0.0.1" else []), *(["--force"] if force else [])]


def service_env(settings: Settings) -> dict[str, str]:
    """What a login service needs from our environment: the state folder, where the record says a server runs."""
    return {"XDG_STATE_HOME": str(settings.state.parent)}


def server_env() -> dict[str, str]:
    # The served model is a local folder; nothing a request says may start a download.
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


def running(state: Path) -> Server | None:
    """The server the record names while that very process lives; a stale record is removed."""
    path = record_path(state)
    try:
        server = Server(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        server = None
    if server and _alive(server):
        return server
    path.unlink(missing_ok=True)
    return None


def _alive(server: Server) -> bool:
    import psutil

    try:
        process = psutil.Process(server.pid)
        return abs(process.create_time() - server.started) < 1 and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def crashed(state: Path) -> str | None:
    """What to say when the record names a server that has gone without serve.stop (which removes the
    record) and without saying it was stopped: its exit status when it wrote one, and the log's last lines."""
    try:
        server = Server(**json.loads(record_path(state).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if _alive(server):
        return None
    try:
        ended = json.loads(exit_path(state).read_text())
        if ended["status"] == 0:
            return None  # it was stopped (Ctrl-C, a service manager's stop)
        how = f"exit status {ended['status']}: {ended['reason']}"
    except (OSError, ValueError, KeyError, TypeError):
        how = "exit status unknown: killed, or a crash in native code"
    return f"The server for {server.alias} (pid {server.pid}) crashed ({how}). The log's last lines:\n{tail(state)}"


def refuse_second(state: Path) -> None:
    server = running(state)
    if server:
        raise MlxTasksError(f"A server is already running: {server.alias} at {server.url} (pid {server.pid}).",
                            fix="stop it first: invoke serve.stop")


def check_port(host: str, port: int, retry: str) -> None:
    """Fail now, in one sentence, where the server could not listen. retry: the same command, another port."""
    not_here = MlxTasksError(f"{host!r} is not an address of this machine to listen on.",
                             fix="leave --host out (127.0.0.1), or give one of this machine's IP addresses")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror:
        raise not_here from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise not_here from None
            if exc.errno == errno.EADDRINUSE:
                raise MlxTasksError(f"Port {port} on {host} is already in use by another program.",
                                    fix=f"{retry} --port {port + 1} (or set mlx.serve_port)") from None
            raise MlxTasksError(f"Cannot listen on {host} port {port}: {exc.strerror}.",
                                fix=f"{retry} --port {max(port + 1, 1024)}") from None


def _record(state: Path, server: Server) -> None:
    state.mkdir(parents=True, exist_ok=True)
    path = record_path(state)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(server)))
    temporary.replace(path)


def start(argv: list[str], state: Path, alias: str, host: str, port: int, timeout: float) -> Server:
    """Start the server detached, its output in the log, and return once it answers. On failure it is
    stopped, its record removed, and the error carries the log's last lines."""
    import psutil

    state.mkdir(parents=True, exist_ok=True)
    exit_path(state).unlink(missing_ok=True)
    log_path(state).unlink(missing_ok=True)  # a new log, yours alone: readable by you alone
    with os.fdopen(os.open(log_path(state), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env=server_env(), start_new_session=True)
    server = Server(process.pid, alias, host, port, psutil.Process(process.pid).create_time())
    _record(state, server)
    try:
        problem = _wait_until_ready(server, process, timeout)
    except KeyboardInterrupt:
        problem = "Interrupted while the server was starting, so it was stopped."
    if problem:
        _end(server.pid)
        if running(state) == server:  # a server started meanwhile by someone else keeps its record
            record_path(state).unlink(missing_ok=True)
        raise MlxTasksError(f"{problem} The log's last lines:\n{tail(state)}", fix=LOGS_FIX)
    return server


def _wait_until_ready(server: Server, process: subprocess.Popen, timeout: float) -> str | None:
    """None once our process answers; else what went wrong."""
    deadline = time.monotonic() + timeout
    while True:
        code = process.poll()
        if code is not None:
            return f"The server exited while starting (status {code})."
        if healthy(server):
            return None
        if time.monotonic() > deadline:
            return f"The server did not answer within {timeout:g} s, so it was stopped."
        time.sleep(0.25)


def run_attached(argv: list[str], state: Path, alias: str, host: str, port: int) -> None:
    """Become the server (exec keeps the pid, so the record stays true); its output goes where ours does."""
    import psutil

    _record(state, Server(os.getpid(), alias, host, port, psutil.Process().create_time()))
    exit_path(state).unlink(missing_ok=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # what was printed before exec would be lost
    os.execve(argv[0], argv, server_env())


def healthy(server: Server, timeout: float = 2.0) -> bool:
    """The server's /health answers 200 (its engine works)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    try:
        with opener.open(server.url.removesuffix("/v1") + "/health", timeout=timeout) as answer:
            return answer.status == 200
    except OSError:
        return False


def stop(state: Path, wait: float = STOP_WAIT_S) -> Server | None:
    """TERM the running server, KILL it if it is still there after `wait`; remove the record.
    None when there was nothing to stop."""
    server = running(state)
    if server:
        _end(server.pid, wait)
    record_path(state).unlink(missing_ok=True)
    return server


def _end(pid: int, wait: float = STOP_WAIT_S) -> None:
    import psutil

    try:
        process = psutil.Process(pid)
        family = [process, *process.children(recursive=True)]  # the server runs in its supervisor's child
        process.terminate()
        _, alive = psutil.wait_procs(family, timeout=wait)
        for left in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                left.kill()
        psutil.wait_procs(alive, timeout=wait)
    except psutil.NoSuchProcess:
        pass


def tail(state: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = log_path(state).read_text(errors="replace")
    except OSError:
        return "  (no log)"
    return "\n".join(f"  {line}" for line in text.splitlines()[-lines:]) or "  (the log is empty)"


def log_text(state: Path, lines: int) -> str:
    """The last `lines` lines of the server's log (0: all of it)."""
    path = log_path(state)
    if not path.is_file():
        raise MlxTasksError(f"There is no server log yet ({path}).", fix="start a server: invoke serve default")
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:] if lines else text)


def status_report(state: Path) -> tuple[str, bool]:
    """serve.status's text, and whether a server runs and answers. A crash is said once: its record goes."""
    crash = crashed(state)
    if crash:
        running(state)  # removes the record: the next status says no server runs
        return crash, False
    server = running(state)
    if not server:
        return "No server is running. Start one: invoke serve default", False
    answers = healthy(server)
    return describe(server, answers), answers


def describe(server: Server, answers: bool, now: float | None = None) -> str:
    """serve.status's lines: model, URL, pid, uptime and health."""
    rows = [("model", server.alias), ("url", server.url), ("pid", server.pid), ("uptime", uptime(server, now)),
            ("health", "ok" if answers else "not answering: invoke serve.logs")]
    return "\n".join(f"{name:<8}{value}" for name, value in rows)


def uptime(server: Server, now: float | None = None) -> str:
    seconds = int((time.time() if now is None else now) - server.started)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (seconds, "s")]
    shown = [f"{n} {unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0 s"
