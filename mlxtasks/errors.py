"""The one error type the core raises for failures a user can fix."""


class MlxTasksError(Exception):
    """An expected failure: `message` is the sentence shown, `fix` the command that helps."""

    def __init__(self, message: str, fix: str = ""):
        super().__init__(message)
        self.message = message
        self.fix = fix
