"""How a command ends when it is stopped from outside: Ctrl-C before its code runs, and a stdout it cannot
write (a reader that left, as `| head` does, or a full disk). Shared by the tasks' boundary and the runtime's."""

from __future__ import annotations

import atexit
import errno
import io
import os
import select
import signal
import sys

from .errors import MlxTasksError

INTERRUPTED = 130
READER_LEFT = 141  # what a shell reports for a command that SIGPIPE ended (`yes | head`)
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}
_ENTRY_POINTS = {"mlxtasks", "invoke", "inv", "-m"}  # -m: `python -m mlxtasks.X` while it imports


def _interrupted_while_starting(*_) -> None:
    os._exit(INTERRUPTED)  # nothing has happened yet, so nothing to say or clean up


def start() -> None:
    """In our own commands only (a program that imports mlxtasks keeps its own ways), from their first import:
    until ready(), Ctrl-C ends the process at once with 130 and no traceback (Python is still importing); and
    a stdout that cannot be written, wherever it is met (a task, Invoke's help, a runtime's answer, the final
    flush), ends the command as stdout_failed says instead of in a traceback, an "Exception ignored", or
    silently: at a script's end Python flushes stdout and drops the error, so stdout is line-buffered."""
    program = os.path.basename(sys.argv[0] if sys.argv else "")
    if program not in _ENTRY_POINTS:
        return
    if sys.stdout is None and program != "-m":  # started with stdout closed (`>&-`): all it says would be lost
        sys.stderr.write(
            f"[error] {program}: standard output is closed, so nothing it says could be seen.\n"
            "  Fix: leave stdout open, or send it away: > /dev/null\n"
        )
        os._exit(1)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        try:
            signal.signal(signal.SIGINT, _interrupted_while_starting)
        except ValueError:  # not the main thread
            pass
    if isinstance(sys.stdout, io.TextIOWrapper):  # a write that fails then fails where it is made, Invoke's too
        sys.stdout.reconfigure(line_buffering=True)
    previous = sys.excepthook

    def unwritable_stdout_ends(kind, err, trace) -> None:
        _end_if_stdout_failed(err)
        previous(kind, err, trace)

    sys.excepthook = unwritable_stdout_ends
    atexit.register(flush_stdout)


def flush_stdout() -> None:
    """Flush stdout now, ending as stdout_failed says if it cannot be written. Where the console script ends,
    Python flushes it once more and drops any error, so the output is lost with status 0."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except OSError as err:
        _end_if_stdout_failed(err)


def _end_if_stdout_failed(err: BaseException) -> None:
    code = stdout_failed(err)
    if code is not None:
        os._exit(code)


def ready() -> None:
    """From here Ctrl-C is a KeyboardInterrupt again, for the code that stops cleanly and says how to resume."""
    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def stdout_failed(err: BaseException) -> int | None:
    """When err came from writing stdout: the exit status, having said why where it is not the reader that
    left (it has all it wanted, as `| head` has); and stdout then goes nowhere, so that exit's flush fails no
    more. None when err is anything else."""
    if not isinstance(err, OSError):
        return None
    if err.errno == errno.EPIPE and _reader_left():
        code = READER_LEFT
    elif err.errno in _NO_ROOM and _still_unwritable():
        from .ui import error

        error(
            MlxTasksError(
                f"The output could not be written: {os.strerror(err.errno)}.",
                fix="free some space, or send the output to another disk (> FILE)",
            )
        )
        code = 1
    else:
        return None
    _discard_stdout()
    return code


def _reader_left() -> bool:
    """fd 1 is a pipe or socket whose other end is closed (Linux says POLLERR, macOS POLLHUP)."""
    try:
        poller = select.poll()
        poller.register(1, select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def _still_unwritable() -> bool:
    """Whether stdout fails again: its buffer still holds what could not be written, or the device refuses
    even nothing (/dev/full)."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
        os.write(1, b"")
    except OSError:
        return True
    return False


def _discard_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
