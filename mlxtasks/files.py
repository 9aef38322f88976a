"""The user's config, our state files and model folders, read and appended to only as regular files (a FIFO, a
device or a folder where a file should be is one sentence, not a read that never returns); and the sentence
for a file-system failure (full, read-only, immutable, not ours, a file where a folder should be)."""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import stat
from collections.abc import Iterator
from pathlib import Path

from .errors import MlxTasksError

KINDS = {
    stat.S_IFREG: "a file",
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def kind(mode: int) -> str:
    return KINDS.get(stat.S_IFMT(mode), "something else")


def not_regular(path: Path | str, mode: int, done: str = "read") -> MlxTasksError:
    return MlxTasksError(
        f"{path} is not a regular file but {kind(mode)}, so it was not {done}.",
        fix=f"move it aside (mv {shlex.quote(str(path))} {shlex.quote(f'{path}.aside')}), then run the command again",
    )


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


def mounted_read_only(path: Path | str) -> bool:
    """Whether `path` (or its nearest existing folder) is on a file system mounted read-only."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


FILE_SYSTEM_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EPERM, errno.EACCES, errno.ENOTDIR)


@contextlib.contextmanager
def said() -> Iterator[None]:
    """A file-system error that names its file (full, read-only, immutable, not ours, a file for a folder) as
    write_problem's sentence; any other OSError (a broken pipe, a refused connection) as it is."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None or exc.errno not in FILE_SYSTEM_ERRNOS:
            raise
        raise write_problem(exc.filename, exc, verb="use") from None


def write_problem(
    path: Path | str, exc: OSError, left: Path | str | None = None, also: str = "", verb: str = "write"
) -> MlxTasksError:
    """The sentence for a failed write of `path`: a full disk, a read-only mount, an immutable file, a file where a
    folder should be, or permissions. left: what was left as it was, when that is known; also: another way out,
    added to the fix ("or ..."); verb: what failed, when it may not have been a write ("use")."""
    folder = Path(path).parent
    fixes = {
        errno.ENOSPC: "free some space on that disk, then run the command again",
        errno.EDQUOT: "free some space within your disk quota, then run the command again",
        errno.EROFS: f"{folder} is on a file system mounted read-only: remount it writable "
        f"(mount -o remount,rw), then run the command again",
        errno.EPERM: f"it may be immutable (lsattr -d {folder} {path}, then chattr -i; on a Mac, chflags nouchg)",
        errno.ENOTDIR: f"a part of {folder} is a file where a folder should be: move it aside (ls -ld each part)",
    }
    fix = fixes.get(exc.errno or 0, f"check that you may write to {folder} (ls -ld {folder})")
    kept = f", so {left} was left as it was" if left else ""
    return MlxTasksError(f"Cannot {verb} {path}: {exc.strerror or exc}{kept}.", fix=f"{fix}, {also}" if also else fix)


def folder_problem(path: Path, variable: str | None = None) -> MlxTasksError | None:
    """A folder we will write into that cannot be one, because its nearest existing part is not a folder (a file,
    say); variable: the environment variable that chose it, if one did."""
    part = path
    while not os.path.lexists(part) and part != part.parent:
        part = part.parent
    if os.path.isdir(part):
        return None
    what = kind(os.stat(part).st_mode) if os.path.exists(part) else "a broken symlink"
    chosen = f" ({variable}={os.environ.get(variable)})" if variable else ""
    return MlxTasksError(
        f"{path}{chosen} cannot be a folder: {part} is {what}.",
        fix=f"move {part} aside" + (f", or set {variable} to a folder" if variable else ""),
    )
