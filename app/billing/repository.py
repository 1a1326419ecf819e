"""All SQL of billing: invoices, cards, credit grants of a Checkout, daily usage."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.models import Invoice, PaymentMethod
from app.customers.models import Customer
from app.lib.clock import as_utc
from app.metering.models import CreditGrant, UsageDay


class BillingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Invoices and cards (written by the Stripe webhooks, read here) -------------------

    async def invoices(
        self, customer_id: int, *, offset: int = 0, limit: int = 20
    ) -> list[Invoice]:
        query = (
            select(Invoice)
            .where(Invoice.customer_id == customer_id, Invoice.status != "draft")
            .order_by(Invoice.created_at.desc(), Invoice.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return list(await self.session.scalars(query))

    async def latest_invoices(self, customer_id: int, limit: int) -> tuple[list[Invoice], int]:
        """The newest `limit` listed invoices and how many are listed, in one statement (the
        count rides on each row; no row means none is listed)."""
        query = (
            select(Invoice, func.count().over())
            .where(Invoice.customer_id == customer_id, Invoice.status != "draft")
            .order_by(Invoice.created_at.desc(), Invoice.id.desc())
            .limit(limit)
        )
        rows = (await self.session.execute(query)).all()
        return [row[0] for row in rows], int(rows[0][1]) if rows else 0

    async def count_listed_invoices(self, customer_id: int) -> int:
        query = (
            select(func.count())
            .select_from(Invoice)
            .where(Invoice.customer_id == customer_id, Invoice.status != "draft")
        )
        return int(await self.session.scalar(query) or 0)

    async def awaiting_action(self, customer_id: int) -> list[Invoice]:
        """Open invoices whose payment waits for the customer's bank (3-D Secure)."""
        query = (
            select(Invoice)
            .where(
                Invoice.customer_id == customer_id,
                Invoice.status == "open",
                Invoice.action_required_at.is_not(None),
            )
            .order_by(Invoice.created_at, Invoice.id)
        )
        return list(await self.session.scalars(query))

    async def payment_methods(self, customer_id: int) -> list[PaymentMethod]:
        query = (
            select(PaymentMethod)
            .where(PaymentMethod.customer_id == customer_id)
            .order_by(
                PaymentMethod.is_default.desc(),
                PaymentMethod.created_at.desc(),
                PaymentMethod.id.desc(),
            )
        )
        return list(await self.session.scalars(query))

    async def card(self, customer_id: int, stripe_payment_method_id: str) -> PaymentMethod | None:
        return await self.session.scalar(
            select(PaymentMethod).where(
                PaymentMethod.customer_id == customer_id,
                PaymentMethod.stripe_payment_method_id == stripe_payment_method_id,
            )
        )

    async def count_cards(self, customer_id: int) -> int:
        query = (
            select(func.count())
            .select_from(PaymentMethod)
            .where(PaymentMethod.customer_id == customer_id)
        )
        return int(await self.session.scalar(query) or 0)

    async def delete_card_everywhere(self, stripe_payment_method_id: str) -> None:
        """Remove a card from whichever customer has it (a card moves only by detaching)."""
        await self.session.execute(
            delete(PaymentMethod).where(
                PaymentMethod.stripe_payment_method_id == stripe_payment_method_id
            )
        )

    async def invoice_by_stripe_id(self, stripe_invoice_id: str) -> Invoice | None:
        return await self.session.scalar(
            select(Invoice).where(Invoice.stripe_invoice_id == stripe_invoice_id)
        )

    async def invoice_by_payment_intent(self, payment_intent_id: str) -> Invoice | None:
        return await self.session.scalar(
            select(Invoice)
            .where(Invoice.stripe_payment_intent_id == payment_intent_id)
            .order_by(Invoice.id)
            .limit(1)
        )

    async def customer_invoice(self, customer_id: int, stripe_invoice_id: str) -> Invoice | None:
        """One of the customer's own listed invoices (None for anyone else's, or a draft)."""
        return await self.session.scalar(
            select(Invoice).where(
                Invoice.customer_id == customer_id,
                Invoice.stripe_invoice_id == stripe_invoice_id,
                Invoice.status != "draft",
            )
        )

    async def all_invoices(self, customer_id: int) -> list[Invoice]:
        """Every invoice of the customer, drafts included (for reconcile)."""
        return list(
            await self.session.scalars(select(Invoice).where(Invoice.customer_id == customer_id))
        )

    async def credits_granted(self, customer_id: int, transaction_id: str) -> bool:
        """Whether a credit grant with this transaction id (a Checkout Session's) exists."""
        grant = await self.session.scalar(
            select(CreditGrant.id).where(
                CreditGrant.customer_id == customer_id,
                CreditGrant.transaction_id == transaction_id,
            )
        )
        return grant is not None

    async def stripe_customer_of_card(self, stripe_payment_method_id: str) -> str | None:
        """The Stripe customer id of whoever has this card in our mirror."""
        query = (
            select(Customer.stripe_customer_id)
            .join(PaymentMethod, PaymentMethod.customer_id == Customer.id)
            .where(PaymentMethod.stripe_payment_method_id == stripe_payment_method_id)
        )
        return await self.session.scalar(query)

    # Usage over time -----------------------------------------------------------------

    async def daily_usage(
        self, customer_id: int, start: datetime, end: datetime
    ) -> dict[tuple[str, date], int]:
        """Usage per (meter, UTC day) of one customer in [start, end), from the daily roll-ups
        (a few rows per day, however many events)."""
        query = select(UsageDay.meter_code, UsageDay.starts_at, UsageDay.amount).where(
            UsageDay.customer_id == customer_id,
            UsageDay.starts_at >= start,
            UsageDay.starts_at < end,
        )
        totals: dict[tuple[str, date], int] = {}
        for code, starts_at, amount in (await self.session.execute(query)).all():
            key = (code, as_utc(starts_at).date())
            totals[key] = totals.get(key, 0) + int(amount)
        return totals
