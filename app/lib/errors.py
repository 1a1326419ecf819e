"""Domain errors with a stable code; the web layer maps them to status codes."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base for errors a caller can act on. `code` is stable and machine-readable."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extra = extra


class ValidationFailed(DomainError):
    status_code = 422
    code = "validation_error"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"


class InsufficientBalance(DomainError):
    status_code = 402
    code = "insufficient_balance"


def quoted(value: object, limit: int = 40) -> str:
    """A value the user sent, quoted in a message, cut to `limit` characters (a form field
    can hold anything, and the message is shown back on the page)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"
