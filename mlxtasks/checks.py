"""Doctor-style check results, shared by preflight and the validator."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Iterable


class Status(str, Enum):
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
        }


def run_checks(checks: Iterable[tuple[str, str, Callable[[], Result]]]) -> list[Result]:
    """Run each (id, title, check); a check that raises becomes a CRASHED result, not a traceback."""
    results = []
    for check_id, title, check in checks:
        try:
            results.append(check())
        except Exception as exc:  # noqa: BLE001 - a crash is this check's result
            details = tuple(traceback.format_exception_only(type(exc), exc))
            results.append(Result(check_id, title, Status.CRASHED, f"the check itself failed: {exc}", details=details))
    return results


def summary_line(results: list[Result]) -> str:
    problems = [r for r in results if r.status is not Status.OK]
    if not problems:
        return "No issues found."
    return f"Found issues in {len(problems)} check{'s' if len(problems) != 1 else ''}."


def any_failed(results: Iterable[Result]) -> bool:
    return any(r.failed for r in results)
