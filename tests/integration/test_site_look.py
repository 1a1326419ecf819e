"""Issue 21, items 10 and 13: the favicon (no 404 on any page), the 404 page for a logged-in
user (their navigation, one heading), and the BRAND_* settings on pages and in emails."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest

from app.config import Settings
from app.lib.branding import Brand, contrast
from app.notifications.service import NotificationService, email_environment
from app.web.security_headers import CONTENT_SECURITY_POLICY
from tests.factories import log_in_new_user
from tests.support import make_settings


async def test_favicon_is_linked_and_answered(client: Any) -> None:
    page = await client.get("/login")
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page.text
    for path in ("/favicon.ico", "/static/favicon.svg"):
        icon = await client.get(path)
        assert icon.status_code == 200, path
        assert icon.headers["content-type"].startswith("image/svg+xml")
        assert icon.content.startswith(b"<svg")


async def test_404_for_a_logged_in_user_has_their_navigation_and_one_heading(client: Any) -> None:
    user = await log_in_new_user(client)
    response = await client.get("/no-such-page")
    assert response.status_code == 404
    assert 'data-testid="logout"' in response.text  # the logged-in navigation
    assert user.email in response.text
    assert 'href="/login"' not in response.text
    assert re.findall(r"<h1[^>]*>(.*?)</h1>", response.text) == ["Page not found"]
    assert "Not Found" not in response.text


async def test_404_logged_out_has_the_logged_out_navigation(client: Any) -> None:
    response = await client.get("/billing/nothing-here/at-all", follow_redirects=False)
    assert response.status_code == 404
    assert 'href="/login"' in response.text
    assert "Not Found" not in response.text
    post = await client.post("/no-such-form", follow_redirects=False)
    assert post.status_code in (403, 404)  # CSRF answers first without a token


BRAND = Brand.build(
    name="Acme Cloud",
    logo_url="https://cdn.acme.test/logo.svg",
    color="#0a7d55",
    support_email="help@acme.test",
)


@pytest.fixture
def settings(var_dir: Any, database_url: str) -> Settings:
    return make_settings(var_dir, database_url, brand=BRAND)


async def test_brand_on_pages(client: Any) -> None:
    page = await client.get("/login")
    assert "· Acme Cloud</title>" in page.text
    assert 'class="brand-logo" src="https://cdn.acme.test/logo.svg"' in page.text
    assert 'href="mailto:help@acme.test"' in page.text
    assert '<link rel="stylesheet" href="/brand.css">' in page.text
    # The logo's origin is allowed as an image source, nothing else changes.
    policy = page.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY.replace(
        "img-src 'self'", "img-src 'self' https://cdn.acme.test"
    )
    css = await client.get("/brand.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "--primary: #0a7d55;" in css.text
    assert "prefers-color-scheme: dark" in css.text


def test_brand_color_is_validated_and_adjusted_for_contrast() -> None:
    with pytest.raises(ValueError, match="BRAND_COLOR"):
        Brand.build(color="green")
    assert Brand.build(color="#0A7D55").color == "#0a7d55"
    assert Brand.build(color="0a7").requested_color == "#00aa77"  # 3:1 with white: darkened
    light = Brand.build(color="#ffcc00")  # white text on yellow: 1.5:1
    assert light.requested_color == "#ffcc00"
    assert contrast(light.color, "#ffffff") >= 4.5
    assert contrast(light.hover, "#ffffff") >= 4.5
    assert contrast(Brand().dark_link, "#1c2128") >= 4.5
    with pytest.raises(ValueError, match="BRAND_LOGO_URL"):
        Brand.build(logo_url="javascript:alert(1)")


def test_brand_in_emails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAND_NAME", "Acme Cloud")
    monkeypatch.setenv("BRAND_COLOR", "#0a7d55")
    monkeypatch.setenv("BRAND_SUPPORT_EMAIL", "help@acme.test")
    email_environment.cache_clear()
    try:
        service = NotificationService(SimpleNamespace(), "https://portal.acme.test")  # type: ignore[arg-type]
        mail = service.render(
            "password_reset",
            "Reset your password",
            {"customer": SimpleNamespace(name="Ada"), "reset_url": "https://x.test/r"},
        )
    finally:
        email_environment.cache_clear()
    assert "Acme Cloud" in mail.text and "Acme Cloud" in mail.html
    assert "Questions? Write to help@acme.test." in mail.text
    assert 'href="mailto:help@acme.test"' in mail.html
    assert "background:#0a7d55" in mail.html


@pytest.mark.parametrize(
    "path",
    ["/billing/nope", "/admin/billing/nope/deeper", "/account/nope", "/billing/invoices/a/b"],
)
async def test_404_under_a_known_prefix_keeps_the_logged_in_navigation(
    client: Any, path: str
) -> None:
    await log_in_new_user(client)
    response = await client.get(path)
    assert response.status_code == 404
    assert 'data-testid="logout"' in response.text
