"""Reading the user's config and our own state files: only regular files, so a FIFO, a device or a
folder put where a file should be is one sentence instead of a read that never returns."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import MlxTasksError

KINDS = {stat.S_IFDIR: "a folder", stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device",
         stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def kind(mode: int) -> str:
    return KINDS.get(stat.S_IFMT(mode), "not a file")


def not_regular(path: Path | str, mode: int, done: str = "read") -> MlxTasksError:
    return MlxTasksError(f"{path} is not a regular file but {kind(mode)}, so it was not {done}.",
                         fix=f"move it aside (mv {path} {path}.aside), then run the command again")


def read_bytes(path: Path | str) -> bytes:
    """The bytes of a regular file. Missing: FileNotFoundError, as open() raises it; anything but a regular
    file: MlxTasksError. Opened without blocking, so a FIFO is refused instead of waited on."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise not_regular(path, info.st_mode)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def read_text(path: Path | str, errors: str = "strict") -> str:
    """read_bytes as UTF-8 text."""
    return read_bytes(path).decode("utf-8", errors)


def append(path: Path | str, data: bytes) -> None:
    """Add `data` at the end of a regular file (made if missing) in one write; anything else is refused, a FIFO
    without waiting for a reader."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO that no one reads
            raise not_regular(path, os.stat(path).st_mode, "written") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise not_regular(path, info.st_mode, "written")
        os.write(fd, data)
    finally:
        os.close(fd)
