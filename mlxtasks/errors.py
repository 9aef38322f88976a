"""The one error type the core raises for failures a user can fix."""


class MlxTasksError(Exception):
    """An expected failure: `message` is the sentence shown, `fix` the command that helps."""

    def __init__(self, message: str, fix: str = ""):
        super().__init__(message)
        self.message = message
        self.fix = fix


TRACEBACK = "Traceback (most recent call last):"


def raised(text: str) -> str | None:
    """The error the last Python traceback in a child's output ends in, such as "ValueError: bad shape" (None when
    the text holds no traceback): what to say of a child's crash, whose trace belongs in a log."""
    lines = text.splitlines()
    starts = [n for n, line in enumerate(lines) if line.rstrip().endswith(TRACEBACK)]
    if not starts:
        return None
    return next((line.strip() for line in lines[starts[-1] + 1:] if line.strip() and not line[0].isspace()), None)
