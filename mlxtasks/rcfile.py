"""A marked block in a user's rc file: pure text functions, and one safe way to write the file.

apply_block/remove_block work on text decoded with surrogateescape, so any bytes round-trip.
The block goes in with one blank line before it (a missing final newline is added first, with no
blank line, so that remove_block can tell the two apart and give back the exact original bytes).
The block and its separator are LF whatever the file uses; the user's own lines are never touched.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import hashlib
import os
import re
import shlex
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import files
from .errors import MlxTasksError

START = "# >>> mlxtasks >>>"
END = "# <<< mlxtasks <<<"
MANAGED = "# managed by mlxtasks; edit via invoke shell.install"
BACKUPS_KEPT = 3

_MARKER = re.compile(rf"^(?:{re.escape(START)}|{re.escape(END)})[ \t]*\r?$", re.M)
_SIGNED = re.compile(rf"{re.escape(MANAGED)}; sha256 ([0-9a-f]{{12}})")
_ELSEWHERE = "or give shell.install and shell.remove a regular file with --rc-file PATH"


@dataclass(frozen=True)
class Span:
    start: int  # offset of the start marker
    end: int  # offset just past the end marker's line ending
    newline: str  # the block's line ending: LF, or CRLF in a block an older version wrote


def block_text(body: str) -> str:
    """The whole marked block, markers included, ending with a newline (always LF: no shell parses
    `fi` or `}` followed by a carriage return). Its second line holds a checksum of the lines below
    it, which tells a block edited by hand from one mlxtasks wrote."""
    lines = body.rstrip("\n").split("\n")
    return "\n".join([START, f"{MANAGED}; sha256 {_checksum(lines)}", *lines, END]) + "\n"


def _checksum(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode("utf-8", "surrogateescape")).hexdigest()[:12]


def edited_by_hand(text: str) -> bool:
    """Whether a block's lines differ from those its checksum was made of (a block with no
    checksum, written by an older version, counts as unedited)."""
    for span in find_blocks(text):
        lines = text[span.start : span.end].removesuffix("\n").split("\n")
        signed = _SIGNED.fullmatch(lines[1]) if len(lines) > 2 else None
        if signed and signed.group(1) != _checksum(lines[2:-1]):
            return True
    return False


def find_blocks(text: str, name: str = "this file") -> list[Span]:
    """Every complete block; a start without an end (or an end without a start) is refused, naming the file."""
    spans, open_at = [], None
    for match in _MARKER.finditer(text):
        is_start = match.group().startswith(START)
        line = text.count("\n", 0, match.start()) + 1
        if is_start and open_at is not None:
            raise _broken(f"a second '{START}' at line {line} before the first one was closed", name)
        if not is_start and open_at is None:
            raise _broken(f"'{END}' at line {line} has no '{START}' before it", name)
        if is_start:
            open_at = (match.start(), line)
            continue
        end = match.end()
        newline = "\r\n" if match.group().endswith("\r") else "\n"
        if text.startswith("\n", end):
            end += 1
        assert open_at is not None  # an end without a start was refused above
        spans.append(Span(open_at[0], end, newline))
        open_at = None
    if open_at is not None:
        raise _broken(f"'{START}' at line {open_at[1]} has no '{END}' after it", name)
    return spans


def _broken(where: str, name: str) -> MlxTasksError:
    return MlxTasksError(
        f"The mlxtasks block in {name} is damaged: {where}; it was left as it is.",
        fix="fix or delete the marked lines by hand, then run: invoke shell.install",
    )


def apply_block(text: str, body: str, name: str = "FILE") -> tuple[str, list[str]]:
    """Text with exactly one block holding `body`: replaced in place, or appended. Returns warnings.
    name: the file, for the command in a warning."""
    spans = find_blocks(text, name)
    own = _cut(text, spans)
    warnings = (
        [
            f"its own lines end in CRLF, which zsh and bash misread (a stray carriage return ends each); "
            f"the block is written with LF. Convert the file: perl -pi -e 's/\\r$//' {shlex.quote(name)}"
        ]
        if "\r\n" in own
        else []
    )
    if not spans:
        return _separated(text) + block_text(body), warnings
    first, extra = spans[0], spans[1:]
    text = _cut(text, extra)  # later blocks go; the first one's offsets are unchanged
    before, after = text[: first.start], text[first.end :]
    if first.newline != "\n":  # an older version's CRLF block: its separator becomes the LF one
        before = _separated(_unseparated(before, after, first.newline))
    return before + block_text(body) + after, warnings + (
        [f"found {len(spans)} mlxtasks blocks; kept one"] if extra else []
    )


def remove_block(text: str, name: str = "this file") -> str:
    """Text without any block: the exact text apply_block started from, if the rest is untouched."""
    return _cut(text, find_blocks(text, name))


def _separated(text: str) -> str:
    """Text ready for a block: a blank line after it, or its missing final newline (nothing when empty)."""
    return text + "\n" if text else text


def _unseparated(before: str, after: str, newline: str) -> str:
    """Undo _separated on the text before a block, if the user has not changed it."""
    if before.endswith(newline + newline) or (not after and before.endswith(newline)):
        return before[: -len(newline)]
    return before


def _cut(text: str, spans: list[Span]) -> str:
    for span in reversed(spans):
        after = text[span.end :]
        text = _unseparated(text[: span.start], after, span.newline) + after
    return text


def unified_diff(old: str, new: str, path: Path, after: str) -> str:
    """The change as a diff; after: what the new side is, such as "after shell.remove"."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{path} (now)",
            tofile=f"{path} ({after})",
        )
    )


@dataclass(frozen=True)
class Change:
    path: Path  # what the user named (may be a symlink)
    target: Path  # the file actually written
    old: str
    new: str
    warnings: tuple[str, ...] = ()
    deleted: bool = False  # the file is (or, when dry, would be) deleted rather than left empty

    @property
    def modified(self) -> bool:
        return self.old != self.new


def checked(path: Path) -> Path:
    """The file `path` names, through any symlinks, if it is a regular file or missing; anything else
    is refused before it is opened (a FIFO would hang the read, a device or folder be replaced).
    Every rc file read or written, and every backup read, is found through here."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return Path(os.path.realpath(path))
    except OSError as exc:  # a symlink loop, a file where one of its folders should be, a folder we may not read
        in_the_way = files.folder_problem(Path(path).parent)  # names the file that is in the way
        raise in_the_way or MlxTasksError(
            f"Cannot open {path}: {exc.strerror}, so it was left as it is.",
            fix=f"see what it is (ls -l {path}), {_ELSEWHERE}",
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise MlxTasksError(
            f"{path} is not a regular file but {files.kind(info.st_mode)}, so it was left as it is.",
            fix=f"move it aside, {_ELSEWHERE}",
        )
    return Path(os.path.realpath(path))


def read(path: Path) -> str:
    """The text of `path` ("" when it is missing); refused unless it is a regular file."""
    try:
        return checked(path).read_bytes().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return ""


def update(
    path: Path,
    transform: Callable[[str], tuple[str, list[str]]],
    dry: bool = False,
    own_file: bool = False,
    created: Path | None = None,
) -> Change:
    """Read, transform and (if the text changed) write `path` safely: under a lock, after a backup,
    atomically, keeping its owner, group, mode, hard links and any symlink. Nothing is written when dry.

    created: the record of files this function created. A file left empty is deleted, with the
    backups that hold nothing but the block, when it is `own_file` or the record says we created it.
    A block edited by hand is always kept in a backup, and the change's warnings say where."""
    target = checked(path)
    try:
        if not os.path.lexists(path):
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not target.parent.is_dir():  # a dangling symlink: no folders are made along its target
            raise MlxTasksError(
                f"{path} is a symlink to {target}, whose folder {target.parent} does not exist, "
                "so it was left as it is.",
                fix=f"make the folder (mkdir -p {target.parent}) or remove the symlink, then run the command again",
            )
        with _locked(target.parent):
            return _update(path, target, transform, dry, own_file, created)
    except OSError as exc:
        raise files.write_problem(path, exc, left=path, also=_ELSEWHERE) from None


def _update(
    path: Path,
    target: Path,
    transform: Callable[[str], tuple[str, list[str]]],
    dry: bool,
    own_file: bool,
    created: Path | None,
) -> Change:
    existed = target.exists()
    old = read(target)
    new, warnings = transform(old)
    ours = own_file or str(target) in _created(created)
    deleted = existed and ours and not new
    edited = old != new and edited_by_hand(old)
    if edited:
        warnings = [
            *warnings,
            f"the block had been edited by hand; the backup {'would keep' if dry else 'keeps'} "
            f"the edited file: {_backups(path)[0]}",
        ]
    change = Change(path, target, old, new, tuple(warnings), deleted=deleted)
    if dry or not change.modified:
        return change
    _refuse_read_only(path, target)
    if deleted:
        for backup in _backups(path):
            if backup.exists() and _holds_only_the_block(backup):
                backup.unlink()
        if edited:
            _commit(path, target, None)
        target.unlink()
        _record_created(created, target, False, path)
        return change
    # A new file is recorded once it is staged and before it is put: a full state folder stops there, with nothing written.
    recorded = []

    def record() -> None:
        if not existed:
            _record_created(created, target, True, path)
            recorded.append(target)

    try:
        _commit(path, target, new.encode("utf-8", "surrogateescape"), before_put=record)
    except OSError:
        if recorded:
            with contextlib.suppress(MlxTasksError):
                _record_created(created, target, False, path)
        raise
    return change


def _created(record: Path | None) -> set[str]:
    try:
        return set(files.read_text(record, "surrogateescape").splitlines()) if record else set()
    except FileNotFoundError:
        return set()


def _record_created(record: Path | None, target: Path, created: bool, path: Path) -> None:
    """Add `target` to (or take it off) the record of the files we created; path: the rc file, left as it was
    when the record cannot be written."""
    if record is None:
        return
    names = _created(record) | {str(target)} if created else _created(record) - {str(target)}
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(record, "".join(f"{name}\n" for name in sorted(names)).encode("utf-8", "surrogateescape"))
    except OSError as exc:
        raise files.write_problem(record, exc, left=path) from None


def _holds_only_the_block(path: Path) -> bool:
    try:
        return remove_block(read(path)) == ""
    except MlxTasksError:
        return False


def read_only_problem(
    path: Path, mode: int, owner: int, uid: int, writable: bool, read_only_mount: bool = False
) -> MlxTasksError | None:
    """Why `path` must be left alone, if it must: it is on a read-only mount, another user owns it, it has no
    write bit (which means "leave me alone" even to root, who may write anywhere), or it is immutable."""
    bits = mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    if writable and bits:
        return None
    if read_only_mount:
        return MlxTasksError(
            f"{path} is on a file system mounted read-only, so it was left as it is.",
            fix="remount it writable (mount -o remount,rw), or add the block by hand: invoke shell.show",
        )
    if owner != uid and (uid != 0 or not bits):
        return MlxTasksError(
            f"{path} belongs to another user (uid {owner}), so it was left as it is.",
            fix=f'make it yours: sudo chown "$USER" {path}, then run the command again',
        )
    if not bits:
        return MlxTasksError(
            f"{path} is read-only, so it was left as it is.",
            fix=f"make it writable (chmod u+w {path}), or add the block by hand: invoke shell.show",
        )
    return MlxTasksError(
        f"{path} is locked against changes (immutable), so it was left as it is.",
        fix=f"see its flags (lsattr {path}) and unlock it (sudo chattr -i {path}; on a Mac, chflags nouchg), "
        "or add the block by hand: invoke shell.show",
    )


def _refuse_read_only(path: Path, target: Path) -> None:
    try:
        info = target.stat()
    except FileNotFoundError:
        return
    problem = read_only_problem(
        target, info.st_mode, info.st_uid, os.getuid(), os.access(target, os.W_OK), files.mounted_read_only(target)
    )
    if problem:
        raise problem


def _backups(path: Path) -> list[Path]:
    backup = path.with_name(path.name + ".mlxtasks.bak")
    return [backup] + [backup.with_name(f"{backup.name}.{n}") for n in range(1, BACKUPS_KEPT)]


def _commit(path: Path, target: Path, data: bytes | None, before_put: Callable[[], None] = lambda: None) -> None:
    """The file as it is becomes the newest backup, and `data` (None: nothing) its new text. Both are written in
    full before anything is touched, and the older backups rotate only then: a full disk costs no backup."""
    staged: list[_Staged] = []
    try:
        if target.exists():
            staged.append(_Staged(_backups(path)[0], target.read_bytes(), like=target))
        if data is not None:
            staged.append(_Staged(target, data, like=target if target.exists() else None))
        before_put()
        if target.exists():
            names = _backups(path)
            for older, newer in zip(reversed(names[1:]), reversed(names[:-1]), strict=True):
                if newer.exists():
                    os.replace(newer, older)
        for item in staged:
            item.put()
    finally:
        for item in staged:
            item.discard()


class _Staged:
    """`data` written in full to a temporary file beside `dest`, with the owner, group and mode of `like` (the
    file it replaces); put() then renames it over `dest`. Where a rename would lose something (another name
    of a hard-linked file, or an owner we may not give), put() rewrites `dest` in place instead, once the
    temporary file has shown that the data fits."""

    def __init__(self, dest: Path, data: bytes, like: Path | None):
        self.dest, self.data = dest, data
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".mlxtasks-tmp", dir=dest.parent)
        self.temporary: Path | None = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            info = like.stat() if like else None
            os.chmod(name, stat.S_IMODE(info.st_mode) if info else 0o666 & ~_umask())
            self.in_place = bool(info and like == dest and info.st_nlink > 1)
            if info and (info.st_uid, info.st_gid) != (os.geteuid(), os.getegid()):
                try:
                    os.chown(name, info.st_uid, info.st_gid)
                except PermissionError:  # not root: only a rewrite in place keeps another owner
                    self.in_place = like == dest
        except BaseException:
            self.discard()
            raise

    def put(self) -> None:
        if self.in_place:
            self.discard()  # its space is what the rewrite needs
            with open(self.dest, "r+b") as handle:
                handle.write(self.data)
                handle.truncate()
                handle.flush()
                os.fsync(handle.fileno())
        else:
            assert self.temporary is not None  # staged, not yet put
            os.replace(self.temporary, self.dest)
            self.temporary = None
            _sync_folder(self.dest.parent)

    def discard(self) -> None:
        if self.temporary:
            self.temporary.unlink(missing_ok=True)
            self.temporary = None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_atomically(target: Path, data: bytes) -> None:
    """A file of our own, written whole or not at all."""
    staged = _Staged(target, data, like=None)
    try:
        staged.put()
    finally:
        staged.discard()


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the folder, so concurrent runs write one block, one after another."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
