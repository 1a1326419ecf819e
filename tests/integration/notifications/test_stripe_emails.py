"""Payment and trial emails from Stripe events: queued in the event's transaction, once."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.mirror import StripeMirror
from app.catalog.models import Catalog
from app.notifications.models import EmailOutboxMessage
from app.notifications.service import NotificationService
from app.stripe_sync.service import StripeEventService
from tests.integration.notifications.conftest import (
    PUBLIC_URL,
    MakeWorker,
    SmtpServer,
    assert_links_absolute,
    make_customer,
)

HOSTED = "https://invoice.stripe.test/i/in_1"
NOW = int(time.time())


class FakeGateway:
    """Stripe's current state of each object, as the handlers re-fetch it."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}

    def verify_signature(self, payload: bytes, signature: str | None) -> None:
        return None

    async def retrieve_invoice(self, invoice_id: str) -> dict[str, Any]:
        return self.objects[invoice_id]

    async def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]:
        return self.objects[subscription_id]


def _invoice(status: str) -> dict[str, Any]:
    return {
        "id": "in_1",
        "object": "invoice",
        "customer": "cus_S1",
        "status": status,
        "currency": "usd",
        "total": 2900,
        "amount_due": 2900,
        "amount_paid": 2900 if status == "paid" else 0,
        "number": "INV-0042",
        "hosted_invoice_url": HOSTED,
        "invoice_pdf": None,
        "created": NOW,
        "lines": {"data": []},
    }


def _event(event_id: str, type_: str, obj: dict[str, Any]) -> bytes:
    return json.dumps(
        {"id": event_id, "type": type_, "created": NOW, "data": {"object": obj}}
    ).encode()


async def _setup(session: AsyncSession, catalog: Catalog) -> tuple[StripeEventService, FakeGateway]:
    customer = await make_customer(session, catalog, "cus_pay", email="payer@example.com")
    customer.stripe_customer_id = "cus_S1"
    await session.commit()
    gateway = FakeGateway()
    mirror = StripeMirror(session, catalog, gateway)  # type: ignore[arg-type]
    notifications = NotificationService(session, PUBLIC_URL, catalog)
    return StripeEventService(session, gateway, mirror, notifications), gateway  # type: ignore[arg-type]


async def _emails(session: AsyncSession) -> list[EmailOutboxMessage]:
    rows = list(await session.scalars(select(EmailOutboxMessage).order_by(EmailOutboxMessage.id)))
    await session.commit()
    return rows


async def test_payment_failed_then_paid(
    session: AsyncSession, catalog: Catalog, smtp: SmtpServer, make_worker: MakeWorker
) -> None:
    events, gateway = await _setup(session, catalog)
    gateway.objects["in_1"] = _invoice("open")
    failed = _event("evt_fail_1", "invoice.payment_failed", _invoice("open"))
    receipt = await events.receive(failed, "sig")
    assert receipt.status == "processed"
    await events.receive(failed, "sig")  # a duplicate delivery
    await events.replay("evt_fail_1")  # an admin replay
    assert [e.kind for e in await _emails(session)] == ["payment_failed"]

    gateway.objects["in_1"] = _invoice("paid")
    await events.receive(_event("evt_paid_1", "invoice.paid", _invoice("paid")), "sig")
    await events.replay("evt_paid_1")
    # A failure reported late, when Stripe says the invoice is paid: no alarm.
    await events.receive(_event("evt_fail_2", "invoice.payment_failed", _invoice("open")), "sig")
    assert [e.kind for e in await _emails(session)] == ["payment_failed", "payment_succeeded"]

    assert await make_worker().drain() == 2
    failed_mail, paid_mail = smtp.messages()
    assert failed_mail.rcpt_tos == paid_mail.rcpt_tos == ["payer@example.com"]
    assert failed_mail.subject == "Your payment of $29 failed: please update your payment method"
    assert f'href="{PUBLIC_URL}/billing/payment-methods"' in failed_mail.part("html")
    assert f"{PUBLIC_URL}/billing/payment-methods" in failed_mail.part("plain")
    assert paid_mail.subject == "Payment received: $29 for invoice INV-0042"
    assert HOSTED in paid_mail.part("plain") and f'href="{HOSTED}"' in paid_mail.part("html")
    for mail in (failed_mail, paid_mail):
        assert_links_absolute(mail, (HOSTED,))
        assert "settings" not in mail.part("plain")  # payment emails cannot be turned off


async def test_payment_emails_go_even_with_usage_emails_off(
    session: AsyncSession, catalog: Catalog, smtp: SmtpServer, make_worker: MakeWorker
) -> None:
    events, gateway = await _setup(session, catalog)
    customer = await events.mirror.customers.by_stripe_id("cus_S1")
    assert customer is not None
    customer.usage_emails = False
    await session.commit()
    gateway.objects["in_1"] = _invoice("open")
    await events.receive(_event("evt_fail_3", "invoice.payment_failed", _invoice("open")), "sig")
    assert await make_worker().drain() == 1
    assert len(smtp.messages()) == 1


async def test_trial_will_end(
    session: AsyncSession, catalog: Catalog, smtp: SmtpServer, make_worker: MakeWorker
) -> None:
    events, gateway = await _setup(session, catalog)
    trial_end = NOW + 3 * 86400
    subscription = {
        "id": "sub_1",
        "object": "subscription",
        "customer": "cus_S1",
        "status": "trialing",
        "trial_end": trial_end,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "items": {
            "data": [
                {
                    "price": {"lookup_key": "plan_pro_monthly"},
                    "current_period_start": NOW,
                    "current_period_end": trial_end,
                }
            ]
        },
    }
    gateway.objects["sub_1"] = subscription
    event = _event("evt_trial_1", "customer.subscription.trial_will_end", subscription)
    assert (await events.receive(event, "sig")).status == "processed"
    await events.replay("evt_trial_1")
    assert await make_worker().drain() == 1
    [mail] = smtp.messages()
    assert mail.rcpt_tos == ["payer@example.com"]
    assert mail.subject.startswith("Your Pro trial ends on ")
    assert f"{PUBLIC_URL}/billing/payment-methods" in mail.part("plain")
    assert_links_absolute(mail)
