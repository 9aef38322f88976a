"""The only module that knows colours, glyphs and where output goes.

Colour and glyphs only on a terminal, never with NO_COLOR set; problems go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from typing import TextIO

from .checks import Result, Status, summary_line
from .errors import MlxTasksError


def _glyphs(stream: TextIO) -> bool:
    return stream.isatty()


def _coloured(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


def _paint(text: str, colour: str, stream: TextIO) -> str:
    if not _coloured(stream):
        return text
    from colorama import Fore, Style

    code = {"green": Fore.GREEN, "yellow": Fore.YELLOW, "red": Fore.RED, "blue": Fore.CYAN, "dim": Style.DIM}[colour]
    return f"{code}{text}{Style.RESET_ALL}"


_MARKS = {
    # status: (glyph on a terminal, plain word elsewhere, colour)
    "ok": ("✓", "ok", "green"),
    "warning": ("!", "warning", "yellow"),
    "error": ("✗", "error", "red"),
    "crashed": ("✗", "crashed", "red"),
    "done": ("✓", "done", "green"),
    "changed": ("+", "changed", "blue"),
    "dry": ("~", "would", "yellow"),
    "skipped": ("-", "skipped", "yellow"),
}


def _mark(kind: str, stream: TextIO) -> str:
    glyph, word, colour = _MARKS[kind]
    return _paint(glyph if _glyphs(stream) else f"[{word}]", colour, stream)


def out(text: str = "") -> None:
    print(text, flush=True)


def note(text: str) -> None:
    """A passing remark on stderr, so stdout stays the command's answer."""
    print(text, file=sys.stderr, flush=True)


def error(err: MlxTasksError) -> None:
    stream = sys.stderr
    print(f"{_mark('error', stream)} {err.message}", file=stream, flush=True)
    if err.fix:
        print(f"  Fix: {err.fix}", file=stream, flush=True)


def step(kind: str, name: str, summary: str, details: Iterable[str] = ()) -> None:
    """One line per setup step: kind is done (already fine), changed, dry (would change) or skipped."""
    out(f"{_mark(kind, sys.stdout)} {name}: {summary}")
    for line in details:
        out(f"    {line}")


def results(items: list[Result], as_json: bool = False, verbose: bool = False) -> None:
    if as_json:
        print(json.dumps({"checks": [r.as_dict() for r in items], "summary": summary_line(items)}, indent=2))
        return
    for item in items:
        _result_lines(item, verbose)
    print(summary_line(items), flush=True)


def can_ask() -> bool:
    """Whether confirm has a terminal to ask on."""
    return sys.stdin is not None and sys.stdin.isatty()


def confirm(question: str, unanswered: MlxTasksError) -> bool:
    """Ask yes/no on a terminal; with no terminal (or stdin closed), raise `unanswered` (whose fix
    names the flag), and at the end of input (Ctrl-D) stop the command with that same fix."""
    if not can_ask():
        raise unanswered
    try:
        answer = input(f"{question} [y/N] ").strip().lower()
    except EOFError:
        out()
        raise MlxTasksError(
            f"The input ended before an answer to: {question}; the command stopped there.", fix=unanswered.fix
        ) from None
    return answer in ("y", "yes")


def _result_lines(item: Result, verbose: bool, indent: str = "") -> None:
    """A result's line (problems on stderr), its fix, and with verbose its details and time."""
    stream = sys.stdout if item.status is Status.OK else sys.stderr
    seconds = f" ({item.seconds:.1f} s)" if verbose and item.seconds >= 0.05 else ""
    print(f"{indent}{_mark(item.status.value, stream)} {item.title}: {item.message}{seconds}", file=stream)
    if item.fix and item.status is not Status.OK:
        print(f"{indent}    Fix: {item.fix}", file=stream)
    if verbose or item.status is Status.CRASHED:
        for line in item.details:
            print(f"{indent}    {line.rstrip()}", file=stream)


def report(
    groups: list[tuple[str, list[Result]]], closing: list[str], quiet: bool = False, verbose: bool = False
) -> None:
    """Results under their group's name; problems on stderr; then the closing lines on stdout.
    quiet: only the problems and the closing lines."""
    for name, items in groups:
        shown = [r for r in items if not (quiet and r.status is Status.OK)]
        if not shown:
            continue
        stream = sys.stdout if any(r.status is Status.OK for r in shown) else sys.stderr
        sys.stdout.flush()
        print(_paint(name, "dim", stream), file=stream)
        for item in shown:
            _result_lines(item, verbose, indent="  ")
    sys.stderr.flush()
    for line in closing:
        out(line)


def bars(title: str, rows: list[tuple[str, float, str]], width: int = 40) -> None:
    """A bar per (label, value, colour), scaled to the largest value: blocks on a terminal, # elsewhere."""
    if not rows:
        return
    stream = sys.stdout
    top = max(value for _, value, _ in rows) or 1.0
    label_width = max(len(label) for label, _, _ in rows)
    glyph = "█" if _glyphs(stream) else "#"
    out(title)
    for label, value, colour in rows:
        length = max(1, round(value / top * width)) if value > 0 else 0
        out(f"  {label:<{label_width}}  {_paint(glyph * length, colour, stream)}{' ' * (width - length)}  {value:,.1f}")
