"""The queries of billing details and tax IDs (app.billing.details)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.models import BillingDetails, CustomerTaxId


class BillingDetailsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def details(self, customer_id: int) -> BillingDetails | None:
        return await self.session.get(BillingDetails, customer_id)

    async def tax_ids(self, customer_id: int) -> list[CustomerTaxId]:
        """The customer's tax IDs, oldest first (as invoices list them)."""
        rows = await self.session.scalars(
            select(CustomerTaxId)
            .where(CustomerTaxId.customer_id == customer_id)
            .order_by(CustomerTaxId.created_at, CustomerTaxId.id)
        )
        return list(rows)

    async def tax_id(self, customer_id: int, tax_id: int) -> CustomerTaxId | None:
        """One of the customer's tax IDs (another customer's is None, as a missing one)."""
        return await self.session.scalar(
            select(CustomerTaxId).where(
                CustomerTaxId.id == tax_id, CustomerTaxId.customer_id == customer_id
            )
        )

    async def tax_id_by_stripe_id(self, stripe_tax_id: str) -> CustomerTaxId | None:
        return await self.session.scalar(
            select(CustomerTaxId).where(CustomerTaxId.stripe_tax_id == stripe_tax_id)
        )

    async def delete_tax_ids_except(self, customer_id: int, keep: set[str]) -> int:
        result = await self.session.execute(
            delete(CustomerTaxId).where(
                CustomerTaxId.customer_id == customer_id,
                CustomerTaxId.stripe_tax_id.not_in(keep),
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)
