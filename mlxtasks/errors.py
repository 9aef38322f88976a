"""The one error type the core raises for failures a user can fix."""


class MlxTasksError(Exception):
    """An expected failure: `message` is the sentence shown, `fix` the command that helps."""

    def __init__(self, message: str, fix: str = ""):
        super().__init__(message)
        self.message = message
        self.fix = fix


TRACEBACK = "Traceback (most recent call last):"


def untraced(lines: list[str], where: str) -> list[str]:
    """A child's output with each Python traceback cut down to the error it ends in, such as "ValueError: bad
    shape", and where the whole trace is (a log): what to quote of a child's crash."""
    kept, tracing = [], False
    for line in lines:
        if line.rstrip().endswith(TRACEBACK):
            tracing = True
        elif tracing and (not line.strip() or line[0].isspace()):
            continue  # a frame of the trace
        elif tracing:
            tracing = False
            kept.append(f"{line.strip()} (the traceback is in {where})")
        else:
            kept.append(line)
    return kept
