"""Errors become JSON `{"error", "message"}` under /api/ and HTML pages for browsers."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    ValidationException,
)
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from app.db.engine import is_busy
from app.lib.errors import DomainError

log = structlog.get_logger()

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    402: "insufficient_balance",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "database_busy",
}
_TITLES = {
    400: "Bad request",
    401: "Please log in",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed",
    409: "Conflict",
    422: "Please check your input",
    429: "Too many attempts",
    500: "Something went wrong",
    503: "Busy, please retry",
}


def is_api(request: Request[Any, Any, Any]) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path.startswith("/webhooks/")


def error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    status, code, message, extra = _describe(exc)
    if status == 503:
        log.warning("database busy", path=request.url.path, error=str(exc)[:200])
    elif status >= 500:
        log.exception("unhandled error", path=request.url.path, exc_info=exc)
    headers = dict(getattr(exc, "headers", None) or {})
    if status == 503:
        headers.setdefault("Retry-After", "1")
    if is_api(request):
        body = {"error": code, "message": message, **extra}
        return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)
    if status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(path=f"/login?next={quote(target)}", status_code=303)
    template = f"errors/{status}.html" if status in (403, 404, 500) else "errors/generic.html"
    context = {"status": status, "title": _TITLES.get(status, "Error"), "message": message}
    return Template(template_name=template, context=context, status_code=status, headers=headers)


def _describe(exc: Exception) -> tuple[int, str, str, dict[str, Any]]:
    if isinstance(exc, DomainError):
        return exc.status_code, exc.code, exc.message, dict(exc.extra)
    if isinstance(exc, ValidationException):
        return 422, "validation_error", _validation_message(exc), {"fields": _fields(exc)}
    if isinstance(exc, NotAuthorizedException):
        return 401, "unauthorized", exc.detail or "Authentication required.", {}
    if isinstance(exc, HTTPException):
        status = exc.status_code
        if status == 400:  # an undecodable body is invalid input like any other
            return 422, "validation_error", exc.detail or "Invalid input.", {}
        message = exc.detail if status < 500 else "Something went wrong on our side."
        return status, _CODES.get(status, "error"), message, {}
    if is_busy(exc):
        # Lock contention on SQLite, not a bug: nothing was written; the client retries.
        return (
            503,
            "database_busy",
            "The database is busy. Nothing was saved; retry in a moment.",
            {},
        )
    return HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "Something went wrong on our side.", {}


def _fields(exc: ValidationException) -> list[dict[str, Any]]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    fields = [item for item in extra if isinstance(item, dict)]
    # `data` is the handler's parameter for the whole body, a name the caller never sent.
    return [
        {**item, "key": "body"}
        if item.get("key") == "data" and item.get("source") == "body"
        else item
        for item in fields
    ]


def _validation_message(exc: ValidationException) -> str:
    fields = _fields(exc)
    if fields:
        first = fields[0]
        key = first.get("key") or first.get("source") or "body"
        return f"Invalid {key}: {first.get('message', 'invalid value')}"
    return exc.detail or "Invalid input."


def exception_handlers() -> dict[type[Exception] | int, Any]:
    return {Exception: error_response}
