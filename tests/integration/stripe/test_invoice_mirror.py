"""Invoices as Stripe makes them, mirrored with what they are for, their lines, the card that
paid, refunds, and the customer's credit balance (`customer.balance`), on the emulator; the
webhooks delivered twice and in reverse order converge to the same rows."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.models import Invoice
from app.billing.stripe_objects import plan_item
from app.catalog.models import Catalog
from app.db.engine import write_from_here
from app.stripe.gateway import StripeGateway
from tests.integration.stripe.conftest import (
    FAILS_LATER,
    Emulator,
    Services,
    customer_of,
    forward,
    login_new_user,
    post_form,
    subscribe,
    wait_for_events,
)


async def _subscribe(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    email: str,
    plan: str,
    *,
    trial: bool,
) -> str:
    """A new user on `plan` through Checkout (Pro's trial, or paying at once), its webhooks
    delivered twice in reverse order; the Stripe customer id."""
    paid = frozenset({"checkout.session.completed", "invoice.paid"})
    return await subscribe(
        client,
        session,
        emulator,
        email,
        plan,
        trial=trial,
        events=paid,
        deliver=_deliver_twice_reversed,
    )


async def _deliver_twice_reversed(
    client: AsyncTestClient[Litestar], deliveries: list[tuple[bytes, str]]
) -> None:
    results = await forward(client, list(reversed(deliveries)))
    results += await forward(client, deliveries)
    assert not [r for r in results if r["status"] == "failed"], results


async def _invoices(session: AsyncSession, email: str) -> list[Invoice]:
    customer, _ = await customer_of(session, email)
    return list(
        await session.scalars(
            select(Invoice).where(Invoice.customer_id == customer.id).order_by(Invoice.created_at)
        )
    )


async def test_trial_invoice_and_credit_balance(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
) -> None:
    email = "invoice-trial@example.com"
    cus = await _subscribe(client, session, emulator, email, "pro", trial=True)
    (trial,) = await _invoices(session, email)
    assert (trial.status, trial.total, trial.billing_reason) == ("paid", 0, "subscription_create")
    assert trial.description == "Pro · monthly (trial)"
    listed = (await client.get("/billing/invoices")).text
    assert "Pro · monthly (trial)" in listed and "Trial — $0.00" in listed
    assert ">Paid<" not in listed

    # Support credits $120 at Stripe: customer.updated brings the balance.
    mark = emulator.mark()
    await gateway.client.v1.customers.balance_transactions.create_async(
        cus, {"amount": -12000, "currency": "usd", "description": "Goodwill"}
    )
    await _deliver_twice_reversed(
        client, await wait_for_events(emulator, cus, {"customer.updated"}, after=mark)
    )
    customer, _ = await customer_of(session, email)
    assert (customer.stripe_balance, customer.stripe_balance_currency) == (-12000, "usd")
    for path in ("/billing", "/billing/invoices"):
        html = (await client.get(path)).text
        assert "$120.00 credit, applied to your next invoices" in html, path


async def test_paid_invoice_downgrade_credit_and_refund(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
    catalog: Catalog,
    services: Services,
) -> None:
    email = "invoice-downgrade@example.com"
    cus = await _subscribe(client, session, emulator, email, "business", trial=False)
    (first,) = await _invoices(session, email)
    assert (first.status, first.total, first.description) == ("paid", 14900, "Business · monthly")
    assert (first.payment_brand, first.payment_last4) == ("visa", "4242")
    assert first.lines and first.lines[0]["label"] == "Business · monthly"
    first_id, first_stripe_id, intent = (
        first.id,
        first.stripe_invoice_id,
        first.stripe_payment_intent_id,
    )
    assert intent
    page = (await client.get(f"/billing/invoices/{first_stripe_id}")).text
    assert "$149.00" in page and "Visa ending in 4242" in page

    # An immediate downgrade to Pro, invoiced at once: a negative invoice, credit on the balance.
    _, sub = await customer_of(session, email)
    assert sub.stripe_subscription_id
    remote = await gateway.retrieve_subscription(sub.stripe_subscription_id)
    item = plan_item(catalog, remote)
    assert item is not None
    pro = (await gateway.prices_by_lookup_key(["plan_pro_monthly"]))["plan_pro_monthly"]
    mark = emulator.mark()
    await gateway.change_subscription_price(
        sub.stripe_subscription_id,
        item_id=item["id"],
        price_id=pro["id"],
        proration_behavior="always_invoice",
        metadata={},
        key=f"test-downgrade-{cus}",
    )
    await _deliver_twice_reversed(
        client,
        await wait_for_events(emulator, cus, {"invoice.paid", "customer.updated"}, after=mark),
    )
    credit = next(inv for inv in await _invoices(session, email) if inv.total < 0)
    assert credit.description == "Proration for plan change"
    assert credit.ending_balance == credit.total and credit.starting_balance == 0
    assert credit.lines and all(line["proration"] for line in credit.lines)
    credit_total = credit.total
    customer, _ = await customer_of(session, email)
    assert customer.stripe_balance == credit_total < 0
    shown = f"${-credit_total / 100:,.2f}"
    listed = (await client.get("/billing/invoices")).text
    assert f"{shown} credit" in listed and "Credit to balance" in listed
    assert f"-{shown}" not in listed
    assert f"{shown} credit, applied to your next invoices" in listed

    # A partial refund of the first payment shows on its invoice.
    mark = emulator.mark()
    await gateway.client.v1.refunds.create_async({"payment_intent": intent, "amount": 1000})
    await _deliver_twice_reversed(
        client, await wait_for_events(emulator, cus, {"charge.refunded"}, after=mark)
    )
    refunded = next(inv for inv in await _invoices(session, email) if inv.id == first_id)
    assert refunded.amount_refunded == 1000
    page = (await client.get(f"/billing/invoices/{first_stripe_id}")).text
    assert "Partially refunded" in page and "-$10.00" in page

    # A credit note on it ($5 to the balance) shows as credited.
    mark = emulator.mark()
    await gateway.client.v1.credit_notes.create_async(
        {"invoice": first_stripe_id, "amount": 500, "credit_amount": 500}
    )
    await _deliver_twice_reversed(
        client,
        await wait_for_events(
            emulator, cus, {"credit_note.created", "invoice.updated"}, after=mark
        ),
    )
    credited = next(inv for inv in await _invoices(session, email) if inv.id == first_id)
    assert credited.amount_credited == 500
    credit_total -= 500  # the balance took the credit note's $5 too
    page = (await client.get(f"/billing/invoices/{first_stripe_id}")).text
    assert "Credited by credit notes" in page and "-$5.00" in page

    # Reconcile puts back a balance and lines we lost.
    customer, _ = await customer_of(session, email)
    await write_from_here(session)
    customer.stripe_balance = 0
    lost = await session.get(Invoice, first_id)
    assert lost is not None
    lost.lines = None
    await session.commit()
    customer, _ = await customer_of(session, email)
    report = await services.billing.mirror.reconcile_customer(customer)
    await session.commit()
    assert any("credit balance" in line for line in report), report
    customer, _ = await customer_of(session, email)
    assert customer.stripe_balance == credit_total
    again = await session.get(Invoice, first_id)
    assert again is not None and again.lines and again.amount_refunded == 1000


async def test_open_invoice_marked_uncollectible_then_voided(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
) -> None:
    email = "invoice-void@example.com"
    await login_new_user(client, email)
    mark = emulator.mark()
    response = await post_form(client, "/billing/checkout", {"plan": "pro", "interval": "month"})
    # Trial: nothing is charged now, so a card that fails later is accepted.
    assert emulator.pay(response.headers["location"], FAILS_LATER).status_code == 303
    customer, _ = await customer_of(session, email)
    cus = customer.stripe_customer_id
    assert cus
    await forward(
        client, await wait_for_events(emulator, cus, {"checkout.session.completed"}, after=mark)
    )
    mark = emulator.mark()
    emulator.advance(days=15)
    await _deliver_twice_reversed(
        client, await wait_for_events(emulator, cus, {"invoice.payment_failed"}, after=mark)
    )
    renewal = next(inv for inv in await _invoices(session, email) if inv.status == "open")
    renewal_id = renewal.stripe_invoice_id
    assert renewal.description == "Pro · monthly"
    listed = (await client.get("/billing/invoices")).text
    assert "Due" in listed and "$29.00" in listed

    for action, event, status, label in (
        ("mark_uncollectible", "invoice.marked_uncollectible", "uncollectible", "Uncollectible"),
        ("void_invoice", "invoice.voided", "void", "Void"),
    ):
        mark = emulator.mark()
        await getattr(gateway.client.v1.invoices, f"{action}_async")(renewal_id)
        await _deliver_twice_reversed(
            client, await wait_for_events(emulator, cus, {event}, after=mark)
        )
        row = next(
            inv for inv in await _invoices(session, email) if inv.stripe_invoice_id == renewal_id
        )
        assert row.status == status
        page = (await client.get(f"/billing/invoices/{renewal_id}")).text
        assert f'data-testid="invoice-status">{label}<' in page


async def test_an_invoice_mirrored_meanwhile_is_updated_not_inserted_twice(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
    services: Services,
    monkeypatch: Any,
) -> None:
    """The customer's own plan change and Stripe's webhooks race to mirror a new invoice: the
    mirror's first read (before the write lock) misses the row a webhook commits meanwhile.
    Under the lock it looks again and updates that row (once: UNIQUE stripe_invoice_id)."""
    email = "invoice-race@example.com"
    await _subscribe(client, session, emulator, email, "pro", trial=False)
    (mirrored,) = await _invoices(session, email)
    stripe_invoice = await gateway.retrieve_invoice(mirrored.stripe_invoice_id)
    await session.commit()
    mirror = services.billing.mirror
    real = mirror.repo.invoice_by_stripe_id
    reads: list[str] = []

    async def first_read_misses(stripe_invoice_id: str) -> Invoice | None:
        reads.append(stripe_invoice_id)
        return None if len(reads) == 1 else await real(stripe_invoice_id)

    monkeypatch.setattr(mirror.repo, "invoice_by_stripe_id", first_read_misses)
    outcome = await mirror.apply_invoice(stripe_invoice)
    await session.commit()
    assert outcome.startswith("applied") and len(reads) >= 2
    assert [i.stripe_invoice_id for i in await _invoices(session, email)] == [
        mirrored.stripe_invoice_id
    ]
