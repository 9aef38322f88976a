"""What can go wrong with a request, said once below the HTTP layer: the request path, the pool and the
engine raise a Problem, and the HTTP layer (web.py) says it in the shape of the API the client speaks."""

from __future__ import annotations

# A Problem's kind: what happened, not a status (each API picks its own status and type for it).
INVALID = "invalid"  # the request is wrong
UNSUPPORTED = "unsupported"  # well formed, but this server does not do it
MODEL_CANNOT = "model_cannot"  # this server does it, the model asked for cannot (another model could)
NOT_FOUND = "not_found"
FORBIDDEN = "forbidden"
TOO_LARGE = "too_large"
MEDIA_TYPE = "media_type"
METHOD = "method"
BUSY = "busy"  # too many requests at once: try again shortly
UNAVAILABLE = "unavailable"  # the server cannot answer this now (no room for the model, a failed engine)
FAILED = "failed"  # this request failed on the server's side


class Problem(Exception):
    def __init__(
        self,
        kind: str,
        message: str,
        param: str | None = None,
        code: str | None = None,
        retry_after: int | None = None,
        allow: str | None = None,
    ):
        super().__init__(message)
        self.kind, self.message, self.param, self.code = kind, message, param, code
        self.retry_after, self.allow = retry_after, allow

    @property
    def headers(self) -> dict[str, str] | None:
        headers = {
            **({"Retry-After": str(self.retry_after)} if self.retry_after else {}),
            **({"Allow": self.allow} if self.allow else {}),
        }
        return headers or None


def invalid(param: str, why: str, code: str = "invalid_value") -> Problem:
    return Problem(INVALID, f"{param}: {why}", param=param, code=code)


def refuse(param: str, why: str) -> Problem:
    """A request for something this server does not do."""
    return Problem(UNSUPPORTED, f"{param}: {why}", param=param, code="unsupported_parameter")


def cannot(param: str, why: str) -> Problem:
    """A well-formed request that this server supports and the model asked for cannot do."""
    return Problem(MODEL_CANNOT, f"{param}: {why}", param=param, code="unsupported_by_model")
