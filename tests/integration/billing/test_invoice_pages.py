"""The invoice pages: descriptions and cents in the list, one invoice's own page (scoped to its
customer), and the customer's Stripe credit balance."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.customers.models import Customer
from tests.integration.billing.conftest import Member, add_invoice

LINES = [
    {
        "description": "Unused time on Business",
        "label": "Business · monthly",
        "amount": -14900,
        "quantity": 1,
        "period_start": 1_764_806_400,
        "period_end": 1_767_484_800,
        "proration": True,
    },
    {
        "description": "Remaining time on Pro",
        "label": "Pro · monthly",
        "amount": 2900,
        "quantity": 1,
        "period_start": 1_764_806_400,
        "period_end": 1_767_484_800,
        "proration": True,
    },
]


async def test_invoice_page_shows_lines_sums_and_links(
    member: Member, session: AsyncSession
) -> None:
    inv = await add_invoice(
        session,
        member.customer_id,
        1,
        description="Proration for plan change",
        billing_reason="subscription_update",
        total=-12000,
        subtotal=-12000,
        amount_due=0,
        amount_paid=0,
        starting_balance=0,
        ending_balance=-12000,
        lines=LINES,
    )
    listed = (await member.client.get("/billing/invoices")).text
    assert "Proration for plan change" in listed and "$120.00 credit" in listed
    assert "-$120" not in listed
    response = await member.client.get(f"/billing/invoices/{inv.stripe_invoice_id}")
    assert response.status_code == 200
    html = response.text
    assert 'data-testid="invoice-title">Proration for plan change<' in html
    assert "Credit to balance" in html and "Unused time on Business" in html
    assert html.count('data-testid="proration-badge"') == 2
    assert "-$149.00" in html and "$29.00" in html
    assert "Added to your credit balance" in html and "$120.00" in html
    assert f'href="{inv.hosted_invoice_url}"' in html and f'href="{inv.invoice_pdf}"' in html


async def test_another_customers_invoice_is_not_found(
    member: Member, other_member: Member, session: AsyncSession
) -> None:
    theirs = await add_invoice(session, other_member.customer_id, 1)
    draft = await add_invoice(session, member.customer_id, 2, status="draft")
    for invoice_id in (theirs.stripe_invoice_id, draft.stripe_invoice_id, "in_nope"):
        response = await member.client.get(f"/billing/invoices/{invoice_id}")
        assert response.status_code == 404
        assert theirs.number not in response.text
    own = await other_member.client.get(f"/billing/invoices/{theirs.stripe_invoice_id}")
    assert own.status_code == 200 and theirs.number in own.text


async def test_credit_balance_on_dashboard_and_invoices(
    member: Member, session: AsyncSession
) -> None:
    for path in ("/billing", "/billing/invoices"):
        assert 'data-testid="credit-balance"' not in (await member.client.get(path)).text
    await session.execute(
        update(Customer)
        .where(Customer.id == member.customer_id)
        .values(stripe_balance=-12000, stripe_balance_currency="usd")
    )
    await session.commit()
    for path in ("/billing", "/billing/invoices"):
        html = (await member.client.get(path)).text
        assert "$120.00 credit, applied to your next invoices" in html, path
