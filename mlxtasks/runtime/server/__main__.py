"""Run by `invoke serve` in the venv: `python -m mlxtasks.runtime.server SPEC_JSON` (a ServeSpec).

The model named at start (if any) loads before the port opens, so a server that answers is ready; the others
load when a request names them (pool.py). An engine fault ends the
process with EXIT_ENGINE_FAULT so a service manager restarts it; how the server ended (a fault, or a stop)
goes to the spec's exit_file, for `serve.status`. The server runs in a child process that this one waits
for, so a death the server cannot report itself (a signal: a crash in native code, the OOM killer) is
reported too, and the exit status tells a service manager to restart it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import faulthandler
import json
import logging
import os
import signal
import sys
import threading
import time

from ... import exits
from ...protocol import ServeSpec
from .. import gpu

EXIT_ENGINE_FAULT = 70
EXIT_STARTUP_FAILED = 3  # uvicorn's own status when it cannot start
NATIVE_CRASHES = {signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT}
STOPS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PR_SET_PDEATHSIG = 1  # Linux's prctl option: a signal for the child when its parent dies
ORPHAN_CHECK_S = 0.5  # how often the server looks whether its supervisor still lives
STOP_FLUSH_S = 4.0  # how long a stopping server waits for its prompt caches to reach the disk (serve.stop: 10 s)


class RotatingOutput(logging.StreamHandler):
    """Log lines to stdout; when stdout is the log file and it has grown past max_bytes, the file is
    moved to .1 and stdout and stderr are pointed at a new one (so tracebacks and faults rotate too)."""

    def __init__(self, log_file: str, max_bytes: int):
        super().__init__(sys.stdout)
        self.log_file, self.max_bytes = log_file, max_bytes

    def emit(self, record):
        super().emit(record)
        try:
            here, there = os.fstat(1), os.stat(self.log_file)
        except OSError:
            return
        if (here.st_dev, here.st_ino) != (there.st_dev, there.st_ino) or here.st_size < self.max_bytes:
            return
        fresh = self.log_file + ".new"
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        if os.path.exists(self.log_file + ".1"):
            os.unlink(self.log_file + ".1")
        os.link(self.log_file, self.log_file + ".1")
        os.replace(fresh, self.log_file)  # the log's name always names a file, for serve.logs
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)


class Printable(logging.Formatter):
    """Log text with every control character but newline and tab escaped (web.printable escapes those too in
    what a client sent): nothing a request carries can colour a terminal or make the log binary."""

    CONTROL = {c: f"\\x{c:02x}" for c in [*range(32), 127] if chr(c) not in "\n\t"}

    def format(self, record):
        return super().format(record).translate(self.CONTROL)


def supervise(spec: ServeSpec) -> None:
    """Return in a child process, which serves; this one waits for it, passes on TERM, INT and HUP (the
    child has a process group of its own, so a terminal's Ctrl-C reaches it once, from here), says how it
    ended when a signal killed it, and exits as it did (0 for a stop)."""
    if spec.exit_file:
        try:
            os.unlink(spec.exit_file)  # a word from an earlier run (a service restarted it) is not this run's
        except FileNotFoundError:
            pass
    supervisor = os.getpid()
    child = os.fork()
    if child == 0:
        os.setpgid(0, 0)
        if sys.platform == "linux":  # killed with its parent at once
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        # macOS has no such call: the server looks for its parent itself (a killed supervisor, whose launchd
        # job then restarts, must not leave a second server holding the port and the model)
        threading.Thread(target=stop_when_orphaned, args=(supervisor,), name="supervisor", daemon=True).start()
        return
    for forwarded in STOPS:
        signal.signal(forwarded, lambda number, _: os.kill(child, number))
    code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    if code < 0:
        killer = signal.Signals(-code)
        if killer in STOPS:  # uvicorn ends by the signal that stopped it, once it has shut down
            code, reason = 0, "stopped"
        else:
            code, reason = (
                128 + killer.value,
                f"killed by {killer.name}" + (", a crash in native code" if killer in NATIVE_CRASHES else ""),
            )
        ended(spec, code, reason)
    os._exit(code)


def stop_when_orphaned(supervisor: int) -> None:
    """Stop this process (as serve.stop does, with SIGTERM) once its parent is no longer the supervisor."""
    while os.getppid() == supervisor:
        time.sleep(ORPHAN_CHECK_S)
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> None:
    gpu.use_kernel_cache()
    # Imports done: Ctrl-C is Python's again. uvicorn, once stopped, raises the signal that stopped it once more
    # with the handler it found, and only Python's ends the process by that signal, which supervise reads as a stop.
    exits.ready()
    spec = ServeSpec.from_json((argv or sys.argv[1:])[0])
    supervise(spec)
    faulthandler.enable()  # a crash in native code leaves its stack in the log
    log = logging.getLogger("mlxtasks.server")
    handler = RotatingOutput(spec.log_file, spec.log_max_bytes)
    handler.setFormatter(Printable("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    import uvicorn

    from . import anthropic, embeddings, ollama, openai, responses
    from .engine import Engine, open_disk, wire_once
    from .pool import Pool
    from .web import build

    def on_fault(exc: BaseException) -> None:
        log.critical("the engine failed, so the server ends (status %d)", EXIT_ENGINE_FAULT, exc_info=exc)
        ended(spec, EXIT_ENGINE_FAULT, f"{type(exc).__name__}: {exc}")
        for handler_ in log.handlers:
            handler_.flush()
        os._exit(EXIT_ENGINE_FAULT)

    def make_engine(spec: ServeSpec, served, cache_bytes: int):
        if served.kind == "embedding":
            from .embedder import Embedder  # imported on the first embedding model's load

            return Embedder(spec, served, cache_bytes)
        return Engine(spec, served, cache_bytes, disk=disk)

    wire_once()
    disk = open_disk(spec, log)
    pool = Pool(spec, on_fault, log, make_engine)
    if spec.alias:  # kept loaded until unloaded by hand or for room, or a request's keep_alive says otherwise
        pool.release(pool.acquire(spec.alias, -1))
    ports = [spec.port, *([spec.ollama_port] if spec.ollama_port else [])]
    log.info(
        "serving %s on %s port %s", spec.alias or "installed models on demand", spec.host, " and ".join(map(str, ports))
    )
    app = build(spec, pool, log, [openai, anthropic, responses, ollama, embeddings])
    options: dict = {"host": spec.host, "access_log": False, "log_level": "info", "lifespan": "off"}

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            await super().shutdown(sockets)
            if disk:  # the prompts' caches waiting for the disk, within serve.stop's patience
                await asyncio.to_thread(disk.flush, None, STOP_FLUSH_S)

    server = Server(uvicorn.Config(app, port=spec.port, timeout_graceful_shutdown=5, **options))
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C, raised again once uvicorn has stopped: as uvicorn.run
        server.run(sockets=[uvicorn.Config(app, port=port, **options).bind_socket() for port in ports])
    if not server.started:
        sys.exit(EXIT_STARTUP_FAILED)
    ended(spec, 0, "stopped")


def ended(spec: ServeSpec, status: int, reason: str) -> None:
    """Say how the server ended, for serve.status: a record whose process has gone without this is a crash."""
    if spec.exit_file:
        with open(spec.exit_file, "w") as out:
            json.dump({"status": status, "reason": reason}, out)


if __name__ == "__main__":
    main()
