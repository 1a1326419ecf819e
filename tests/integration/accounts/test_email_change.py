"""Change of email: the current password, a link to the new address, a notice to the old one;
on confirmation the login, the customer and the Stripe customer (the emulator) follow."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from sqlalchemy import select

from app.accounts.models import User
from app.config import Settings
from app.customers.models import Customer
from app.db.engine import write_from_here
from app.stripe.gateway import StripeGateway
from tests.conftest import signup
from tests.integration.accounts.helpers import (
    PASSWORD,
    emails,
    link_in_email,
    log_in_with,
    post,
)
from tests.integration.stripe.conftest import EMULATOR_SECRET, Emulator
from tests.integration.stripe.conftest import emulator as emulator
from tests.support import make_settings


@pytest.fixture
def settings(var_dir: Path, database_url: str, emulator: Emulator) -> Settings:
    return make_settings(
        var_dir,
        database_url,
        stripe_api_base=emulator.url,
        stripe_webhook_secret=EMULATOR_SECRET,
        require_email_verification=True,
    )


async def give_stripe_customer(session, settings: Settings, email: str) -> str:
    """The customer of `email` with a Stripe customer at the emulator (as a Checkout makes)."""
    gateway = StripeGateway.from_settings(settings)
    created = await gateway.create_customer(
        email=email, name="Ada", metadata={}, key="test-" + secrets.token_hex(6)
    )
    await write_from_here(session)
    customer = await session.scalar(select(Customer).where(Customer.email == email))
    customer.stripe_customer_id = created["id"]
    await session.commit()
    return str(created["id"])


async def ask_change(client, email: str, password: str = PASSWORD):
    return await post(
        client,
        "/account/email",
        {"email": email, "current_password": password},
        csrf_from="/account",
    )


async def test_the_new_address_confirms_and_everything_follows(client, session, settings):
    await signup(client, "ada@example.com")
    stripe_id = await give_stripe_customer(session, settings, "ada@example.com")

    wrong = await ask_change(client, "ada@new.example", "not my password")
    assert wrong.status_code == 422 and "current password is not right" in wrong.text
    assert await emails(client, "ada@new.example") == []

    asked = await ask_change(client, "Ada@New.Example")
    assert asked.status_code == 303
    (notice,) = await emails(client, "ada@example.com", "email_change_notice")
    assert "ada@new.example" in notice.text_body and "/verify/" not in notice.text_body
    link = await link_in_email(client, "ada@new.example", "email_change")
    # Nothing changes before the link is opened.
    assert (
        'data-testid="account-email-address">ada@example.com' in (await client.get("/account")).text
    )

    page = await client.get(link)
    assert page.status_code == 200 and "ada@new.example" in page.text
    done = await post(client, link, {}, csrf_from=link)
    assert done.status_code == 303 and done.headers["location"] == "/account"

    account = (await client.get("/account")).text
    assert 'data-testid="account-email-address">ada@new.example' in account
    session.expire_all()
    await session.rollback()
    user = await session.scalar(select(User))
    customer = await session.scalar(select(Customer))
    assert (user.email, customer.email) == ("ada@new.example", "ada@new.example")
    assert user.email_verified_at is not None
    stripe_customer = await StripeGateway.from_settings(settings).retrieve_customer(stripe_id)
    assert stripe_customer["email"] == "ada@new.example"

    assert (await client.get(link)).status_code == 410
    await post(client, "/logout", {}, csrf_from="/billing")
    assert (await log_in_with(client, "ada@example.com", PASSWORD)).status_code == 400
    assert (await log_in_with(client, "ada@new.example", PASSWORD)).status_code == 303


async def test_an_address_in_use_is_refused(client):
    await signup(client, "bob@example.com")
    await post(client, "/logout", {}, csrf_from="/billing")
    await signup(client, "ada@example.com")
    taken = await ask_change(client, "bob@example.com")
    assert taken.status_code == 409 and "Another account uses this email" in taken.text
    same = await ask_change(client, "ada@example.com")
    assert same.status_code == 422
    bad = await ask_change(client, "not-an-email")
    assert bad.status_code == 422


async def test_a_verification_link_for_the_old_address_no_longer_verifies(client, session):
    await signup(client, "ada@example.com")
    old_link = await link_in_email(client, "ada@example.com", "verify_email")
    assert (await ask_change(client, "ada@new.example")).status_code == 303
    link = await link_in_email(client, "ada@new.example", "email_change")
    assert (await post(client, link, {}, csrf_from=link)).status_code == 303
    # The change verified the new address and retired the old address's link.
    assert (await client.get(old_link)).status_code == 410
