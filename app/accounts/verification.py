"""The email verification gate: with `REQUIRE_EMAIL_VERIFICATION` (the default), a user whose
email is not confirmed may use the free plan but not start a paid Checkout or a change to a
paid plan. The refusal is a 403 page (authenticated, not allowed yet) that says why and
offers to send the link again."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.plugins.htmx import ClientRedirect
from litestar.response import Template

from app.accounts.guards import current_user
from app.config import Settings
from app.web.responses import PAGE_HEADERS

VERIFY_REQUIRED_PAGE = "/account/verify-required"
VERIFY_FIRST = (
    "Confirm your email address before you buy: open the link we sent to {email}. "
    "The free plan works meanwhile."
)


def must_verify(request: Request[Any, Any, Any]) -> bool:
    """True when the logged-in user may not pay yet."""
    settings: Settings = request.app.state["settings"]
    user = current_user(request)
    return settings.require_email_verification and user is not None and not user.email_verified


def verification_refusal(request: Request[Any, Any, Any]) -> Template | ClientRedirect:
    """The answer to a paid action of an unverified user: the explaining page, 403 (htmx
    swaps no 4xx answer, so a boosted form is sent to the same page by GET instead)."""
    if getattr(request, "htmx", None):
        response = ClientRedirect(redirect_to=VERIFY_REQUIRED_PAGE)
        response.status_code = 200
        return response
    return verification_page(request, status_code=403)


def verification_page(request: Request[Any, Any, Any], *, status_code: int = 200) -> Template:
    user = current_user(request)
    email = user.email if user else ""
    return Template(
        "accounts/verify_required.html",
        context={"message": VERIFY_FIRST.format(email=email), "email": email},
        status_code=status_code,
        headers=dict(PAGE_HEADERS),
    )
