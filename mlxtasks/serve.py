"""`invoke serve`: our OpenAI-compatible server (mlxtasks.runtime.server) for the installed models (one loaded at start,
or none; the others when a request names them), started from the venv and looked after through a record in the state
folder (pid, model, address), with its output in a log there; serve.ps and serve.unload ask the running server.

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
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from . import catalog, files, service, store
from .catalog import Model
from .config import Settings
from .errors import MlxTasksError, untraced
from .facts import GB, HostFacts
from .protocol import ServedModel, ServeSpec, is_loopback

STOP_WAIT_S = 10.0  # after SIGTERM, before SIGKILL
TAIL_LINES = 15  # of the log, shown when a start fails
LOGS_FIX = "read its whole log: invoke serve.logs (and check the model's files: invoke models.verify)"
NO_MODEL = "none"  # `invoke serve none`: no model loaded at start
OLLAMA_PORT = 11434  # Ollama's, where its clients look: `serve --ollama` listens there too
OLLAMA_STOP = "quit the Ollama app, or: brew services stop ollama, or: systemctl stop ollama"


@dataclass(frozen=True)
class Server:
    pid: int
    alias: str
    host: str
    port: int
    started: float  # the process's start time: tells it from a later process given the same pid
    ollama_port: int = 0  # where it serves Ollama's clients too (0: nowhere)

    @property
    def url(self) -> str:
        return base_url(self.host, self.port)

    @property
    def ollama_url(self) -> str:
        return base_url(self.host, self.ollama_port).removesuffix("/v1")


def record_path(state: Path) -> Path:
    """The pid file: the running server as JSON."""
    return state / "serve.json"


def log_path(state: Path) -> Path:
    return state / "serve.log"


def exit_path(state: Path) -> Path:
    """Where the server says why it ended after a fault (its exit status and the error)."""
    return state / "serve.exit"


def cache_path(state: Path) -> Path:
    """The prompt cache's disk tier: KV caches of past prompts (they hold conversations), readable by the user alone."""
    return state / "prompt-cache"


def base_url(host: str, port: int) -> str:
    """What clients on this machine use; a server on every interface is reached through loopback."""
    local = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://{f'[{local}]' if ':' in local else local}:{port}/v1"


def client_example(server: Server, model: str) -> str:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}]})
    return f"curl {server.url}/chat/completions -H 'Content-Type: application/json' -d '{body}'"


def called(alias: str) -> str:
    """The server as its messages name it: by its model, or as one that loaded none at start."""
    return "the server (no model loaded at start)" if alias == NO_MODEL else alias


def started_text(server: Server, settings: Settings) -> str:
    """What `serve` says once the server answers: what it serves, where, and a request to try (with no model
    loaded at start: the default model if installed, else another installed one)."""
    what = "the installed models on demand" if server.alias == NO_MODEL else server.alias
    example = server.alias
    if server.alias == NO_MODEL:
        installed = [m.alias for m in store.installed_models(settings.models, settings.catalog)]
        example = settings.default_model if settings.default_model in installed or not installed else installed[0]
    example = client_example(server, example)
    ollama = (
        f"\nOllama's clients: {server.ollama_url} (its API: /api/chat, /api/tags, ...)" if server.ollama_port else ""
    )
    return (
        f"Serving {what} at {server.url} (pid {server.pid}); any API key works. Stop it: invoke serve.stop\n"
        f"Try: {example}{ollama}"
    )


def choose_model(settings: Settings, alias: str, facts: HostFacts, force: bool) -> tuple[Model, Path]:
    """The catalogue model to serve and its folder; refused when unknown, not downloaded or too big."""
    model, folder = store.local_model(settings.model_name(alias), settings.models, settings.catalog)
    model = replace(model, kv_bits=settings.kv_bits_for(model))  # judged with the KV cache it will keep
    if not force and not catalog.fits(model, facts):
        budget = catalog.memory_budget(facts) / GB
        raise MlxTasksError(
            f"{model.alias} needs about {model.ram_gb:.1f} GB of memory and this machine can give a "
            f"model {budget:.1f} GB, so it would fail to load or crawl.",
            fix=f"serve a model that fits (invoke models.list), or try anyway: invoke serve {model.alias} --force",
        )
    return model, folder


def prepare(
    settings: Settings, alias: str, host: str | None, facts: HostFacts, force: bool
) -> tuple[str, str, list[str], str]:
    """The alias loaded at start (see choose_model; NO_MODEL for none), the host (default loopback), the server's
    argv, as every start checks them, and the note to say once when --context had to be capped to what fits.
    --force lifts the server's memory budget too."""
    from .fit import installed_context

    budget = catalog.memory_budget(facts)
    table = served_models(settings, budget)
    host = host or "127.0.0.1"
    first, note = None, ""
    if alias != NO_MODEL:
        model, folder = choose_model(settings, alias, facts, force)
        note = installed_context(
            folder,
            store.size_on_disk(folder),
            budget,
            settings.context,
            model.kind == "embedding",
            settings.kv_for(model),
        )[1]
        first = next(m for m in table if m.alias == model.alias)
    spec = ServeSpec.starting(
        first,
        host=host,
        port=settings.serve_port,
        ollama_port=settings.serve_ollama_port,
        allowed_origins=list(settings.serve_allowed_origins),
        installed=table,
        budget=0 if force else budget,
        keep_alive=settings.serve_keep_alive,
        prompt_cache_bytes=int(settings.serve_prompt_cache_gb * 2**30),
        disk_cache_bytes=disk_cache_bytes(settings),
        model_map=settings.serve_model_map,
        kv=settings.kv,
        **limits(settings),
    )
    return first.alias if first else NO_MODEL, host, server_argv(settings.venv_python, spec, settings.state), note


def disk_cache_bytes(settings: Settings) -> int:
    """The prompt cache's budget on disk: mlx.serve_disk_cache_gb, or by default sized to the free disk."""
    from .runtime.server import diskcache

    gb = settings.serve_disk_cache_gb
    return diskcache.auto_budget(settings.state) if gb is None else int(gb * 2**30)


def limits(settings: Settings) -> dict[str, int]:
    """The server's limits (ServeSpec fields), each from its config key."""
    return {
        "batch_size": settings.serve_batch_size,
        "queue_limit": settings.serve_queue_limit,
        "prefill_chunk": settings.serve_prefill_chunk,
        "prompt_caches": settings.serve_prompt_caches,
        "max_body_bytes": int(settings.serve_max_body_mb * 2**20),
        "log_max_bytes": int(settings.serve_log_max_mb * 2**20),
    }


def served_models(settings: Settings, budget: int) -> list[ServedModel]:
    """Every installed model as the server may load it: its names, the memory it needs at the context it runs
    with (the largest that fits, or --context capped), and the catalogue's sampling as its defaults."""
    from .fit import folder_shape, installed_context, kv_bytes, need

    table = []
    for model in store.installed_models(settings.models, settings.catalog):
        folder = settings.models / model.folder
        weights, kv = store.size_on_disk(folder), settings.kv_for(model)
        embedding = model.kind == "embedding"
        context = installed_context(folder, weights, budget, settings.context, embedding, kv)[0]
        shape = folder_shape(folder, embedding, kv)
        table.append(
            ServedModel(
                model.alias,
                str(folder),
                sorted({*model.also, folder.name, model.repo, str(folder)}),
                need(weights, shape, context),
                context,
                model.temperature,
                model.top_p,
                model.max_tokens,
                kv_bytes(shape, 1),  # every layer's, a sliding window's too: an upper bound
                model.kind,
                kv.bits,
            )
        )
    return table


def open_warning(host: str) -> str | None:
    """What to say before listening beyond this machine."""
    if is_loopback(host):
        return None
    return (
        f"Warning: listening on {host}, so other machines can reach this server, and it has no "
        "authentication: anyone who can connect can use the model."
    )


def server_argv(python: Path, spec: ServeSpec, state: Path) -> list[str]:
    """The server's command line: our server (mlxtasks.runtime.server) with its spec, its log and exit files
    and its prompt cache's disk tier in the state folder."""
    spec = replace(
        spec, log_file=str(log_path(state)), exit_file=str(exit_path(state)), disk_cache_folder=str(cache_path(state))
    )
    return [str(python), "-m", "mlxtasks.runtime.server", spec.to_json()]


def attached_argv(settings: Settings, alias: str, host: str, force: bool) -> list[str]:
    """What a login service runs: the venv's mlxtasks, serving attached after the same checks as `serve`."""
    if not (settings.venv / "bin" / "mlxtasks").exists():
        raise MlxTasksError(
            f"mlxtasks is not installed in {settings.venv}, and the service runs it from there.", fix="invoke install"
        )
    return [
        str(settings.venv / "bin" / "mlxtasks"),
        "serve",
        alias,
        "--foreground",
        "--venv",
        str(settings.venv),
        "--models",
        str(settings.models),
        "--port",
        str(settings.serve_port),
        *(["--host", host] if host != "127.0.0.1" else []),
        *(["--force"] if force else []),
        *(["--ollama"] if settings.serve_ollama_port else []),
    ]


def service_file(settings: Settings, alias: str, host: str, force: bool) -> tuple[service.Target, str, str]:
    """Where this machine keeps the login service, the file's text, and a warning to say first ("": none):
    on a Mac, the folders a background agent would be kept from."""
    where = service.local_target(settings.home)
    text = service.render(
        where.kind, attached_argv(settings, alias, host, force), log_path(settings.state), service_env(settings)
    )
    blocked = (
        service.blocked_folders(settings.home, [settings.models, settings.venv, settings.state])
        if where.kind == "launchd"
        else []
    )
    return where, text, service.blocked_text(blocked) if blocked else ""


def install_service(settings: Settings, where: service.Target, text: str, run: service.Runner) -> None:
    """Install and load the service, and wait until the server it starts answers (see service.install)."""
    since = time.time()
    service.install(
        where,
        text,
        settings.state,
        run,
        came_up=lambda: wait_for_service(settings.state, since, settings.serve_start_timeout_s),
    )


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
        server = Server(**json.loads(files.read_bytes(path)))
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
        server = Server(**json.loads(files.read_bytes(record_path(state))))
    except (OSError, ValueError, TypeError):
        return None
    if _alive(server):
        return None
    try:
        ended = json.loads(files.read_bytes(exit_path(state)))
        if ended["status"] == 0:
            return None  # it was stopped (Ctrl-C, a service manager's stop)
        how = f"exit status {ended['status']}: {ended['reason']}"
    except (OSError, ValueError, KeyError, TypeError):
        how = "exit status unknown: killed, or a crash in native code"
    return f"The server for {server.alias} (pid {server.pid}) crashed ({how}). The log's last lines:\n{tail(state)}"


def refuse_second(state: Path) -> None:
    server = running(state)
    if server:
        raise MlxTasksError(
            f"A server is already running: {server.alias} at {server.url} (pid {server.pid}).",
            fix="stop it first: invoke serve.stop",
        )


def answers_at(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a program accepts connections where our clients would connect (base_url's address)."""
    local = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    try:
        with socket.create_connection((local, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_port(host: str, port: int, retry: str, who: str = "another program", instead: str = "") -> None:
    """Fail now, in one sentence, where the server could not listen. retry: the same command, another port;
    who: what the sentence says holds the port; instead: what to do then (default: retry on another port).
    Binding is not enough: on macOS (BSD sockets) binding 127.0.0.1 beside a program listening on every
    interface (*:8080) succeeds, and our clients would reach one or the other; so a program that answers
    where our clients connect is in the way too."""
    not_here = MlxTasksError(
        f"{host!r} is not an address of this machine to listen on.",
        fix="leave --host out (127.0.0.1), or give one of this machine's IP addresses",
    )
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror:
        raise not_here from None
    in_use, fix = (
        f"Port {port} on {host} is already in use by {who}",
        instead or f"{retry} --port {port + 1} (or set mlx.serve_port)",
    )
    refused = None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            probe.bind(address)
        except OSError as exc:
            refused = exc
    if refused and refused.errno == errno.EADDRNOTAVAIL:
        raise not_here
    if answers_at(host, port):
        raise MlxTasksError(f"{in_use}, which answers at {base_url(host, port).removesuffix('/v1')}.", fix=fix)
    if refused and refused.errno == errno.EADDRINUSE:
        raise MlxTasksError(f"{in_use}.", fix=fix)
    if refused:
        raise MlxTasksError(
            f"Cannot listen on {host} port {port}: {refused.strerror}.",
            fix=instead or f"{retry} --port {max(port + 1, 1024)}",
        )


def asking_ollama(settings: Settings, ollama: bool) -> Settings:
    """The settings of a start with --ollama: Ollama's clients served on mlx.serve_ollama_port, else on 11434."""
    if not ollama or settings.serve_ollama_port:
        return settings
    return replace(settings, merged={**settings.merged, "serve_ollama_port": OLLAMA_PORT})


def check_ports(host: str, settings: Settings, retry: str) -> None:
    """check_port for the server's port, and check_ollama_port for Ollama's where it has one."""
    check_port(host, settings.serve_port, retry)
    if settings.serve_ollama_port:
        check_ollama_port(host, settings.serve_ollama_port, settings.serve_port)


def check_ollama_port(host: str, port: int, main: int) -> None:
    """check_port for the port of Ollama's clients, where Ollama itself most often runs: the sentence says who
    answers there (Ollama and its version, an mlxtasks server, another program) and how to free it."""
    elsewhere = "or serve Ollama's clients on another port (set mlx.serve_ollama_port), or leave out --ollama"
    if port == main:
        raise MlxTasksError(f"Ollama's port ({port}) is the server's own port.", fix=elsewhere.removeprefix("or "))
    who = who_answers(host, port) if answers_at(host, port) else "another program"
    stop = f"stop it ({OLLAMA_STOP})" if who.startswith("Ollama") else "stop it"
    check_port(host, port, "", who=who, instead=f"{stop}, {elsewhere}")


def who_answers(host: str, port: int) -> str:
    """What answers HTTP there: an mlxtasks server (its /health counts requests), Ollama (its /api/version), or
    another program."""
    root = base_url(host, port).removesuffix("/v1")
    for path, means in (("/health", "requests"), ("/api/version", "version")):
        try:
            with _opener().open(root + path, timeout=1.0) as answer:
                said = json.loads(answer.read(4096))
        except (OSError, ValueError):
            continue
        if isinstance(said, dict) and means in said:
            return "an mlxtasks server" if means == "requests" else f"Ollama {said['version']}"
    return "another program"


def _record(state: Path, server: Server) -> None:
    state.mkdir(parents=True, exist_ok=True)
    path = record_path(state)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(server)))
    temporary.replace(path)


def start(
    argv: list[str], state: Path, alias: str, host: str, port: int, timeout: float, ollama_port: int = 0
) -> Server:
    """Start the server detached, its output in the log, and return once it answers. On failure it is
    stopped, its record removed, and the error carries the log's last lines. ollama_port: the spec's."""
    import psutil

    state.mkdir(parents=True, exist_ok=True)
    exit_path(state).unlink(missing_ok=True)
    log_path(state).unlink(missing_ok=True)  # a new log, yours alone: readable by you alone
    with os.fdopen(os.open(log_path(state), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_env(),
            start_new_session=True,
        )
    server = Server(process.pid, alias, host, port, psutil.Process(process.pid).create_time(), ollama_port)
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


def wait_for_service(state: Path, since: float, timeout: float) -> str | None:
    """None once a server started by a service manager (at `since` or later) answers; else what went wrong,
    with the log's last lines."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = running(state)
        if server and server.started >= since - 1 and healthy(server):
            return None
        time.sleep(0.25)
    return f"The service was loaded, but its server did not answer within {timeout:g} s. The log's last lines:\n{tail(state)}"


def run_attached(argv: list[str], state: Path, alias: str, host: str, port: int, ollama_port: int = 0) -> None:
    """Become the server (exec keeps the pid, so the record stays true); its output goes where ours does."""
    import psutil

    _record(state, Server(os.getpid(), alias, host, port, psutil.Process().create_time(), ollama_port))
    exit_path(state).unlink(missing_ok=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # what was printed before exec would be lost
    os.execve(argv[0], argv, server_env())


def healthy(server: Server, timeout: float = 2.0) -> bool:
    """The server's /health answers 200 (its engine works)."""
    try:
        with _opener().open(server.url.removesuffix("/v1") + "/health", timeout=timeout) as answer:
            return answer.status == 200
    except OSError:
        return False


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy


def ask(state: Path, path: str, body: dict | None = None) -> dict:
    """The running server's JSON answer from /v1/mlxtasks/PATH (a POST of `body` when given)."""
    import urllib.error

    server = running(state)
    if not server:
        raise MlxTasksError("No server is running.", fix=f"start one: invoke serve {NO_MODEL}")
    request = urllib.request.Request(
        f"{server.url}/mlxtasks/{path}",
        headers={"Content-Type": "application/json"},
        data=None if body is None else json.dumps(body).encode(),
    )
    try:
        with _opener().open(request, timeout=60) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        try:
            said = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            said = f"The server answered {exc.code}."
        raise MlxTasksError(said, fix="see what is loaded: invoke serve.ps") from None
    except (OSError, ValueError) as exc:
        raise MlxTasksError(f"The server at {server.url} did not answer ({exc}).", fix="invoke serve.status") from None


def ps_text(answer: dict) -> str:
    """serve.ps's table from the server's /v1/mlxtasks/ps: each loaded model, the memory it was judged to need,
    how long it has been idle, and when it unloads; then the budget."""
    rows = [("MODEL", "MEMORY", "IDLE", "UNLOADS")]
    for m in answer["models"]:
        idle = f"answering ({m['requests']})" if m["requests"] else span(m["idle_s"])
        unloads = (
            "never (kept loaded)"
            if m["keep_alive"] < 0
            else f"in {span(m['unloads_in'])}"
            if m["unloads_in"] is not None
            else f"{span(m['keep_alive'])} after its last answer"
        )
        rows.append((m["model"], f"{m['memory'] / GB:.1f} GB", idle, unloads))
    waiting = [f"waiting for {alias} to load: {n} request(s)" for alias, n in answer["waiting"].items()]
    if len(rows) == 1:
        return "\n".join(waiting or ["No model is loaded; a request that names an installed model loads it."])
    used = sum(m["memory"] for m in answer["models"]) / GB
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, width, strict=False)) + "  " + row[3] for row in rows]
    limit = f" of a budget of {answer['budget'] / GB:.1f} GB" if answer["budget"] else " (no budget: --force)"
    return "\n".join(lines + [f"{used:.1f} GB in use{limit}"] + waiting)


def cache_report(state: Path, clear: bool) -> str:
    """serve.cache: the table, or with --clear the folder emptied."""
    return clear_cache(state) if clear else cache_text(state)


def cache_text(state: Path, now: float | None = None) -> str:
    """serve.cache's table from the disk tier's index: each cached prompt's model, tokens, size and last use."""
    from .runtime.server import diskcache

    folder, now = cache_path(state), time.time() if now is None else now
    entries = diskcache.read_index(folder)
    if not entries:
        return f"The prompt cache on disk is empty ({folder})."
    rows = [("MODEL", "TOKENS", "SIZE", "LAST USE")] + [
        (e.model, str(e.tokens), f"{e.size / 2**20:.1f} MB", f"{span(now - e.used)} ago") for e in entries
    ]
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, width, strict=False)) + "  " + row[3] for row in rows]
    total = sum(e.size for e in entries) / 2**20
    return "\n".join(
        [*lines, f"{len(entries)} prompt(s), {total:.1f} MB in {folder}; empty it: invoke serve.cache --clear"]
    )


def clear_cache(state: Path) -> str:
    from .runtime.server import diskcache

    folder = cache_path(state)
    freed = diskcache.clear(folder)
    return f"Emptied the prompt cache on disk ({folder}, {freed / 2**20:.1f} MB)."


def unload(state: Path, name: str) -> str:
    answer = ask(state, "unload", {"model": name})
    if answer["unloaded"]:
        return f"Unloaded {answer['model']}."
    return f"{answer['model']} is answering requests; it unloads once they end."


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
    """The log's last lines, a traceback cut down to its error (the trace stays in the log)."""
    try:
        text = files.read_text(log_path(state), errors="replace")
    except (OSError, MlxTasksError):
        return "  (no log)"
    return (
        "\n".join(f"  {line}" for line in untraced(text.splitlines(), str(log_path(state)))[-lines:])
        or "  (the log is empty)"
    )


def log_text(state: Path, lines: int) -> str:
    """The last `lines` lines of the server's log (0: all of it)."""
    path = log_path(state)
    if not os.path.lexists(path):
        raise MlxTasksError(f"There is no server log yet ({path}).", fix="start a server: invoke serve default")
    text = files.read_text(path, errors="replace").splitlines()
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
    model = "none loaded at start (see invoke serve.ps)" if server.alias == NO_MODEL else server.alias
    rows = [
        ("model", model),
        ("url", server.url),
        *([("ollama", f"{server.ollama_url} (Ollama's API)")] if server.ollama_port else []),
        ("pid", server.pid),
        ("uptime", uptime(server, now)),
        ("health", "ok" if answers else "not answering: invoke serve.logs"),
    ]
    return "\n".join(f"{name:<8}{value}" for name, value in rows)


def uptime(server: Server, now: float | None = None) -> str:
    return span((time.time() if now is None else now) - server.started)


def span(seconds: float) -> str:
    """A time span in at most two units: '2 h 5 min', '40 s', '0 s'."""
    seconds = int(seconds)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (seconds, "s")]
    shown = [f"{n} {unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0 s"
