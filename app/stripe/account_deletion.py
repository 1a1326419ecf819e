"""What deleting a portal account asks of Stripe: end the subscription now, and remove the
person's details from the Stripe customer (which stays, with its invoices, for bookkeeping)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from app.stripe.client import GatewayBase, _request
from app.stripe.objects import Customer, Subscription

if TYPE_CHECKING:
    from stripe.params import CustomerUpdateParams


class AccountDeletionCalls(GatewayBase):
    async def cancel_subscription_now(self, subscription_id: str, *, key: str) -> Subscription:
        """End the subscription at once (no proration refund, no final invoice: Stripe's
        defaults for `DELETE /v1/subscriptions/{id}`)."""
        return cast(
            Subscription,
            await _request(
                self.client.v1.subscriptions.cancel_async(
                    subscription_id, None, {"idempotency_key": key}
                )
            ),
        )

    async def erase_customer_details(self, customer_id: str, *, key: str) -> Customer:
        """Unset the customer's name, email, phone, description and address ("" unsets a
        field at Stripe) and mark it in its metadata; its invoices and payments stay."""
        params: CustomerUpdateParams = {
            "name": "",
            "email": "",
            "phone": "",
            "description": "",
            "address": "",
            "metadata": {"account_deleted": "true"},
        }
        return cast(
            Customer,
            await _request(
                self.client.v1.customers.update_async(customer_id, params, {"idempotency_key": key})
            ),
        )
