"""Giving a new Stripe customer the billing details our rows hold.

Our rows mirror the Stripe customer, and outlive it: when it is deleted at Stripe,
`BillingService.ensure_stripe_customer` makes a new one at the next action that needs it,
and that one must carry the name, address, invoice email and tax IDs the customer saved, or
its invoices go out without them. The customer is created with the name, address and email;
each tax ID is then added with a key made of the new Stripe customer's id and our row's id,
so a retry (the whole action again, before anything was committed) adds none twice.

A saved tax ID that Stripe refuses on the new customer (`400`: a format or type it no longer
accepts) is left out and its row removed, with a warning in the log: the customer stays
usable, the action goes on, and the details page shows the tax IDs the invoices will carry,
as it always does; the customer can add it again there and see Stripe's reason on the form.
Any other failure (Stripe not reached, 5xx) ends the action with nothing committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.details_mirror import ADDRESS_FIELDS, BillingDetailsMirror
from app.billing.details_repository import BillingDetailsRepository
from app.billing.models import CustomerTaxId
from app.customers.models import Customer
from app.stripe.gateway import StripeGateway, StripeGatewayError, idempotency_key
from app.stripe.objects import Address, TaxId

log = structlog.get_logger()

REFUSED = 400  # Stripe's answer to a parameter it does not accept (invalid_request_error)


@dataclass
class SavedDetails:
    """What a new Stripe customer is created with, from our rows (the account's name and
    email when nothing was saved)."""

    name: str | None
    email: str | None
    address: Address | None
    tax_ids: list[CustomerTaxId] = field(default_factory=list)
    # After `push_tax_ids`: each saved tax ID's row with Stripe's answer (None: refused).
    pushed: list[tuple[CustomerTaxId, TaxId | None]] = field(default_factory=list)

    @classmethod
    async def of(cls, session: AsyncSession, customer: Customer) -> SavedDetails:
        repo = BillingDetailsRepository(session)
        row = await repo.details(customer.id)
        tax_ids = await repo.tax_ids(customer.id)
        if row is None:
            return cls(customer.name, customer.email, None, tax_ids)
        address: Address | None = None
        if row.line1:
            address = cast(Address, {name: getattr(row, name) for name in ADDRESS_FIELDS})
        return cls(row.name, row.invoice_email or customer.email, address, tax_ids)

    async def push_tax_ids(self, gateway: StripeGateway, stripe_customer_id: str) -> None:
        """Add the saved tax IDs to the new Stripe customer, oldest first (as invoices list
        them); call before the write lock, then `mirror`."""
        self.pushed = []
        for row in self.tax_ids:
            try:
                created: TaxId | None = await gateway.create_tax_id(
                    stripe_customer_id,
                    tax_type=row.type,
                    value=row.value,
                    key=idempotency_key("restore-tax-id", stripe_customer_id, row.id),
                )
            except StripeGatewayError as exc:
                if exc.http_status != REFUSED:
                    raise
                log.warning(
                    "a saved tax ID was refused by the new Stripe customer; left out",
                    customer=stripe_customer_id,
                    tax_id_type=row.type,
                    stripe_code=exc.stripe_code,
                    error=exc.message,
                )
                created = None
            self.pushed.append((row, created))

    async def mirror(self, session: AsyncSession) -> None:
        """Our tax ID rows point at the new Stripe tax IDs (same rows: the page's links stay
        valid); a refused one is removed."""
        for row, created in self.pushed:
            if created is None:
                await session.delete(row)
            else:
                BillingDetailsMirror.fill_tax_id(row, created)
