"""Payments the portal makes itself, without the customer present (auto top-up)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from app.stripe.client import GatewayBase, _request
from app.stripe.objects import PaymentIntent

if TYPE_CHECKING:
    from stripe.params import PaymentIntentCreateParams


class PaymentCalls(GatewayBase):
    async def charge_off_session(
        self,
        customer_id: str,
        *,
        amount: int,
        currency: str,
        description: str,
        metadata: dict[str, str],
        key: str,
        payment_method_id: str | None = None,
    ) -> PaymentIntent:
        """Charge the customer's default payment method (or `payment_method_id`) now, with
        nobody present: a PaymentIntent confirmed off-session. A decline, or a bank that asks
        for authentication (`stripe_code == "authentication_required"`), raises
        `StripeCardError`; `key` makes a retry return the first outcome."""
        params: PaymentIntentCreateParams = {
            "amount": amount,
            "currency": currency,
            "customer": customer_id,
            "confirm": True,
            "off_session": True,
            "description": description,
            "metadata": metadata,
        }
        if payment_method_id:
            params["payment_method"] = payment_method_id
        return cast(
            PaymentIntent,
            await _request(
                self.client.v1.payment_intents.create_async(params, {"idempotency_key": key})
            ),
        )
