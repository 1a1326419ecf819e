"""Stripe events about money after the fact (issue 17): a credit pack refunded or disputed
(its unused credits revoked, given back when the dispute is won), a delayed (SEPA) payment
that fails or succeeds, meter events Stripe rejected (a thin event), and the event types the
portal does not act on. Each delivered twice and out of order, on the emulator."""

from __future__ import annotations

import json

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.customers.models import Customer
from app.lib.clock import utcnow
from app.metering.models import CreditLedgerEntry
from app.metering.outbox import StripeOutboxMessage
from app.metering.service import EventInput
from app.stripe.gateway import InvalidSignature, StripeGateway
from app.stripe_sync.models import StripeEvent
from app.stripe_sync.repository import OutboxRepository
from tests.factories import log_in_new_admin
from tests.integration.stripe.conftest import (
    VISA,
    Emulator,
    Services,
    customer_of,
    login_new_user,
    post_form,
)
from tests.integration.stripe.test_account_events import sdk, twice_out_of_order
from tests.integration.stripe.test_webhooks import _event, _sign
from tests.support import wait_until

DISPUTED = {**VISA, "card_number": "4000 0000 0000 0259"}


def _about(
    emulator: Emulator, ids: list[str], types: set[str], after: int
) -> list[tuple[bytes, str]]:
    """The deliveries since `after` that name any of `ids`, once all of `types` came."""

    def ready() -> list[tuple[bytes, str]] | None:
        found = emulator.deliveries_for(lambda e: any(i in json.dumps(e) for i in ids), after=after)
        kinds = {json.loads(body)["type"] for body, _ in found}
        return found if types <= kinds else None

    return wait_until(ready, 10, f"webhooks {sorted(types)}")


async def _buy_pack(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    email: str,
    card: dict[str, str] = VISA,
) -> tuple[Customer, str, str, int]:
    """A new user who paid for the 100 AI requests pack: (customer, session id, payment
    intent id, the delivery mark before paying)."""
    await login_new_user(client, email)
    response = await post_form(client, "/billing/credits/checkout", {"pack": "ai_100"})
    assert response.status_code == 303, response.text
    mark = emulator.mark()
    paid = emulator.pay(response.headers["location"], card)
    assert paid.status_code == 303, paid.text
    session_id = paid.headers["location"].split("session_id=")[1]
    pi = str(sdk(emulator).v1.checkout.sessions.retrieve(session_id).payment_intent)
    customer, _ = await customer_of(session, email)
    return customer, session_id, pi, mark


async def _credits(services: Services, session: AsyncSession, email: str) -> int:
    customer, _ = await customer_of(session, email)
    balances = await services.metering.balances_for(customer)
    return next(b for b in balances if b.code == "ai_requests").credits


async def _ledger(session: AsyncSession, email: str) -> list[tuple[str, int]]:
    customer, _ = await customer_of(session, email)
    rows = await session.scalars(
        select(CreditLedgerEntry)
        .where(CreditLedgerEntry.customer_id == customer.id, CreditLedgerEntry.kind != "consume")
        .order_by(CreditLedgerEntry.id)
    )
    return [(row.kind, row.amount) for row in rows]


async def test_a_refunded_pack_loses_only_its_unused_credits(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    services: Services,
) -> None:
    email = "refunded-pack@example.com"
    customer, _, pi, mark = await _buy_pack(client, session, emulator, email)
    cus = str(customer.stripe_customer_id)
    await twice_out_of_order(
        client, _about(emulator, [cus, pi], {"checkout.session.completed"}, mark)
    )
    assert await _credits(services, session, email) == 100
    # 20 a day are included on Free: 50 requests use 30 credits.
    for n in range(50):
        await services.metering.record(
            EventInput(f"refund-use-{n}", "ai_requests", external_customer_id=customer.external_id)
        )
    assert await _credits(services, session, email) == 70

    sdk(emulator).v1.refunds.create(params={"payment_intent": pi})
    everything = _about(emulator, [cus, pi], {"charge.refunded", "refund.created"}, mark)
    results = await twice_out_of_order(client, everything)
    # Events the portal does not act on (charge.succeeded, refund.created, ...) are ignored.
    statuses = {json.loads(body)["type"]: None for body, _ in everything}
    for result, (body, _) in zip(results, everything[::-1] + everything, strict=True):
        statuses[json.loads(body)["type"]] = result["status"]
    assert statuses["charge.refunded"] == "processed"
    assert statuses["refund.created"] == "ignored"

    assert await _credits(services, session, email) == 0
    assert await _ledger(session, email) == [("grant", 100), ("refund", -70)]
    page = await client.get("/billing/credits")
    assert "Revoked: payment refunded" in page.text
    assert "−70" in page.text

    await log_in_new_admin(client, "refund-admin@example.com")
    admin = await client.get(f"/admin/billing/customers/{customer.external_id}")
    assert admin.status_code == 200
    assert "Revoked: payment refunded" in admin.text and "-70" in admin.text


async def test_a_disputed_pack_is_revoked_and_restored_when_the_dispute_is_won(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    services: Services,
) -> None:
    email = "disputed-pack@example.com"
    customer, _, pi, mark = await _buy_pack(client, session, emulator, email, DISPUTED)
    cus = str(customer.stripe_customer_id)
    opened = _about(
        emulator, [cus, pi], {"checkout.session.completed", "charge.dispute.created"}, mark
    )
    # Reversed first: the dispute arrives before the grant, which then takes it into account.
    await twice_out_of_order(client, opened)
    assert await _credits(services, session, email) == 0
    assert await _ledger(session, email) == [("grant", 100), ("dispute", -100)]

    (dispute,) = sdk(emulator).v1.disputes.list(params={"payment_intent": pi}).data
    httpx.post(
        f"{emulator.url}/_emulator/disputes/{dispute.id}/close", data={"status": "won"}
    ).raise_for_status()
    everything = _about(emulator, [cus, pi], {"charge.dispute.closed"}, mark)
    await twice_out_of_order(client, everything)
    assert await _credits(services, session, email) == 100
    assert await _ledger(session, email) == [("grant", 100), ("dispute", -100), ("restore", 100)]
    page = await client.get("/billing/credits")
    assert "Revoked: payment disputed" in page.text and "Restored: dispute won" in page.text


async def _bank_debit(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    services: Services,
    email: str,
    iban: str,
) -> tuple[str, str]:
    """A new user pays the 100 AI requests pack by SEPA Direct Debit (`iban` decides how it
    settles): Checkout completes unpaid, its webhook delivered; then the emulator settles it.
    Returns (the session id, the event Stripe sent when it settled, delivered twice)."""
    await login_new_user(client, email)
    customer, _ = await customer_of(session, email)
    cus = await services.billing.ensure_stripe_customer(customer)
    customer, _ = await customer_of(session, email)
    created = sdk(emulator).v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "customer": cus,
            "client_reference_id": customer.public_id,
            "line_items": [
                {
                    "price_data": {
                        "currency": "eur",
                        "unit_amount": 1000,
                        "product_data": {"name": "100 AI requests"},
                    },
                    "quantity": 1,
                }
            ],
            "allowed_payment_method_types": ["card", "sepa_debit"],
            "invoice_creation": {"enabled": True},
            "metadata": {
                "kind": "credit_pack",
                "customer_public_id": customer.public_id,
                "pack": "ai_100",
            },
            "success_url": "http://testserver.local/billing/checkout/success?session_id={CHECKOUT_SESSION_ID}",
        }
    )
    session_id = created.id
    mark = emulator.mark()
    paid = httpx.post(str(created.url), data={"iban": iban, "name": "Ada"})
    assert paid.status_code == 303, paid.text
    completed = _about(emulator, [session_id], {"checkout.session.completed"}, mark)
    await twice_out_of_order(client, completed)
    success = f"/billing/checkout/success?session_id={session_id}"
    assert 'data-state="processing"' in (await client.get(success)).text
    assert await _credits(services, session, email) == 0  # not paid yet

    httpx.post(f"{emulator.url}/_emulator/checkout/sessions/{session_id}/settle").raise_for_status()
    after = {"checkout.session.async_payment_succeeded", "checkout.session.async_payment_failed"}

    def settled() -> list[tuple[bytes, str]] | None:
        found = emulator.deliveries_for(lambda e: session_id in json.dumps(e), after=mark)
        return found if any(json.loads(body)["type"] in after for body, _ in found) else None

    everything = wait_until(settled, 10, "the settled payment's event")
    await twice_out_of_order(client, everything)
    return session_id, next(
        json.loads(b)["type"] for b, _ in everything if json.loads(b)["type"] in after
    )


async def test_a_failed_bank_debit_grants_nothing_and_says_so(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    services: Services,
) -> None:
    email = "sepa-fails@example.com"
    session_id, settled = await _bank_debit(
        client, session, emulator, services, email, "DE62 3704 0044 0532 0130 01"
    )
    assert settled == "checkout.session.async_payment_failed"
    assert await _credits(services, session, email) == 0
    page = await client.get(f"/billing/checkout/success?session_id={session_id}")
    assert 'data-state="payment_failed"' in page.text
    assert 'data-testid="checkout-payment-failed"' in page.text
    assert "hx-trigger" not in page.text.split('data-testid="checkout-status"')[1].split(">")[0]


async def test_a_settled_bank_debit_grants_the_pack_once(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    services: Services,
) -> None:
    email = "sepa-settles@example.com"
    session_id, settled = await _bank_debit(
        client, session, emulator, services, email, "DE89 3704 0044 0532 0130 00"
    )
    assert settled == "checkout.session.async_payment_succeeded"
    assert await _credits(services, session, email) == 100
    page = await client.get(f"/billing/checkout/success?session_id={session_id}")
    assert 'data-state="done"' in page.text


async def test_meter_events_stripe_rejected_are_flagged_and_shown_to_admins(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    services: Services,
    gateway: StripeGateway,
) -> None:
    await services.billing.price_id("plan_business_monthly")  # the catalog sync makes the meters
    meter = next(m for m in await gateway.list_meters() if m["event_name"] == "bp_api_calls")
    identifier = "api_calls:" + "ab" * 32
    await OutboxRepository(session).add_meter_event(
        identifier=identifier,
        stripe_customer_id="cus_gone",
        meter_code="api_calls",
        value=3,
        timestamp=utcnow(),
    )
    await session.commit()
    with emulator.receiver.lock:
        seen = len(emulator.receiver.thin_deliveries)
    httpx.post(
        f"{emulator.url}/_emulator/meters/{meter['id']}/error_report",
        data={
            "code": "meter_event_customer_not_found",
            "message": "No customer cus_gone",
            "identifier": identifier,
        },
    ).raise_for_status()

    def notification() -> tuple[bytes, str] | None:
        with emulator.receiver.lock:
            fresh = list(emulator.receiver.thin_deliveries[seen:])
        return (fresh[0].body, fresh[0].signature) if fresh else None

    body, signature = wait_until(notification, 10, "thin event")
    headers = {"Content-Type": "application/json"}
    forged = await client.post(
        "/webhooks/stripe/thin", content=body, headers={**headers, "Stripe-Signature": "t=1,v1=x"}
    )
    assert forged.status_code == 400 and forged.json()["error"] == "invalid_signature"
    answers = [
        (
            await client.post(
                "/webhooks/stripe/thin",
                content=body,
                headers={**headers, "Stripe-Signature": signature},
            )
        ).json()
        for _ in range(2)
    ]
    assert [(a["status"], a["duplicate"]) for a in answers] == [
        ("processed", False),
        ("processed", True),
    ]

    await session.rollback()
    row = await session.scalar(
        select(StripeOutboxMessage).where(StripeOutboxMessage.idempotency_key == identifier)
    )
    assert row is not None and row.status == "rejected"
    assert "meter_event_customer_not_found" in (row.last_error or "")
    event = await session.scalar(
        select(StripeEvent).where(StripeEvent.stripe_event_id == answers[0]["event"])
    )
    assert event is not None
    assert (event.type, event.object_id) == ("v1.billing.meter.error_report_triggered", meter["id"])

    await log_in_new_admin(client, "meter-admin@example.com")
    page = await client.get(f"/admin/billing/events/{event.stripe_event_id}")
    assert page.status_code == 200
    assert identifier in page.text and "meter_event_customer_not_found" in page.text
    overview = await client.get("/admin/billing")
    assert 'data-testid="rejected-meter-events"' in overview.text
    assert identifier in overview.text and "No customer cus_gone" in overview.text

    # With a destination secret of its own, only that secret's signature holds.
    own = StripeGateway(
        "sk_test_thin", "whsec_webhook", api_base=emulator.url, thin_webhook_secret="whsec_thin"
    )
    with pytest.raises(InvalidSignature):
        await own.parse_thin_event(body, _sign(body, "whsec_webhook"))
    thin = await own.parse_thin_event(body, _sign(body, "whsec_thin"))
    assert (thin.id, thin.related_object_id) == (event.stripe_event_id, meter["id"])


async def test_event_types_the_portal_does_not_act_on_are_ignored_once(
    client: AsyncTestClient[Litestar], session: AsyncSession
) -> None:
    types = [
        "charge.succeeded",
        "charge.failed",
        "charge.pending",
        "refund.created",
        "payment_intent.requires_action",
        "payment_intent.processing",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
        "customer.created",
        "setup_intent.succeeded",
    ]
    for n, type_ in enumerate(types):
        body = _event(f"evt_unneeded_{n}", type_, {"id": f"obj_{n}", "customer": "cus_nobody"})
        for _ in range(2):
            answer = await client.post(
                "/webhooks/stripe",
                content=body,
                headers={"Stripe-Signature": _sign(body), "Content-Type": "application/json"},
            )
            assert answer.status_code == 200 and answer.json()["status"] == "ignored", type_
    await session.rollback()
    rows = list(
        await session.scalars(
            select(StripeEvent).where(StripeEvent.stripe_event_id.like("evt_unneeded_%"))
        )
    )
    assert len(rows) == len(types)
    assert {(r.status, r.attempts, r.last_error) for r in rows} == {("ignored", 1, None)}
