"""A refused form's page: its context, status, page headers and Retry-After (app/web/forms.py)."""

from __future__ import annotations

from app.accounts.throttle import Throttled
from app.web.forms import form_page, throttled_form
from app.web.responses import PAGE_HEADERS


def test_a_form_page_is_never_cached_and_says_no_retry_by_default() -> None:
    page = form_page("accounts/forgot.html", {"form": {"email": "a@x.test"}}, status_code=422)
    assert page.template_name == "accounts/forgot.html"
    assert page.context == {"form": {"email": "a@x.test"}}
    assert page.status_code == 422
    assert dict(page.headers) == PAGE_HEADERS


def test_retry_after_is_added_to_the_headers_given_and_leaves_them_unchanged() -> None:
    link_headers = {**PAGE_HEADERS, "Referrer-Policy": "no-referrer"}
    page = form_page(
        "accounts/reset.html", {}, status_code=429, retry_after=90, headers=link_headers
    )
    assert dict(page.headers) == {**link_headers, "Retry-After": "90"}
    assert "Retry-After" not in link_headers
    assert "Retry-After" not in PAGE_HEADERS


def test_a_throttled_form_is_a_429_with_the_limit_message_and_when_to_retry() -> None:
    throttled = Throttled(retry_after=61)
    page = throttled_form("accounts/login.html", {"form": {"email": "a@x.test"}}, throttled)
    assert page.status_code == 429
    assert page.context == {"form": {"email": "a@x.test"}, "error": throttled.message}
    assert throttled.message == "Too many attempts. Try again in 2 minutes."
    assert dict(page.headers) == {**PAGE_HEADERS, "Retry-After": "61"}


def test_a_throttled_form_can_go_without_the_page_headers() -> None:
    page = throttled_form("accounts/signup.html", {}, Throttled(retry_after=5), headers={})
    assert dict(page.headers) == {"Retry-After": "5"}
