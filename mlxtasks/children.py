"""Running a child that may hang (a Python we probe, an installer asked its version): bounded, and on a timeout
or Ctrl-C stopped with every process it started, which subprocess.run's timeout leaves running."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any


def run(
    argv: list[str], timeout: float, input: str | bytes | None = None, capture_output: bool = False, **popen: Any
) -> subprocess.CompletedProcess:
    """subprocess.run's answer, with the child in a process group of its own: on TimeoutExpired (raised as
    subprocess.run raises it) or any other exception, the whole group is killed first."""
    if capture_output:
        popen.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if input is not None:
        popen["stdin"] = subprocess.PIPE
    with subprocess.Popen(argv, start_new_session=True, **popen) as process:
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
