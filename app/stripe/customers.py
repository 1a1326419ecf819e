"""Customers and their saved payment methods, at Stripe."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from app.stripe.client import (
    GatewayBase,
    _list,
    _request,
)
from app.stripe.objects import (
    Address,
    Customer,
    PaymentMethod,
)

if TYPE_CHECKING:
    from stripe.params import (
        CustomerCreateParams,
        CustomerUpdateParams,
        PaymentMethodListParams,
    )
    from stripe.params._customer_create_params import CustomerCreateParamsAddress


class CustomerCalls(GatewayBase):
    # Customers --------------------------------------------------------------------------

    async def create_customer(
        self,
        *,
        email: str | None,
        name: str | None,
        metadata: dict[str, str],
        key: str,
        address: Address | None = None,
    ) -> Customer:
        """A new customer; `address` (its lines that are set) as the billing details have it."""
        params: CustomerCreateParams = {"metadata": metadata}
        if email:
            params["email"] = email
        if name:
            params["name"] = name
        if address:
            lines = {field: value for field, value in address.items() if value}
            params["address"] = cast("CustomerCreateParamsAddress", lines)
        return cast(
            Customer,
            await _request(self.client.v1.customers.create_async(params, {"idempotency_key": key})),
        )

    async def retrieve_customer(self, customer_id: str) -> Customer:
        return cast(Customer, await _request(self.client.v1.customers.retrieve_async(customer_id)))

    async def set_default_payment_method(
        self, customer_id: str, payment_method_id: str, *, key: str
    ) -> Customer:
        params: CustomerUpdateParams = {
            "invoice_settings": {"default_payment_method": payment_method_id}
        }
        return cast(
            Customer,
            await _request(
                self.client.v1.customers.update_async(customer_id, params, {"idempotency_key": key})
            ),
        )

    async def update_customer_email(self, customer_id: str, email: str, *, key: str) -> Customer:
        """The Stripe customer's email (where Stripe sends receipts and invoices)."""
        params: CustomerUpdateParams = {"email": email}
        return cast(
            Customer,
            await _request(
                self.client.v1.customers.update_async(customer_id, params, {"idempotency_key": key})
            ),
        )

    # Payment methods --------------------------------------------------------------------

    async def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]:
        """The customer's saved payment methods of every type (cards, SEPA Direct Debit, US
        bank accounts, Link...): without `type`, Stripe lists them all."""
        params: PaymentMethodListParams = {"customer": customer_id, "limit": 100}
        return cast(
            list[PaymentMethod], await _list(self.client.v1.payment_methods.list_async(params))
        )

    async def retrieve_payment_method(self, payment_method_id: str) -> PaymentMethod:
        return cast(
            PaymentMethod,
            await _request(self.client.v1.payment_methods.retrieve_async(payment_method_id)),
        )

    async def detach_payment_method(self, payment_method_id: str, *, key: str) -> PaymentMethod:
        return cast(
            PaymentMethod,
            await _request(
                self.client.v1.payment_methods.detach_async(
                    payment_method_id, None, {"idempotency_key": key}
                )
            ),
        )
