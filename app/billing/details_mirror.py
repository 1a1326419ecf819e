"""Our billing details rows (`BillingDetails`, `CustomerTaxId`) made to match the Stripe
customer's name, address, email and tax IDs (app.billing.details describes them).

Apart from app.billing.details (which imports `BillingService`), so that the Stripe mirror's
reconcile (app.billing.mirror) and the webhook handlers can use it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.details_repository import BillingDetailsRepository
from app.billing.models import BillingDetails, CustomerTaxId
from app.customers.models import Customer
from app.db.engine import write_from_here
from app.stripe.gateway import StripeGateway, StripeNotFound
from app.stripe.objects import Address, TaxId
from app.stripe.objects import Customer as StripeCustomer

ADDRESS_FIELDS = ("line1", "line2", "city", "postal_code", "state", "country")


def details_snapshot(
    customer: Customer, row: BillingDetails | None, tax_ids: list[CustomerTaxId]
) -> dict[str, Any]:
    """What the details page shows, to compare before and after a reconcile. No row yet
    counts as what a Stripe customer made without saved details has: the account's name."""
    fields = ("name", *ADDRESS_FIELDS, "invoice_email")
    snapshot: dict[str, Any] = {name: getattr(row, name) if row else None for name in fields}
    if row is None:
        snapshot["name"] = customer.name or None
    snapshot["tax_ids"] = sorted(
        f"{t.type} {t.value} ({t.stripe_tax_id}, {t.verification})" for t in tax_ids
    )
    return snapshot


class BillingDetailsMirror:
    """Make our rows match the Stripe customer's details and tax IDs (flushes only: the
    caller commits)."""

    def __init__(self, session: AsyncSession, gateway: StripeGateway) -> None:
        self.session = session
        self.gateway = gateway
        self.repo = BillingDetailsRepository(session)

    async def sync(self, customer: Customer) -> str:
        """Read the customer and its tax IDs from Stripe and mirror both."""
        if not customer.stripe_customer_id:
            return "ignored: no Stripe customer"
        try:
            remote = await self.gateway.retrieve_customer(customer.stripe_customer_id)
            tax_ids = [] if remote.get("deleted") else await self.gateway.list_tax_ids(remote["id"])
        except StripeNotFound:
            return "ignored: the Stripe customer is gone"
        await write_from_here(self.session)  # after the Stripe calls
        return await self.apply(customer, remote, tax_ids)

    async def apply(self, customer: Customer, remote: StripeCustomer, tax_ids: list[TaxId]) -> str:
        """Mirror a Stripe customer and its tax IDs as read (after the write lock is taken)."""
        if remote.get("deleted"):
            return "ignored: the Stripe customer was deleted"
        self.apply_customer(customer, remote, await self.repo.details(customer.id))
        await self.apply_tax_ids(customer, tax_ids)
        await self.session.flush()
        return f"billing details of {remote['id']}: {len(tax_ids)} tax ID(s)"

    def apply_customer(
        self, customer: Customer, remote: StripeCustomer, row: BillingDetails | None
    ) -> BillingDetails:
        if row is None:
            row = BillingDetails(customer_id=customer.id)
            self.session.add(row)
        address: Address = remote.get("address") or {}
        row.name = remote.get("name") or None
        for name in ADDRESS_FIELDS:
            setattr(row, name, address.get(name) or None)
        email = remote.get("email") or None
        # The account's own email is where invoices go anyway: only another one is kept.
        row.invoice_email = email if email and email != customer.email else None
        return row

    async def apply_tax_ids(self, customer: Customer, remote: list[TaxId]) -> None:
        live = [t for t in remote if not t.get("deleted")]
        await self.repo.delete_tax_ids_except(customer.id, {t["id"] for t in live})
        for tax_id in live:
            await self.apply_tax_id(customer, tax_id)

    async def apply_tax_id(self, customer: Customer, tax_id: TaxId) -> CustomerTaxId:
        row = await self.repo.tax_id_by_stripe_id(tax_id["id"])
        if row is None:
            row = CustomerTaxId(customer_id=customer.id, stripe_tax_id=tax_id["id"])
            self.session.add(row)
        self.fill_tax_id(row, tax_id)
        return row

    @staticmethod
    def fill_tax_id(row: CustomerTaxId, tax_id: TaxId) -> None:
        row.stripe_tax_id = tax_id["id"]
        row.type = str(tax_id.get("type") or "unknown")
        row.value = str(tax_id.get("value") or "")
        country = tax_id.get("country")
        row.country = str(country)[:2] if country else None
        verification = tax_id.get("verification") or {}
        row.verification = verification.get("status")
