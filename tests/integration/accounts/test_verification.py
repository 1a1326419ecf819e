"""Email verification at signup and the gate on paying (REQUIRE_EMAIL_VERIFICATION on)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from app.accounts.models import User
from app.accounts.service import AccountService
from app.accounts.throttle import LINKS_PER_ACCOUNT
from app.config import Settings
from app.db.engine import write_from_here
from app.demo import DEMO_USERS, seed
from tests.conftest import csrf_token, signup
from tests.integration.accounts.helpers import emails, link_in_email, post
from tests.support import make_settings


@pytest.fixture
def settings(var_dir: Path, database_url: str) -> Settings:
    return make_settings(var_dir, database_url, require_email_verification=True)


async def verify(client, email: str = "ada@example.com") -> None:
    link = await link_in_email(client, email, "verify_email")
    page = await client.get(link)
    assert page.status_code == 200 and 'data-testid="confirm-link"' in page.text
    done = await post(client, link, {}, csrf_from=link)
    assert done.status_code == 303


async def test_signup_sends_a_link_that_verifies_once(client):
    await signup(client, "ada@example.com")
    dashboard = await client.get("/billing")
    assert 'data-testid="verify-banner"' in dashboard.text
    assert "Confirm your email" in dashboard.text
    assert 'data-testid="email-unconfirmed"' in (await client.get("/account")).text
    (sent,) = await emails(client, "ada@example.com", "verify_email")
    assert "/verify/" in sent.text_body and "/verify/" in sent.html_body

    link = await link_in_email(client, "ada@example.com", "verify_email")
    await verify(client)
    assert 'data-testid="verify-banner"' not in (await client.get("/billing")).text
    assert (await client.get(link)).status_code == 410


async def test_the_link_works_without_a_login(client):
    await signup(client, "ada@example.com")
    link = await link_in_email(client, "ada@example.com", "verify_email")
    await post(client, "/logout", {}, csrf_from="/billing")
    done = await post(client, link, {}, csrf_from=link)
    assert done.status_code == 303 and done.headers["location"] == "/login"


async def test_an_unverified_user_cannot_start_a_paid_checkout(client):
    await signup(client, "ada@example.com")
    for path, form in [
        ("/billing/checkout", {"plan": "pro", "interval": "month"}),
        ("/billing/credits/checkout", {"pack": "ai_500"}),
    ]:
        refused = await post(client, path, form, csrf_from="/billing")
        assert refused.status_code == 403, path
        assert "Confirm your email address before you buy" in refused.text
        assert 'action="/account/verify/resend"' in refused.text
    review = await client.get("/billing/subscription/review?plan=pro&interval=month")
    assert review.status_code == 403
    change = await post(
        client,
        "/billing/subscription/change",
        {"plan": "pro", "interval": "month", "proration_date": "1", "signature": "x"},
        csrf_from="/billing",
    )
    assert change.status_code == 403
    explained = await client.get("/account/verify-required")
    assert explained.status_code == 200 and "Confirm your email" in explained.text


async def test_htmx_checkout_of_an_unverified_user_goes_to_the_explanation(client):
    await signup(client, "ada@example.com")
    token = await csrf_token(client, "/billing")
    response = await client.post(
        "/billing/checkout",
        data={"plan": "pro", "interval": "month", "_csrf_token": token},
        headers={"HX-Request": "true"},
        follow_redirects=False,
    )
    assert response.headers.get("hx-redirect") == "/account/verify-required"


async def test_the_free_plan_needs_no_verification(client):
    await signup(client, "ada@example.com")
    response = await post(
        client, "/billing/checkout", {"plan": "free", "interval": "month"}, csrf_from="/billing"
    )
    assert response.status_code == 303


async def test_after_verifying_checkout_is_no_longer_refused(client):
    await signup(client, "ada@example.com")
    await verify(client)
    response = await post(
        client, "/billing/checkout", {"plan": "pro", "interval": "month"}, csrf_from="/billing"
    )
    # No emulator here: Stripe's failure is flashed, but the gate let it through.
    assert response.status_code == 303


async def test_send_again_is_throttled(client):
    await signup(client, "ada@example.com")
    for _ in range(LINKS_PER_ACCOUNT):
        response = await post(
            client, "/account/verify/resend", {"next": "/billing"}, csrf_from="/billing"
        )
        assert response.status_code == 303 and response.headers["location"] == "/billing"
    await post(client, "/account/verify/resend", {"next": "/billing"}, csrf_from="/billing")
    page = await client.get("/billing")
    assert "Too many attempts" in page.text
    # The signup's link and LINKS_PER_ACCOUNT more; each replaced the one before.
    assert len(await emails(client, "ada@example.com", "verify_email")) == LINKS_PER_ACCOUNT + 1


async def test_demo_users_cli_admins_and_api_members_are_verified(session, catalog):
    await seed(session, catalog)
    accounts = AccountService(session, catalog)
    await accounts.ensure_admin("ops@example.com", "a long admin password")
    await write_from_here(session)  # as its callers do
    await accounts.add_passwordless_user("api@example.com", "Named by the SaaS")
    await session.commit()
    users = list(await session.scalars(select(User)))
    assert {user.email for user in users} >= {email for _, email, _, _ in DEMO_USERS}
    assert all(user.email_verified_at is not None for user in users)
