"""One run at a time: an exclusive lock held until this process exits."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path

from .errors import MlxTasksError


def setup_lock(venv: Path) -> Path:
    """The lock of setups for one venv: outside HOME, so a dry or refused run leaves HOME untouched."""
    key = hashlib.sha256(os.path.realpath(venv).encode()).hexdigest()[:16]
    folder = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(folder) / f"mlxtasks-setup-{os.getuid()}-{key}.lock"


def hold_until_exit(path: Path, what: str) -> None:
    """Lock `path` (made if missing) for the rest of this process, whose exit releases it; refuse at
    once, naming the holder's pid, when another process holds it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise MlxTasksError(
            f"Cannot create the lock file {path}: {exc.strerror}.", fix=f"make {path.parent} writable by you"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise MlxTasksError(
            f"Another {what} is running (pid {holder}).", fix=f"wait for it to finish, then run {what} again"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    # The descriptor stays open on purpose: the lock lasts as long as this process.
