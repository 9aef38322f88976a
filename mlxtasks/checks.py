"""Doctor-style check results, shared by preflight and the validator (registry.py declares the checks)."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from .errors import MlxTasksError


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"
    CRASHED = "crashed"


@dataclass(frozen=True)
class Result:
    id: str  # stable, for --json and scripts
    title: str
    status: Status
    message: str
    fix: str = ""
    details: tuple[str, ...] = field(default_factory=tuple)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status in (Status.ERROR, Status.CRASHED)

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status.value,
            "message": self.message,
            "fix": self.fix,
            "details": list(self.details),
            "seconds": round(self.seconds, 4),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Result:
        return cls(
            data["id"],
            data["title"],
            Status(data["status"]),
            data["message"],
            data["fix"],
            tuple(data["details"]),
            data["seconds"],
        )


class CheckCrashed(Exception):
    """What a check judges could not be had (the venv's Python stopped): its message is the result's."""


def run_group(check_id: str, title: str, make: Callable[[], Result | list[Result]]) -> list[Result]:
    """Run checks that may raise: a crash becomes one CRASHED result with one line of cause.
    Each result carries its share of the time taken."""
    start = time.perf_counter()
    try:
        made = make()
        results = made if isinstance(made, list) else [made]
    except MlxTasksError as err:  # an expected failure: its sentence and fix, not a crash
        results = [Result(check_id, title, Status.ERROR, err.message, err.fix)]
    except CheckCrashed as exc:
        results = [Result(check_id, title, Status.CRASHED, str(exc))]
    except Exception as exc:  # noqa: BLE001 - a crash is this check's result
        cause = traceback.format_exception_only(type(exc), exc)[-1].strip()
        results = [Result(check_id, title, Status.CRASHED, f"the check itself failed: {cause}")]
    seconds = (time.perf_counter() - start) / max(len(results), 1)
    return [replace(r, seconds=seconds) for r in results]


def run_checks(checks: Iterable[tuple[str, str, Callable[[], Result | list[Result]]]]) -> list[Result]:
    return [result for check_id, title, make in checks for result in run_group(check_id, title, make)]


def summary_line(results: list[Result]) -> str:
    problems = [r for r in results if r.status is not Status.OK]
    if not problems:
        return "No issues found."
    return f"Found issues in {len(problems)} check{'s' if len(problems) != 1 else ''}."


def any_failed(results: Iterable[Result]) -> bool:
    return any(r.failed for r in results)
