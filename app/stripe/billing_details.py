"""A customer's billing details at Stripe: name, address, email (where Stripe sends
invoices), and tax IDs (the customer's `tax_ids` sub-resource, validated by Stripe)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from app.stripe.client import GatewayBase, _list, _request
from app.stripe.objects import Address, Customer, TaxId

if TYPE_CHECKING:
    from stripe.params import CustomerTaxIdCreateParams, CustomerUpdateParams
    from stripe.params._customer_update_params import CustomerUpdateParamsAddress

ADDRESS_FIELDS = ("line1", "line2", "city", "postal_code", "state", "country")


class BillingDetailsCalls(GatewayBase):
    async def update_billing_details(
        self,
        customer_id: str,
        *,
        name: str | None,
        address: Address | None,
        email: str | None,
        key: str,
    ) -> Customer:
        """Set the customer's name, address and email; None unsets a field (each address
        line too: Stripe takes "" as unset)."""
        params: CustomerUpdateParams = {"name": name or "", "email": email or "", "address": ""}
        if address:
            fields: CustomerUpdateParamsAddress = {}
            for field in ADDRESS_FIELDS:
                fields[field] = address.get(field) or ""  # type: ignore[literal-required]
            params["address"] = fields
        return cast(
            Customer,
            await _request(
                self.client.v1.customers.update_async(customer_id, params, {"idempotency_key": key})
            ),
        )

    async def list_tax_ids(self, customer_id: str) -> list[TaxId]:
        found = await _list(
            self.client.v1.customers.tax_ids.list_async(customer_id, {"limit": 100})
        )
        return cast(list[TaxId], found)

    async def create_tax_id(
        self, customer_id: str, *, tax_type: str, value: str, key: str
    ) -> TaxId:
        params = cast("CustomerTaxIdCreateParams", {"type": tax_type, "value": value})
        created = await _request(
            self.client.v1.customers.tax_ids.create_async(
                customer_id, params, {"idempotency_key": key}
            )
        )
        return cast(TaxId, created)

    async def delete_tax_id(self, customer_id: str, tax_id: str) -> TaxId:
        deleted = await _request(self.client.v1.customers.tax_ids.delete_async(customer_id, tax_id))
        return cast(TaxId, deleted)
