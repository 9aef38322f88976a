"""Run by `invoke serve` in the venv: `python -m mlxtasks.runtime.server SPEC_JSON` (a ServeSpec).

The model loads before the port opens, so a server that answers is ready. An engine fault ends the
process with EXIT_ENGINE_FAULT so a service manager restarts it; how the server ended (a fault, or a stop)
goes to the spec's exit_file, for `serve.status`.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import sys

from ...protocol import ServeSpec

EXIT_ENGINE_FAULT = 70


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


def main(argv: list[str] | None = None) -> None:
    spec = ServeSpec.from_json((argv or sys.argv[1:])[0])
    faulthandler.enable()  # a crash in native code leaves its stack in the log
    log = logging.getLogger("mlxtasks.server")
    handler = RotatingOutput(spec.log_file, spec.log_max_bytes)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    import uvicorn

    from .app import build
    from .engine import Engine

    log.info("loading %s from %s", spec.alias, spec.model)
    engine = Engine(spec)

    def on_fault(exc: BaseException) -> None:
        log.critical("the engine failed, so the server ends (status %d)", EXIT_ENGINE_FAULT, exc_info=exc)
        ended(spec, EXIT_ENGINE_FAULT, f"{type(exc).__name__}: {exc}")
        for handler_ in log.handlers:
            handler_.flush()
        os._exit(EXIT_ENGINE_FAULT)

    engine.start(on_fault)
    log.info("serving %s on %s port %d", spec.alias, spec.host, spec.port)
    uvicorn.run(build(spec, engine, log), host=spec.host, port=spec.port, access_log=False, log_level="info",
                lifespan="off", timeout_graceful_shutdown=5)
    ended(spec, 0, "stopped")


def ended(spec: ServeSpec, status: int, reason: str) -> None:
    """Say how the server ended, for serve.status: a record whose process has gone without this is a crash."""
    if spec.exit_file:
        with open(spec.exit_file, "w") as out:
            json.dump({"status": status, "reason": reason}, out)


if __name__ == "__main__":
    main()
