"""REQUIRE_EMAIL_VERIFICATION=false: an unverified user pays as before (and sees no banner)."""

from __future__ import annotations

from tests.conftest import signup
from tests.integration.accounts.helpers import emails, post


async def test_without_the_setting_checkout_is_not_gated(client, settings):
    assert settings.require_email_verification is False
    await signup(client, "ada@example.com")
    assert len(await emails(client, "ada@example.com", "verify_email")) == 1  # still sent
    assert 'data-testid="verify-banner"' not in (await client.get("/billing")).text
    response = await post(
        client, "/billing/checkout", {"plan": "pro", "interval": "month"}, csrf_from="/billing"
    )
    assert response.status_code == 303
