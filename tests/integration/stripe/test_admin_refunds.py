"""Refunds from the admin pages (issue 20, item 8), against the emulator: an invoice in full
or in part (a credit note with a refund), a credit pack's payment (a refund; its unused
credits revoked by the webhook's rule), reviewed before money moves, once however often the
form is sent, audited with the reason, and shown on the customer's invoice page."""

from __future__ import annotations

import asyncio
import re

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import AuditLog
from app.billing.models import Invoice
from tests.conftest import sibling_client
from tests.factories import log_in_new_admin
from tests.integration.stripe.conftest import (
    Emulator,
    Services,
    customer_of,
    subscribe,
)
from tests.integration.stripe.test_account_events import sdk, twice_out_of_order
from tests.integration.stripe.test_payment_events import _about, _buy_pack, _credits, _ledger

_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
PAID = frozenset({"checkout.session.completed", "invoice.paid"})


async def _admin(client: AsyncTestClient[Litestar]) -> AsyncTestClient[Litestar]:
    admin = sibling_client(client)
    await log_in_new_admin(admin)
    return admin


async def _paid_invoice(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator, email: str
) -> Invoice:
    """A customer paying Business ($149.00) at once: its paid invoice, mirrored."""
    await subscribe(client, session, emulator, email, "business", trial=False, events=PAID)
    customer, _ = await customer_of(session, email)
    invoice = await session.scalar(select(Invoice).where(Invoice.customer_id == customer.id))
    assert invoice is not None and (invoice.status, invoice.amount_paid) == ("paid", 14900)
    return invoice


async def _review(
    admin: AsyncTestClient[Litestar], view: str, amount: str, reason: str
) -> httpx.Response:
    """The refund form sent to its review (the one-time id added by a redirect)."""
    return await admin.get(
        f"{view}/refund", params={"amount": amount, "refund_reason": reason}, follow_redirects=True
    )


def _confirm_form(page: httpx.Response, note: str) -> tuple[str, dict[str, str]]:
    html = page.text.split('data-testid="confirm-summary"', 1)[1]
    action = re.search(r'<form method="post" action="([^"]+)"', html)
    assert action, page.text
    form = dict(_HIDDEN.findall(html))
    form["reason"] = note
    match = _CSRF.search(page.text)
    assert match
    form["_csrf_token"] = match.group(1)
    return action.group(1), form


async def _audit(session: AsyncSession, action: str) -> list[AuditLog]:
    await session.commit()
    query = select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)
    return list(await session.scalars(query.execution_options(populate_existing=True)))


async def _invoice_row(session: AsyncSession, invoice_id: int) -> Invoice:
    await session.commit()
    session.expire_all()
    row = await session.get(Invoice, invoice_id)
    assert row is not None
    return row


async def test_partial_then_full_refund_of_an_invoice_as_credit_notes(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator
) -> None:
    invoice = await _paid_invoice(client, session, emulator, "refund-invoice@example.com")
    admin = await _admin(client)
    view = f"/admin/billing/invoices/{invoice.stripe_invoice_id}"
    page = await admin.get(view)
    assert page.status_code == 200
    assert 'data-testid="payment-refundable">$149.00<' in page.text

    # The review shows the amount, the card and how; nothing has moved yet.
    review = await _review(admin, view, "40.50", "requested_by_customer")
    assert review.status_code == 200, review.text
    assert "Refund $40.50 of Invoice" in review.text and "($149.00 paid)" in review.text
    assert "Visa ending in 4242" in review.text
    assert "credit note" in review.text
    assert (await _invoice_row(session, invoice.id)).amount_refunded == 0

    action, form = _confirm_form(review, "Customer asked: did not use the seats")
    done = await admin.post(action, data=form, follow_redirects=False)
    assert done.status_code == 303, done.text
    row = await _invoice_row(session, invoice.id)
    assert (row.amount_refunded, row.amount_credited) == (4050, 4050)
    stripe_invoice = sdk(emulator).v1.invoices.retrieve(invoice.stripe_invoice_id)
    assert stripe_invoice.post_payment_credit_notes_amount == 4050
    notes = sdk(emulator).v1.credit_notes.list(params={"invoice": invoice.stripe_invoice_id})
    (note,) = notes.data
    assert (note.amount, note.memo) == (4050, "Customer asked: did not use the seats")
    assert note.metadata["refund_reason"] == "requested_by_customer"
    assert note.refunds[0].amount_refunded == 4050

    [entry] = await _audit(session, "invoice.refund")
    assert entry.reason == "Customer asked: did not use the seats"
    assert entry.details["amount"] == 4050 and entry.details["credit_note"] == note.id
    assert entry.details["refund_reason"] == "requested_by_customer"

    # The rest: the form offers what is left, and a second credit note refunds it.
    page = await admin.get(view)
    assert 'data-testid="payment-refundable">$108.50<' in page.text
    review = await _review(admin, view, "108.50", "duplicate")
    assert "(all of it)" not in review.text  # part of what was paid
    action, form = _confirm_form(review, "Charged twice")
    assert (await admin.post(action, data=form, follow_redirects=False)).status_code == 303
    row = await _invoice_row(session, invoice.id)
    assert (row.amount_refunded, row.amount_credited) == (14900, 14900)
    notes = sdk(emulator).v1.credit_notes.list(params={"invoice": invoice.stripe_invoice_id})
    assert sorted(n.reason or "" for n in notes.data) == ["", "duplicate"]
    page = await admin.get(view)
    assert 'data-testid="refund-unavailable"' in page.text

    # The customer's invoice page shows the refund and the credit notes.
    mine = await client.get(f"/billing/invoices/{invoice.stripe_invoice_id}")
    assert mine.status_code == 200
    assert "Refunded" in mine.text
    assert "Refunded to your payment method" in mine.text and "-$149.00" in mine.text
    assert "Credited by credit notes" in mine.text
    listed = await client.get("/billing/invoices")
    assert "Refunded" in listed.text


async def test_an_over_refund_is_refused_with_the_limit(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator
) -> None:
    invoice = await _paid_invoice(client, session, emulator, "over-refund@example.com")
    admin = await _admin(client)
    view = f"/admin/billing/invoices/{invoice.stripe_invoice_id}"
    for amount, message in (
        ("150.00", "At most $149.00 can be refunded"),
        ("0", "The amount must be more than zero."),
        ("-5", "The amount must be a positive number in USD"),
        ("1.234", "The amount must be a positive number in USD"),
    ):
        review = await _review(admin, view, amount, "requested_by_customer")
        assert review.status_code == 422, amount
        assert message in review.text, (amount, review.text)
        assert 'data-testid="confirm-summary"' not in review.text  # no review of it

    # A form altered after its review is refused at the action too; nothing moved.
    review = await _review(admin, view, "10.00", "requested_by_customer")
    action, form = _confirm_form(review, "testing the limit")
    form["amount"] = "149.01"
    refused = await admin.post(action, data=form)
    assert refused.status_code == 422
    assert "At most $149.00 can be refunded" in refused.text
    form["amount"], form["refund_reason"] = "10.00", "because"
    assert (await admin.post(action, data=form)).status_code == 422
    assert (await _invoice_row(session, invoice.id)).amount_refunded == 0
    assert (
        not sdk(emulator).v1.credit_notes.list(params={"invoice": invoice.stripe_invoice_id}).data
    )
    assert await _audit(session, "invoice.refund") == []


async def test_a_double_submit_refunds_once(
    client: AsyncTestClient[Litestar], session: AsyncSession, emulator: Emulator
) -> None:
    invoice = await _paid_invoice(client, session, emulator, "double-refund@example.com")
    admin = await _admin(client)
    view = f"/admin/billing/invoices/{invoice.stripe_invoice_id}"
    review = await _review(admin, view, "20.00", "requested_by_customer")
    action, form = _confirm_form(review, "refund once")
    # Twice at once, then once more after (Back and submit again).
    first, second = await asyncio.gather(
        admin.post(action, data=form), admin.post(action, data=form)
    )
    again = await admin.post(action, data=form, follow_redirects=True)
    assert {first.status_code, second.status_code} <= {200, 303}
    assert "This refund was already made." in again.text
    row = await _invoice_row(session, invoice.id)
    assert (row.amount_refunded, row.amount_credited) == (2000, 2000)
    notes = sdk(emulator).v1.credit_notes.list(params={"invoice": invoice.stripe_invoice_id})
    assert len(notes.data) == 1
    refunds = sdk(emulator).v1.refunds.list(
        params={"payment_intent": str(invoice.stripe_payment_intent_id)}
    )
    assert [r.amount for r in refunds.data] == [2000]
    assert len(await _audit(session, "invoice.refund")) == 1


async def test_refunding_a_pack_revokes_its_unused_credits(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    services: Services,
) -> None:
    """Half the pack's $10.00 back: half its 100 credits revoked, by the rule the webhook
    applies (its later delivery, twice and out of order, changes nothing)."""
    email = "admin-refund-pack@example.com"
    customer, session_id, pi, mark = await _buy_pack(client, session, emulator, email)
    cus = str(customer.stripe_customer_id)
    await twice_out_of_order(
        client, _about(emulator, [cus, pi], {"checkout.session.completed"}, mark)
    )
    assert await _credits(services, session, email) == 100

    admin = await _admin(client)
    ledger = await admin.get(f"/admin/billing/customers/{customer.external_id}")
    assert f'href="/admin/billing/payments/{session_id}"' in ledger.text
    view = f"/admin/billing/payments/{session_id}"
    page = await admin.get(view)
    assert page.status_code == 200 and 'data-testid="payment-refundable">$10.00<' in page.text
    review = await _review(admin, view, "5", "fraudulent")
    assert "Refund $5.00 of Credit pack" in review.text and "revoked" in review.text
    action, form = _confirm_form(review, "Stolen card reported")
    done = await admin.post(action, data=form, follow_redirects=True)
    assert "Refunded $5.00 of Credit pack" in done.text

    assert await _credits(services, session, email) == 50
    assert await _ledger(session, email) == [("grant", 100), ("refund", -50)]
    refund = sdk(emulator).v1.refunds.list(params={"payment_intent": pi}).data[0]
    assert (refund.amount, refund.reason) == (500, "fraudulent")
    [entry] = await _audit(session, "payment.refund")
    assert entry.reason == "Stolen card reported" and entry.details["refunds"] == [refund.id]

    await twice_out_of_order(client, _about(emulator, [cus, pi], {"charge.refunded"}, mark))
    assert await _credits(services, session, email) == 50
    assert await _ledger(session, email) == [("grant", 100), ("refund", -50)]


async def test_the_emulator_checks_refund_and_credit_note_reasons(emulator: Emulator) -> None:
    """Stripe's enums: a refund's reason and a credit note's differ (no
    requested_by_customer on a credit note)."""
    import stripe

    client = sdk(emulator)
    try:
        client.v1.refunds.create(params={"payment_intent": "pi_x", "reason": "order_change"})
    except stripe.InvalidRequestError as exc:
        assert exc.param == "reason" and "requested_by_customer" in str(exc)
    else:
        raise AssertionError("an unknown refund reason was accepted")
    try:
        client.v1.credit_notes.create(
            params={"invoice": "in_x", "amount": 1, "reason": "requested_by_customer"}
        )
    except stripe.InvalidRequestError as exc:
        assert exc.param == "reason" and "product_unsatisfactory" in str(exc)
    else:
        raise AssertionError("an unknown credit note reason was accepted")


async def test_refunding_a_packs_invoice_revokes_its_credits_too(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    services: Services,
) -> None:
    """A pack bought through Checkout has an invoice (invoice_creation): refunding a quarter of
    it as a credit note revokes a quarter of the pack's credits, by the same rule."""
    email = "admin-refund-pack-invoice@example.com"
    customer, _, pi, mark = await _buy_pack(client, session, emulator, email)
    cus = str(customer.stripe_customer_id)
    await twice_out_of_order(
        client, _about(emulator, [cus, pi], {"checkout.session.completed", "invoice.paid"}, mark)
    )
    assert await _credits(services, session, email) == 100
    await session.commit()
    invoice = await session.scalar(select(Invoice).where(Invoice.customer_id == customer.id))
    assert invoice is not None and invoice.amount_paid == 1000
    invoice_id, stripe_invoice_id = invoice.id, invoice.stripe_invoice_id

    admin = await _admin(client)
    view = f"/admin/billing/invoices/{stripe_invoice_id}"
    review = await _review(admin, view, "2.50", "requested_by_customer")
    assert "Refund $2.50 of Invoice" in review.text
    action, form = _confirm_form(review, "Quarter back, goodwill")
    assert (await admin.post(action, data=form, follow_redirects=False)).status_code == 303

    assert await _credits(services, session, email) == 75
    assert await _ledger(session, email) == [("grant", 100), ("refund", -25)]
    row = await _invoice_row(session, invoice_id)
    assert (row.amount_refunded, row.amount_credited) == (250, 250)
