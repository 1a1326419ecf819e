"""Errors become JSON `{"error", "message"}` under /api/ and HTML pages for browsers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Operation, RequestBody
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from msgspec import UNSET, Struct, UnsetType

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


# What a page says under its title when the error carries no message of its own.
_MESSAGES = {
    404: "There is no page at this address. It may have moved, or the link may be mistyped.",
    405: "This page cannot be used that way.",
}
_PHRASES = {status: HTTPStatus(status).phrase for status in (*_TITLES, 405)}


def _is_not_found_route(request: Request[Any, Any, Any]) -> bool:
    handler = request.scope.get("route_handler")
    return bool(handler is not None and handler.opt.get("not_found_page"))


def is_api(request: Request[Any, Any, Any]) -> bool:
    """JSON errors: the API, webhooks, and JSON pages (`/billing/summary.json`), whose
    callers are scripts: a 401 there is JSON, not a redirect to the login page."""
    path = request.url.path
    return path.startswith(("/api/", "/webhooks/")) or path.endswith(".json")


def error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    status, code, message, extra = _describe(exc)
    if status == 401 and _is_not_found_route(request):
        # The catch-all route (app/web/site_files.py), for someone not logged in.
        status, code, message = 404, "not_found", "Not Found"
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
    # The security headers (app.web.security_headers), set in the portal's app state.
    page_headers = request.app.state.get("page_headers", {})
    if status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(path=f"/login?next={quote(target)}", status_code=303, headers=page_headers)
    headers = {**page_headers, **headers}
    if message == _PHRASES.get(status):  # Litestar's bare "Not Found": the page says more
        message = ""
    template = f"errors/{status}.html" if status in (403, 404, 500) else "errors/generic.html"
    context = {
        "status": status,
        "title": _TITLES.get(status, "Error"),
        "message": message or _MESSAGES.get(status, ""),
    }
    return Template(template_name=template, context=context, status_code=status, headers=headers)


def _describe(exc: Exception) -> tuple[int, str, str, dict[str, Any]]:
    if isinstance(exc, DomainError):
        return exc.status_code, exc.code, exc.message, dict(exc.extra)
    if isinstance(exc, ValidationException):
        extra = {"field": _field(exc), "fields": _fields(exc)}
        return 422, "validation_error", _validation_message(exc), extra
    if isinstance(exc, NotAuthorizedException):
        return 401, "unauthorized", exc.detail or "Authentication required.", {}
    if isinstance(exc, HTTPException):
        status = exc.status_code
        if status == 400:  # an undecodable body is invalid input like any other
            return 422, "validation_error", exc.detail or "Invalid input.", {"field": "body"}
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


def _problems(exc: ValidationException) -> list[dict[str, Any]]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    return [item for item in extra if isinstance(item, dict)]


def _field(exc: ValidationException) -> str:
    problems = _problems(exc)
    if not problems:
        return "body"
    return field_path(str(problems[0].get("message", "")), problems[0].get("key"))


def _fields(exc: ValidationException) -> list[dict[str, Any]]:
    fields = _problems(exc)
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


# msgspec's messages: "Object missing required field `amount` - at `$.reservation`".
_AT = re.compile(r"^(?P<message>.*?) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_NAMED = re.compile(r"^Object (?:missing required|contains unknown) field `(?P<name>[^`]+)`")


def field_path(message: str, key: str | None = None) -> str:
    """The field a msgspec validation error is about, as a dotted path in the caller's body:
    `reservation.amount`, `event.transaction_id`, `events[3]`, or `body` for the body itself.

    `message` is msgspec's message, with or without its ` - at `$.path`` tail; Litestar's
    `ValidationException.extra` keeps the message without the tail and the path as `key`
    (`data` for the whole body). A missing or unknown field is reported at the object that
    holds it, so its name is taken from the message.
    """
    path = "" if key in (None, "", "data") else str(key)
    if at := _AT.match(message):
        message, path = at["message"], at["path"]
    path = path.removeprefix(".")
    if named := _NAMED.match(message):
        path = f"{path}.{named['name']}" if path else named["name"]
    return path or "body"


def exception_handlers() -> dict[type[Exception] | int, Any]:
    return {Exception: error_response}


class FieldProblem(Struct):
    key: str
    message: str
    source: str


class ApiError(Struct):
    """Every API error. `error` is a stable code (`unauthorized`, `customer_not_found`,
    `meter_not_found`, `idempotency_conflict`, `validation_error`, ...); `field` names the
    input at fault (always on a `422`); some codes add keys of their own (a `409`
    `idempotency_conflict` names its `transaction_id`)."""

    error: str
    message: str
    field: str | UnsetType = UNSET
    # On a 422 found while decoding the body: Litestar's description of each problem.
    fields: list[FieldProblem] | UnsetType = UNSET


class QuotaOut(Struct):
    """The meter's quota in a `402`, as its balance shows it: `used` in the current period
    (what credits paid for included), `limit` the plan's included quota (null: unlimited),
    `percentage` of the included quota used, 0 to 100 (rounded down to 0.1)."""

    used: int
    limit: int | None
    percentage: float | None


class InsufficientBalanceError(ApiError, kw_only=True):
    """`402`: the meter's balance does not cover the amount. Nothing was recorded."""

    meter: str
    available: int
    required: int
    upgrade_url: str
    quota: QuotaOut


class PlanRefOut(Struct):
    code: str
    name: str


class FeatureNotInPlanError(ApiError, kw_only=True):
    """`403 feature_not_in_plan`: the customer's plan does not include the feature."""

    feature: str
    plan: str
    upgrade_url: str
    # The cheapest public plan that has the feature; null when none has it.
    cheapest_plan: PlanRefOut | None


_ERROR_DESCRIPTIONS = {
    401: "Missing or unknown API key",
    402: "Insufficient balance (`insufficient_balance`); nothing was recorded",
    403: "With `enforce=true`: the plan does not include the feature (`feature_not_in_plan`)",
    404: "Unknown customer, subscription, meter or reservation",
    409: (
        "The `transaction_id` was used with another payload, the reservation is no longer held, "
        "the guest was converted (`guest_converted`) or the customer's user deleted the account "
        "(`customer_deleted`)"
    ),
    422: "Invalid input; `field` names it",
    503: "The database was busy (`database_busy`); nothing was saved, retry after `Retry-After`",
}


_ERROR_BODIES: dict[int, type[ApiError]] = {
    402: InsufficientBalanceError,
    403: FeatureNotInPlanError,
}


def _error_responses(*statuses: int, public: bool = False) -> dict[int, ResponseSpec]:
    """OpenAPI responses for the API errors a handler can answer (401 always, unless
    `public`: every other API call needs a key), in the body `error_response` sends."""
    return {
        status: ResponseSpec(
            _ERROR_BODIES.get(status, ApiError),
            description=_ERROR_DESCRIPTIONS[status],
            generate_examples=False,
        )
        for status in sorted({401, *statuses} if not public else set(statuses))
    }


def api_docs(
    *errors: int,
    ok: dict[int, ResponseSpec] | None = None,
    optional_body: bool = False,
    public: bool = False,
) -> dict[str, Any]:
    """The OpenAPI keywords of an API handler: its success bodies (`ok`, when its annotation
    does not say them), the errors it can answer, and no Litestar `400` (`ApiOperation`).
    `optional_body`: the handler takes a request without a body (Litestar marks every
    body required). `public`: no API key needed (no `401`)."""
    operation: type[ApiOperation] = ApiOperationOptionalBody if optional_body else ApiOperation
    return {
        "responses": {**(ok or {}), **_error_responses(*errors, public=public)},
        "operation_class": PublicApiOperation if public else operation,
    }


@dataclass
class ApiOperation(Operation):
    """An API operation without the `400` Litestar documents for every handler that takes
    parameters or a body: the API answers bad input with `422` (`error_response`), never 400."""

    def __post_init__(self) -> None:
        if self.responses:
            self.responses.pop("400", None)


@dataclass
class PublicApiOperation(ApiOperation):
    """An operation anyone may call: no security requirement (the document's default is the
    session cookie, which Litestar's session auth declares for every operation)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.security = []


@dataclass
class ApiOperationOptionalBody(ApiOperation):
    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False
