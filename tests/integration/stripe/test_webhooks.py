"""POST /webhooks/stripe: signatures, the ledger, duplicates, failures and replay."""

from __future__ import annotations

import json
import time
from typing import Any

import stripe
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.stripe_sync.models import StripeEvent
from tests.integration.stripe.conftest import (
    Emulator,
    Services,
    customer_of,
    login_new_user,
    post_form,
)
from tests.integration.stripe_emulator.conftest import WEBHOOK_SECRET


def _event(
    event_id: str, type_: str = "product.created", obj: dict[str, Any] | None = None
) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": stripe.api_version,
            "created": int(time.time()),
            "type": type_,
            "livemode": False,
            "data": {"object": obj or {"id": "prod_x", "object": "product"}},
        }
    ).encode()


def _sign(body: bytes, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=at or int(time.time())
    )


async def _post(client: AsyncTestClient[Litestar], body: bytes, signature: str | None) -> Any:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return await client.post("/webhooks/stripe", content=body, headers=headers)


async def _count(session: AsyncSession) -> int:
    await session.rollback()
    return int(await session.scalar(select(func.count()).select_from(StripeEvent)) or 0)


async def test_valid_signature_is_stored_once(
    client: AsyncTestClient[Litestar], session: AsyncSession
) -> None:
    body = _event("evt_valid_1")
    response = await _post(client, body, _sign(body))
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"  # a type we do not act on
    row = await session.scalar(
        select(StripeEvent).where(StripeEvent.stripe_event_id == "evt_valid_1")
    )
    assert row is not None and row.payload["type"] == "product.created" and row.attempts == 1


async def test_forged_stale_and_missing_signatures_store_nothing(
    client: AsyncTestClient[Litestar], session: AsyncSession
) -> None:
    body = _event("evt_bad_1")
    forged = await _post(client, body, _sign(body, "whsec_someone_else"))
    stale = await _post(client, body, _sign(body, at=int(time.time()) - 301))
    missing = await _post(client, body, None)
    garbage = await _post(client, body, "t=abc,v1=def")
    tampered = await _post(client, body.replace(b"product.created", b"invoice.paid"), _sign(body))
    for response in (forged, stale, missing, garbage, tampered):
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_signature"
    assert await _count(session) == 0
    # Within the 300 s tolerance it is accepted.
    assert (await _post(client, body, _sign(body, at=int(time.time()) - 250))).status_code == 200


async def test_replayed_delivery_is_a_no_op(
    client: AsyncTestClient[Litestar], session: AsyncSession
) -> None:
    body = _event("evt_dup_1")
    first = await _post(client, body, _sign(body))
    second = await _post(client, body, _sign(body))
    assert first.json()["duplicate"] is False
    assert second.status_code == 200 and second.json()["duplicate"] is True
    assert await _count(session) == 1
    row = await session.scalar(select(StripeEvent))
    assert row is not None and row.attempts == 1


async def test_failure_is_recorded_answered_2xx_and_replayable(
    client: AsyncTestClient[Litestar], session: AsyncSession, services: Services
) -> None:
    # A completed checkout the emulator does not know: re-fetching it fails.
    body = _event(
        "evt_fail_1",
        "checkout.session.completed",
        {"id": "cs_test_missing", "object": "checkout.session", "customer": "cus_nobody"},
    )
    response = await _post(client, body, _sign(body))
    assert response.status_code == 200
    assert response.json()["status"] == "failed"
    await session.rollback()
    row = await session.scalar(
        select(StripeEvent).where(StripeEvent.stripe_event_id == "evt_fail_1")
    )
    assert row is not None and row.status == "failed" and row.attempts == 1
    assert "No such checkout.session" in (row.last_error or "")

    # Stripe redelivers a failed event: processed again (still failing), attempts counted.
    await _post(client, body, _sign(body))
    row = await services.events.replay("evt_fail_1")
    assert row.status == "failed" and row.attempts == 3


async def test_delayed_payment_grants_credits_on_async_payment_succeeded(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    services: Services,
) -> None:
    """ACH and other delayed methods: `checkout.session.completed` says `unpaid`; the
    credits come with `checkout.session.async_payment_succeeded`, granted once."""
    await login_new_user(client, "ach@example.com")
    response = await post_form(client, "/billing/credits/checkout", {"pack": "ai_100"})
    paid = emulator.pay(response.headers["location"])
    assert paid.status_code == 303
    session_id = paid.headers["location"].split("session_id=")[1]
    customer, _ = await customer_of(session, "ach@example.com")
    obj = {
        "id": session_id,
        "object": "checkout.session",
        "customer": customer.stripe_customer_id,
        "mode": "payment",
        "payment_status": "paid",
        "status": "complete",
    }
    for event_id in ("evt_async_paid_1", "evt_async_paid_2"):  # a second event: still once
        body = _event(event_id, "checkout.session.async_payment_succeeded", obj)
        result = await _post(client, body, _sign(body))
        assert result.status_code == 200
        assert result.json()["status"] == "processed", result.json()
    customer, _ = await customer_of(session, "ach@example.com")
    balances = await services.metering.balances_for(customer)
    assert next(b for b in balances if b.code == "ai_requests").credits == 100
