"""A form's page shown again: what was typed, why it was refused, and the status that says so.

Every HTML form answers a refusal the same way (no redirect, so nothing typed is lost): the
form's template with its context, a 4xx status, and, when a rate limit refused it, when to try
again (`Retry-After`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Template

from app.web.responses import PAGE_HEADERS

# An HTML form post's body: `data: Annotated[SomeForm, Form]`.
Form = Body(media_type=RequestEncodingType.URL_ENCODED)


class RateLimited(Protocol):
    """A refusal by a rate limit (e.g. `app.accounts.throttle.Throttled`)."""

    @property
    def message(self) -> str: ...

    @property
    def retry_after(self) -> int: ...


def form_page(
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    retry_after: int | None = None,
    headers: Mapping[str, str] = PAGE_HEADERS,
) -> Template:
    """`template` with `context`; `retry_after` (seconds) adds the `Retry-After` header.
    `headers` default to `PAGE_HEADERS` (never cached)."""
    sent = dict(headers)
    if retry_after is not None:
        sent["Retry-After"] = str(retry_after)
    return Template(template, context=context, status_code=status_code, headers=sent)


def throttled_form(
    template: str,
    context: dict[str, Any],
    throttled: RateLimited,
    *,
    headers: Mapping[str, str] = PAGE_HEADERS,
) -> Template:
    """A form post refused by a rate limit: 429, its message as the form's `error`, and
    `Retry-After`."""
    return form_page(
        template,
        {**context, "error": throttled.message},
        status_code=429,
        retry_after=throttled.retry_after,
        headers=headers,
    )


__all__ = ["Form", "RateLimited", "form_page", "throttled_form"]
