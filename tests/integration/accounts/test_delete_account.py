"""Delete account (issue 19, item 4) against the Stripe emulator: the subscription canceled at
once or at the period end, personal data removed here and at Stripe, bookkeeping kept, every
session ended, the login refused."""

from __future__ import annotations

import re

import httpx
import pyotp
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.accounts.totp import time_step
from app.billing.models import Invoice
from app.billing.portal_links import sign
from app.customers.models import Customer, Subscription
from app.lib.clock import utcnow
from app.metering.models import UsageEvent
from app.stripe.gateway import StripeGateway
from tests.conftest import csrf_token, sibling_client
from tests.factories import PASSWORD, log_in, log_in_new_user
from tests.integration.billing.conftest import grant, record
from tests.integration.stripe.conftest import (
    Emulator,
    emulator,
    gateway,
    settings,
    subscribe,
)

__all__ = ["emulator", "gateway", "settings"]  # fixtures: the portal on the emulator


async def post(
    client: AsyncTestClient[Litestar], path: str, data: dict[str, str]
) -> httpx.Response:
    token = await csrf_token(client, "/account/delete")
    return await client.post(path, data={**data, "_csrf_token": token}, follow_redirects=False)


async def paying_customer(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator, email: str
) -> tuple[Customer, str]:
    cus = await subscribe(client, session, emulator, email, "pro", trial=False)
    await session.rollback()
    customer = await session.scalar(select(Customer).where(Customer.stripe_customer_id == cus))
    assert customer is not None
    return customer, cus


async def login_refused(client: AsyncTestClient[Litestar], email: str) -> bool:
    fresh = sibling_client(client)
    token = await csrf_token(fresh, "/login")
    response = await fresh.post(
        "/login",
        data={"email": email, "password": PASSWORD, "_csrf_token": token},
        follow_redirects=False,
    )
    return response.status_code == 400


@pytest.mark.parametrize("mode", ["now", "period_end"])
async def test_delete_cancels_at_stripe_and_forgets_the_person(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
    api: AsyncTestClient[Litestar],
    mode: str,
) -> None:
    email = f"delete-{mode.replace('_', '-')}@example.com"
    customer, cus = await paying_customer(client, session, emulator, email)
    customer_id = customer.id
    await record(api, customer.external_id, count=2)
    await grant(api, customer.external_id, 10)
    await gateway.create_tax_id(cus, tax_type="eu_vat", value="DE123456789", key=f"tax-{cus}")
    subscription = await session.scalar(
        select(Subscription).where(Subscription.customer_id == customer.id)
    )
    assert subscription is not None and subscription.current_period_end is not None
    sub_id = subscription.stripe_subscription_id
    assert sub_id
    invoices_before = await session.scalar(
        select(func.count()).select_from(Invoice).where(Invoice.customer_id == customer.id)
    )

    page = await client.get("/account/delete")
    assert page.status_code == 200
    assert "Pro" in page.text
    assert f"{subscription.current_period_end:%B}" in page.text or "period" in page.text
    assert 'data-testid="delete-kept"' in page.text

    wrong = await post(client, "/account/delete", {"password": "not the password", "mode": mode})
    assert wrong.status_code == 422
    assert (await client.get("/billing", follow_redirects=False)).status_code == 200

    other_browser = sibling_client(client)  # another login of the same user
    assert customer.user_id is not None
    await log_in(other_browser, customer.user_id)
    assert (await other_browser.get("/billing", follow_redirects=False)).status_code == 200
    response = await post(client, "/account/delete", {"password": PASSWORD, "mode": mode})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/login"

    remote = await gateway.retrieve_subscription(sub_id)
    if mode == "now":
        assert remote["status"] == "canceled"
    else:
        assert remote["status"] == "active" and remote["cancel_at_period_end"] is True
    stripe_customer = await gateway.retrieve_customer(cus)
    assert not stripe_customer.get("email") and not stripe_customer.get("name")
    assert stripe_customer["metadata"].get("account_deleted") == "true"
    assert await gateway.list_tax_ids(cus) == []

    await session.rollback()
    session.expire_all()
    assert await session.scalar(select(User).where(User.email == email)) is None
    kept = await session.get(Customer, customer_id)
    assert kept is not None
    assert (kept.email, kept.name, kept.user_id) == (None, None, None)
    assert kept.deleted_at is not None
    assert kept.stripe_customer_id == cus  # Stripe's bookkeeping stays linked
    # Invoices, usage and the ledger are kept on the (pseudonymous) customer.
    assert (
        await session.scalar(
            select(func.count()).select_from(Invoice).where(Invoice.customer_id == customer_id)
        )
        == invoices_before
    )
    assert (
        await session.scalar(
            select(func.count()).select_from(UsageEvent).where(UsageEvent.customer_id == kept.id)
        )
        == 2
    )
    row = await session.scalar(select(Subscription).where(Subscription.customer_id == kept.id))
    assert row is not None
    if mode == "now":
        assert row.plan_slug == "free"
    else:
        assert row.cancel_at_period_end is True

    # Logged out here and in every other browser; the login is refused.
    assert (await client.get("/billing", follow_redirects=False)).status_code == 303
    assert (await other_browser.get("/billing", follow_redirects=False)).status_code == 303
    assert await login_refused(client, email)


async def test_delete_asks_the_two_factor_code_when_it_is_on(
    client: AsyncTestClient[Litestar], session: AsyncSession
) -> None:
    user = await log_in_new_user(client)
    await post(client, "/account/two-factor/setup", {})
    page = await client.get("/account/two-factor/setup")
    secret = re.search(r'data-secret="([A-Z2-7]+)"', page.text)
    assert secret
    totp = pyotp.TOTP(secret.group(1))
    await post(client, "/account/two-factor/confirm", {"code": totp.now()})
    assert 'name="code"' in (await client.get("/account/delete")).text

    no_code = await post(client, "/account/delete", {"password": PASSWORD, "mode": "now"})
    assert no_code.status_code == 422
    next_code = totp.generate_otp(time_step(utcnow()) + 1)
    done = await post(
        client, "/account/delete", {"password": PASSWORD, "code": next_code, "mode": "now"}
    )
    assert done.status_code == 303
    await session.rollback()
    assert await session.get(User, user.id) is None


async def test_a_free_account_is_deleted_without_stripe(
    client: AsyncTestClient[Litestar], session: AsyncSession
) -> None:
    user = await log_in_new_user(client)
    page = await client.get("/account/delete")
    assert "no paid subscription" in page.text
    assert 'name="mode" value="now"' in page.text  # nothing to choose
    done = await post(client, "/account/delete", {"password": PASSWORD, "mode": "now"})
    assert done.status_code == 303
    await session.rollback()
    assert await session.get(User, user.id) is None
    customer = await session.get(Customer, user.customer_id)
    assert customer is not None and customer.email is None and customer.deleted_at is not None
    assert await login_refused(client, user.email)
    # A portal link the SaaS makes later for the customer logs nobody in.
    secret = client.app.state["settings"].secret_key
    link = await sibling_client(client).post(f"/portal/{sign(secret, user.public_id, utcnow())}")
    assert link.status_code == 403


@pytest.fixture
async def api(client: AsyncTestClient[Litestar], session: AsyncSession):  # type: ignore[no-untyped-def]
    from app.apikeys.service import ApiKeyService

    _key, raw = await ApiKeyService(session).create("delete tests")
    api = sibling_client(client)
    api.headers["Authorization"] = f"Bearer {raw}"
    yield api


async def test_the_api_cannot_write_a_deleted_customer_back(
    client: AsyncTestClient[Litestar], session: AsyncSession, api: AsyncTestClient[Litestar]
) -> None:
    """The SaaS's customer sync sending the old name and email after the person deleted the
    account gets a 409 and changes nothing: the erasure stays."""
    user = await log_in_new_user(client)
    customer = await session.get(Customer, user.customer_id)
    assert customer is not None
    external_id = customer.external_id
    done = await post(client, "/account/delete", {"password": PASSWORD, "mode": "now"})
    assert done.status_code == 303
    body = {"customer": {"external_id": external_id, "email": user.email, "name": "Back"}}
    response = await api.post("/api/v1/customers", json=body)
    assert response.status_code == 409
    assert response.json()["error"] == "customer_deleted"
    assert "new external_id" in response.json()["message"]
    await session.rollback()
    kept = await session.get(Customer, user.customer_id)
    assert kept is not None and kept.email is None and kept.name is None


async def test_usage_for_a_deleted_customer_is_refused_and_a_retry_keeps_its_answer(
    client: AsyncTestClient[Litestar], session: AsyncSession, api: AsyncTestClient[Litestar]
) -> None:
    """After the account is deleted the SaaS's usage for it is refused (409 customer_deleted,
    nothing recorded); an event stored before gets its first answer on a retry."""
    user = await log_in_new_user(client)
    customer = await session.get(Customer, user.customer_id)
    assert customer is not None
    external_id = customer.external_id

    def event(tx: str) -> dict[str, object]:
        return {
            "event": {
                "transaction_id": tx,
                "external_customer_id": external_id,
                "code": "ai_requests",
            }
        }

    before = await api.post("/api/v1/events", json=event("before"))
    assert before.status_code == 200, before.text
    done = await post(client, "/account/delete", {"password": PASSWORD, "mode": "now"})
    assert done.status_code == 303

    after = await api.post("/api/v1/events", json=event("after"))
    assert after.status_code == 409 and after.json()["error"] == "customer_deleted", after.text
    hold = await api.post(
        "/api/v1/reservations",
        json={
            "reservation": {
                "external_customer_id": external_id,
                "code": "ai_requests",
                "amount": 1,
                "transaction_id": "hold",
            }
        },
    )
    assert hold.status_code == 409 and hold.json()["error"] == "customer_deleted", hold.text
    retry = await api.post("/api/v1/events", json=event("before"))
    assert retry.status_code == 200 and retry.json() == before.json()
    await session.rollback()
    stored = await session.scalar(
        select(func.count())
        .select_from(UsageEvent)
        .where(UsageEvent.customer_id == user.customer_id)
    )
    assert stored == 1
