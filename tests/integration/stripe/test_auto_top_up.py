"""Auto top-up and the low-balance email against the Stripe emulator (issue 20, item 3).

Usage goes in through the API (the app's usage writer, as a SaaS sends it); the worker's step
(`AutoTopUps`, what the Stripe worker runs each round) is run by the test, so each round is
under its control. Purchases are real off-session PaymentIntents at the emulator, on its test
cards: Visa, one that is declined when charged, one whose bank always asks for 3-D Secure.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.apikeys.service import ApiKeyService
from app.billing.auto_top_up import (
    CAPPED,
    FAILED,
    PENDING,
    SUCCEEDED,
    AutoTopUp,
    AutoTopUpPurchase,
)
from app.billing.auto_top_up_settings import AutoTopUpSettings
from app.catalog.models import Catalog
from app.config import Settings
from app.customers.models import Customer
from app.db.engine import create_engine, create_session_factory, write_from_here
from app.metering.models import CreditGrant
from app.metering.service import MeteringService
from app.metering.writer import UsageWriter
from app.notifications.models import EmailOutboxMessage
from app.notifications.service import NotificationService
from app.stripe.gateway import StripeGateway
from app.stripe_sync.auto_top_up import AutoTopUps
from tests.conftest import csrf_token, sibling_client
from tests.factories import log_in_new_user, make_api_customer
from tests.integration.stripe.conftest import Emulator, forward, wait_for_events

VISA = "pm_card_visa"
DECLINED_LATER = "pm_card_chargeCustomerFail"  # attaches, then every charge is declined
THREE_D_SECURE = "pm_card_authenticationRequired"  # the bank asks on every payment
PACK = "ai_100"  # 100 AI requests for $10.00
FREE_INCLUDED = 20  # the free plan's AI requests a day


@dataclass(frozen=True)
class Who:
    """A customer's ids, read once: the test session expires its ORM objects on rollback."""

    id: int
    public_id: str
    external_id: str
    stripe_customer_id: str


async def fresh(session: AsyncSession, who: Who) -> Customer:
    await session.rollback()
    session.expire_all()
    customer = await session.get(Customer, who.id)
    assert customer is not None
    return customer


@pytest.fixture
async def api(client: AsyncTestClient[Litestar], session: AsyncSession) -> Any:
    """The SaaS's API client: a sibling of `client` (one event loop for the app's pools)."""
    _key, raw = await ApiKeyService(session).create("tests")
    api = sibling_client(client)
    api.headers["Authorization"] = f"Bearer {raw}"
    return api


@pytest.fixture
async def writer(database_url: str, catalog: Catalog) -> Any:
    """A usage writer with its own engine, as a process has one (`Parts.writer_engine`): its
    synchronous reads must not share the test session's pool."""
    engine = create_engine(database_url)
    writer = UsageWriter(engine, catalog, upgrade_url="http://testserver.local/billing/upgrade")
    yield writer
    await writer.close()
    await engine.dispose()


@pytest.fixture
def runner(
    engine: AsyncEngine, catalog: Catalog, gateway: StripeGateway, writer: Any
) -> AutoTopUps:
    return make_runner(engine, catalog, gateway, writer)


def make_runner(
    engine: AsyncEngine, catalog: Catalog, gateway: StripeGateway, writer: Any
) -> AutoTopUps:
    return AutoTopUps(
        create_session_factory(engine),
        catalog,
        gateway,
        metering=lambda s: MeteringService(s, catalog, writer, writer.upgrade_url),
        notifications=lambda s: NotificationService(s, "http://testserver.local", catalog),
    )


async def stripe_customer(
    session: AsyncSession, services: Any, gateway: StripeGateway, customer: Customer, card: str
) -> Who:
    """A Stripe customer at the emulator with `card` as its default, mirrored to our rows."""
    tag = uuid.uuid4().hex
    created = await gateway.create_customer(
        email=customer.email,
        name=None,
        metadata={"customer_public_id": customer.public_id},
        key=f"test-customer-{tag}",
    )
    await gateway.set_default_payment_method(created["id"], card, key=f"test-card-{tag}")
    await write_from_here(session)
    customer.stripe_customer_id = created["id"]
    await session.commit()
    await services.billing.mirror.sync_cards(customer)
    who = Who(customer.id, customer.public_id, customer.external_id, created["id"])
    await session.commit()
    return who


async def api_customer(
    session: AsyncSession,
    catalog: Catalog,
    services: Any,
    gateway: StripeGateway,
    card: str = VISA,
) -> Who:
    customer = await make_api_customer(session, catalog, f"cus_{uuid.uuid4().hex[:10]}")
    await session.commit()
    return await stripe_customer(session, services, gateway, customer, card)


async def user_customer(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    services: Any,
    gateway: StripeGateway,
    card: str = VISA,
) -> Who:
    """A signed-up user's customer, logged in on `client`, with `card` at the emulator."""
    user = await log_in_new_user(client)
    found = await session.scalar(select(Customer).where(Customer.email == user.email))
    assert found is not None
    return await stripe_customer(session, services, gateway, found, card)


async def turn_on(
    session: AsyncSession,
    catalog: Catalog,
    who: Who,
    *,
    threshold: int = 10,
    cap: str = "50.00",
) -> None:
    settings = AutoTopUpSettings(session, catalog)
    await settings.save_top_up(
        await fresh(session, who),
        enabled="on",
        pack=PACK,
        threshold=str(threshold),
        monthly_cap=cap,
    )


async def use(api: AsyncTestClient[Litestar], customer: Who, count: int) -> list[int]:
    """`count` AI requests at once, as concurrent API calls; their status codes."""
    responses = await asyncio.gather(
        *(
            api.post(
                "/api/v1/events",
                json={
                    "event": {
                        "transaction_id": f"tx-{uuid.uuid4().hex}",
                        "external_customer_id": customer.external_id,
                        "code": "ai_requests",
                    }
                },
            )
            for _ in range(count)
        )
    )
    return [r.status_code for r in responses]


async def available(api: AsyncTestClient[Litestar], customer: Who) -> int:
    response = await api.get(f"/api/v1/customers/{customer.external_id}/balances")
    assert response.status_code == 200, response.text
    meters = response.json()["balances"]
    return int(next(m for m in meters if m["code"] == "ai_requests")["available"])


async def purchases(session: AsyncSession, customer: Who) -> list[Any]:
    await session.rollback()
    session.expire_all()
    found = await session.scalars(
        select(AutoTopUpPurchase)
        .where(AutoTopUpPurchase.customer_id == customer.id)
        .order_by(AutoTopUpPurchase.id)
    )
    # Plain copies: a later rollback expires ORM objects.
    return [SimpleNamespace(**row.__dict__) for row in found.all()]


async def rule_of(session: AsyncSession, customer: Who) -> Any:
    await session.rollback()
    session.expire_all()
    rule = await session.scalar(select(AutoTopUp).where(AutoTopUp.customer_id == customer.id))
    assert rule is not None
    return SimpleNamespace(**rule.__dict__)


async def emails(session: AsyncSession, customer: Who) -> list[str]:
    await session.rollback()
    found = await session.scalars(
        select(EmailOutboxMessage.kind)
        .where(EmailOutboxMessage.customer_id == customer.id)
        .order_by(EmailOutboxMessage.id)
    )
    return list(found.all())


async def grants(session: AsyncSession, customer: Who) -> list[tuple[str, int, str]]:
    await session.rollback()
    found = await session.execute(
        select(CreditGrant.transaction_id, CreditGrant.amount, CreditGrant.reason).where(
            CreditGrant.customer_id == customer.id
        )
    )
    return [tuple(row) for row in found.all()]  # type: ignore[misc]


def payment_intents(settings: Settings, emulator: Emulator, stripe_id: str) -> list[dict]:
    response = httpx.get(
        f"{emulator.url}/v1/payment_intents",
        params={"customer": stripe_id, "limit": 100},
        headers={"Authorization": f"Bearer {settings.effective_stripe_secret_key}"},
    )
    response.raise_for_status()
    return list(response.json()["data"])


# Buying once per crossing ------------------------------------------------------------------


async def test_a_crossing_under_concurrent_ingest_buys_exactly_once(
    api, session, catalog, services, gateway, runner, engine, writer, settings, emulator
):
    customer = await api_customer(session, catalog, services, gateway)
    await turn_on(session, catalog, customer, threshold=10)
    assert await runner.run_once() is not None  # above the threshold: nothing to do
    assert await purchases(session, customer) == []

    # Fifteen requests at once take the balance from 20 to 5, across the threshold of 10.
    assert await use(api, customer, 15) == [200] * 15
    # Two workers look at the same moment, then again: one purchase.
    other = make_runner(engine, catalog, gateway, writer)
    await asyncio.gather(runner.run_once(), other.run_once(), runner.run_once())
    await asyncio.gather(runner.run_once(), other.run_once())

    bought = await purchases(session, customer)
    assert [(p.status, p.crossing, p.amount, p.credits) for p in bought] == [
        (SUCCEEDED, 1, 1000, 100)
    ]
    assert bought[0].key == f"auto-top-up:{customer.public_id}:{bought[0].rule_id}:1"
    intents = payment_intents(settings, emulator, customer.stripe_customer_id)
    assert [(pi["amount"], pi["status"]) for pi in intents] == [(1000, "succeeded")]
    assert intents[0]["id"] == bought[0].payment_intent_id
    assert intents[0]["metadata"]["purchase"] == bought[0].key
    # The pack's credits through the same grant as a Checkout purchase, keyed by the purchase.
    assert await grants(session, customer) == [(bought[0].key, 100, "Auto top-up: 100 AI requests")]
    assert await available(api, customer) == 5 + 100
    assert await emails(session, customer) == ["auto_top_up"]

    # Still above the threshold after the pack: later usage above it buys nothing more...
    assert await use(api, customer, 50) == [200] * 50
    await runner.run_once()
    assert len(await purchases(session, customer)) == 1
    # ...and the next fall below it is a new crossing: a second pack.
    assert await use(api, customer, 50) == [200] * 50  # 55 -> 5
    await runner.run_once()
    await runner.run_once()
    assert [(p.status, p.crossing) for p in await purchases(session, customer)] == [
        (SUCCEEDED, 1),
        (SUCCEEDED, 2),
    ]
    assert await available(api, customer) == 105
    assert await emails(session, customer) == ["auto_top_up", "auto_top_up"]


async def test_the_monthly_cap_stops_a_purchase_and_says_so(
    client, api, session, catalog, services, gateway, runner, settings, emulator
):
    customer = await user_customer(client, session, services, gateway)
    await turn_on(session, catalog, customer, threshold=10, cap="15.00")  # one $10 pack
    assert await use(api, customer, 11) == [200] * 11  # 20 -> 9
    await runner.run_once()
    assert await use(api, customer, 100) == [200] * 100  # 109 -> 9: a second crossing
    await runner.run_once()
    await runner.run_once()

    bought = await purchases(session, customer)
    assert [(p.status, p.crossing) for p in bought] == [(SUCCEEDED, 1), (CAPPED, 2)]
    # The capped one was never charged.
    assert len(payment_intents(settings, emulator, customer.stripe_customer_id)) == 1
    assert await available(api, customer) == 9
    assert await emails(session, customer) == ["auto_top_up", "auto_top_up_capped"]
    await session.rollback()
    text = await session.scalar(
        select(EmailOutboxMessage.text_body).where(EmailOutboxMessage.kind == "auto_top_up_capped")
    )
    assert "$20.00" in text and "$15.00" in text and "Nothing was charged" in text
    # The rule stays on: a new month (or a higher cap) buys again.
    assert (await rule_of(session, customer)).enabled
    # The credits page says why nothing was bought.
    page = await client.get("/billing/credits")
    assert 'data-testid="auto-top-up-capped"' in page.text
    assert "did not buy 100 AI requests" in page.text and "$10.00" in page.text


# A payment that does not go through --------------------------------------------------------


@pytest.mark.parametrize(
    ("card", "reason"),
    [(DECLINED_LATER, "declined"), (THREE_D_SECURE, "authentication")],
)
async def test_a_failed_payment_turns_auto_top_up_off_and_tells_the_customer(
    client, api, session, catalog, services, gateway, runner, card, reason
):
    customer = await user_customer(client, session, services, gateway, card)
    await turn_on(session, catalog, customer, threshold=10)
    assert await use(api, customer, 12) == [200] * 12
    await runner.run_once()
    await runner.run_once()

    (bought,) = await purchases(session, customer)
    assert bought.status == FAILED and reason in bought.error
    rule = await rule_of(session, customer)
    assert not rule.enabled and reason in (rule.failure or "")
    assert await grants(session, customer) == []
    assert await emails(session, customer) == ["auto_top_up_failed"]
    # Off: falling further buys nothing.
    assert await use(api, customer, 5) == [200] * 5
    await runner.run_once()
    assert len(await purchases(session, customer)) == 1

    page = await client.get("/billing/credits")
    assert page.status_code == 200
    assert 'data-testid="auto-top-up-failed"' in page.text
    assert reason in page.text
    # Turning it on again clears the banner.
    await turn_on(session, catalog, customer, threshold=10)
    page = await client.get("/billing/credits")
    assert 'data-testid="auto-top-up-failed"' not in page.text


# Idempotency -------------------------------------------------------------------------------


async def test_a_worker_retry_after_a_crash_charges_and_grants_once(
    api, session, catalog, services, gateway, runner, settings, emulator
):
    customer = await api_customer(session, catalog, services, gateway)
    await turn_on(session, catalog, customer, threshold=10)
    assert await use(api, customer, 12) == [200] * 12
    # Evaluate only: the crossing is claimed, the purchase pending.
    rule = await rule_of(session, customer)
    assert await runner.evaluate(rule.id) == 1
    (pending,) = await purchases(session, customer)
    assert pending.status == PENDING
    # A worker charged it and died before it could record anything.
    first = await gateway.charge_off_session(
        customer.stripe_customer_id,
        amount=pending.amount,
        currency=pending.currency,
        description="Auto top-up: 100 AI requests",
        metadata={
            "kind": "auto_top_up",
            "customer_public_id": customer.public_id,
            "pack": PACK,
            "purchase": pending.key,
        },
        key=pending.key,
    )
    # The next worker makes the purchase again: Stripe answers with the first payment.
    assert await runner.purchase(pending.id) == 1
    (done,) = await purchases(session, customer)
    assert (done.status, done.payment_intent_id) == (SUCCEEDED, first["id"])
    assert len(payment_intents(settings, emulator, customer.stripe_customer_id)) == 1
    # Done once: another round, or the same purchase asked again, changes nothing.
    assert await runner.purchase(pending.id) == 0
    await runner.run_once()
    # Even a purchase put back to pending (a lost commit) grants and emails once.
    await write_from_here(session)
    await session.execute(
        update(AutoTopUpPurchase).where(AutoTopUpPurchase.id == done.id).values(status=PENDING)
    )
    await session.commit()
    assert await runner.purchase(pending.id) == 1
    assert len(await grants(session, customer)) == 1
    assert len(payment_intents(settings, emulator, customer.stripe_customer_id)) == 1
    assert await emails(session, customer) == ["auto_top_up"]
    assert await available(api, customer) == 8 + 100


# The low-balance email ---------------------------------------------------------------------


async def test_the_low_balance_email_once_per_crossing_and_again_after_it_rises(
    api, session, catalog, services, gateway, runner
):
    customer = await api_customer(session, catalog, services, gateway)
    settings = AutoTopUpSettings(session, catalog)
    await settings.save_alert(
        await fresh(session, customer), enabled="on", meter="ai_requests", threshold="10"
    )
    assert await use(api, customer, 12) == [200] * 12  # 20 -> 8
    await runner.run_once()
    await runner.run_once()
    assert await use(api, customer, 3) == [200] * 3  # still below: no new email
    await runner.run_once()
    assert await emails(session, customer) == ["credits_low"]
    # Back above the threshold (credits granted), then below again: a second email.
    response = await api.post(
        f"/api/v1/customers/{customer.external_id}/credits",
        json={"code": "ai_requests", "amount": 20, "transaction_id": "more", "reason": "gift"},
    )
    assert response.status_code == 200, response.text
    await runner.run_once()
    assert await use(api, customer, 20) == [200] * 20  # 25 -> 5
    await runner.run_once()
    assert await emails(session, customer) == ["credits_low", "credits_low"]
    await session.rollback()
    text = await session.scalar(
        select(EmailOutboxMessage.text_body)
        .where(EmailOutboxMessage.kind == "credits_low")
        .order_by(EmailOutboxMessage.id.desc())
    )
    assert "down to 5" in text and "below the 10" in text and "/billing/credits" in text
    # Nothing was bought: the email alone buys nothing.
    assert await purchases(session, customer) == []
    # Turned off: the next crossing sends nothing.
    await settings.save_alert(
        await fresh(session, customer), enabled="", meter="ai_requests", threshold="10"
    )
    await api.post(
        f"/api/v1/customers/{customer.external_id}/credits",
        json={"code": "ai_requests", "amount": 20, "transaction_id": "again", "reason": "gift"},
    )
    await runner.run_once()
    assert await use(api, customer, 20) == [200] * 20
    await runner.run_once()
    assert await emails(session, customer) == ["credits_low", "credits_low"]


# The settings forms ------------------------------------------------------------------------


async def test_the_credits_page_turns_auto_top_up_on_after_checking_the_input(
    client, session, catalog, services, gateway
):
    user = await log_in_new_user(client)
    token = await csrf_token(client, "/billing/credits")
    form = {
        "enabled": "on",
        "pack": PACK,
        "threshold": "10",
        "monthly_cap": "50",
        "_csrf_token": token,
    }

    # No card yet: refused, with the reason.
    response = await client.post("/billing/credits/auto-top-up", data=form, follow_redirects=True)
    assert "Add a card first" in response.text
    found = await session.scalar(select(Customer).where(Customer.email == user.email))
    assert found is not None
    customer = await stripe_customer(session, services, gateway, found, VISA)

    for bad, message in [
        ({"threshold": "0"}, "whole number"),
        ({"threshold": "ten"}, "whole number"),
        ({"monthly_cap": "5"}, "at least the pack"),
        ({"monthly_cap": "lots"}, "as an amount"),
        ({"pack": "nope"}, "Choose a credit pack"),
    ]:
        response = await client.post(
            "/billing/credits/auto-top-up", data={**form, **bad}, follow_redirects=True
        )
        assert message in response.text, bad
    await session.rollback()
    assert (
        await session.scalar(select(func.count()).select_from(AutoTopUp).where(AutoTopUp.enabled))
        == 0
    )

    response = await client.post("/billing/credits/auto-top-up", data=form, follow_redirects=True)
    assert "Auto top-up is on" in response.text and "ending 4242" in response.text
    assert 'data-testid="auto-top-up-status"><strong>On:</strong> below 10' in response.text
    rule = await rule_of(session, customer)
    assert (rule.enabled, rule.threshold, rule.pack_slug, rule.monthly_cap) == (
        True,
        10,
        PACK,
        5000,
    )

    response = await client.post(
        "/billing/credits/auto-top-up", data={**form, "enabled": ""}, follow_redirects=True
    )
    assert "Auto top-up is off" in response.text
    assert not (await rule_of(session, customer)).enabled

    response = await client.post(
        "/billing/credits/low-balance",
        data={
            "enabled": "on",
            "meter": "ai_requests",
            "alert_threshold": "5",
            "_csrf_token": token,
        },
        follow_redirects=True,
    )
    assert "falls below 5" in response.text
    rule = await rule_of(session, customer)
    assert (rule.alert_enabled, rule.alert_threshold) == (True, 5)


async def test_without_a_csrf_token_nothing_changes(client, session):
    await log_in_new_user(client)
    response = await client.post(
        "/billing/credits/auto-top-up",
        data={"enabled": "on", "pack": PACK, "threshold": "10", "monthly_cap": "50"},
    )
    assert response.status_code == 403
    await session.rollback()
    assert await session.scalar(select(func.count()).select_from(AutoTopUp)) == 0


# A refund ----------------------------------------------------------------------------------


async def test_a_refunded_auto_top_up_takes_back_its_unused_credits(
    client, api, session, catalog, services, gateway, runner, emulator
):
    customer = await api_customer(session, catalog, services, gateway)
    await turn_on(session, catalog, customer, threshold=10)
    assert await use(api, customer, 12) == [200] * 12  # 20 -> 8
    await runner.run_once()
    (bought,) = await purchases(session, customer)
    assert bought.status == SUCCEEDED and await available(api, customer) == 108
    mark = emulator.mark()
    await gateway.create_refund(
        bought.payment_intent_id,
        amount=bought.amount,
        reason="requested_by_customer",
        metadata={},
        key=f"test-refund-{uuid.uuid4().hex}",
    )
    deliveries = await wait_for_events(
        emulator, customer.stripe_customer_id, {"charge.refunded"}, after=mark
    )
    await forward(client, deliveries)
    await forward(client, deliveries)  # twice: once
    assert await available(api, customer) == 8


async def test_two_first_saves_at_once_make_one_rule(session, catalog, services, gateway, engine):
    """Two tabs saving auto top-up for the first time at once: both succeed, one row (on
    PostgreSQL both find no row, and the second insert meets the first's)."""
    customer = await api_customer(session, catalog, services, gateway)
    factory = create_session_factory(engine)

    async def save(threshold: int) -> str:
        async with factory() as own:
            settings = AutoTopUpSettings(own, catalog)
            found = await own.get(Customer, customer.id)
            assert found is not None
            return await settings.save_top_up(
                found, enabled="on", pack=PACK, threshold=str(threshold), monthly_cap="50.00"
            )

    said = await asyncio.gather(save(10), save(15))
    assert all("on" in s.lower() for s in said), said
    await session.rollback()
    rows = (
        await session.scalars(select(AutoTopUp).where(AutoTopUp.customer_id == customer.id))
    ).all()
    assert len(rows) == 1 and rows[0].enabled and rows[0].threshold in (10, 15)
