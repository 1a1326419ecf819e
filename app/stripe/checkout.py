"""Checkout Sessions, and the account's settings (read only; the customer portal's too)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, cast

from app.stripe.client import (
    GatewayBase,
    LineItem,
    _list,
    _request,
)
from app.stripe.objects import (
    Account,
    CheckoutSession,
    PaymentMethodConfiguration,
    PortalConfiguration,
    WebhookEndpoint,
)

if TYPE_CHECKING:
    from stripe.params.checkout import (
        SessionCreateParams,
        SessionCreateParamsCustomerUpdate,
        SessionCreateParamsLineItem,
        SessionListParams,
    )


class CheckoutCalls(GatewayBase):
    # Checkout and the billing portal ----------------------------------------------------

    async def create_checkout_session(
        self,
        *,
        mode: Literal["subscription", "payment", "setup"],
        customer_id: str,
        client_reference_id: str,
        success_url: str,
        cancel_url: str,
        metadata: dict[str, str],
        key: str,
        line_items: list[LineItem] | None = None,
        trial_period_days: int | None = None,
        currency: str | None = None,
    ) -> CheckoutSession:
        params: SessionCreateParams = {
            "mode": mode,
            "customer": customer_id,
            "client_reference_id": client_reference_id,
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": metadata,
        }
        if line_items:
            params["line_items"] = []
            for item in line_items:
                line: SessionCreateParamsLineItem = {"price": item.price}
                if item.quantity is not None:
                    line["quantity"] = item.quantity
                params["line_items"].append(line)
        if mode == "subscription":
            # Flexible billing mode (the API's default now, asked for explicitly): a metered
            # price removed mid-cycle (a plan change) bills the usage reported so far, where
            # classic mode would drop it.
            params["subscription_data"] = {
                "metadata": metadata,
                "billing_mode": {"type": "flexible"},
            }
            if trial_period_days:
                params["subscription_data"]["trial_period_days"] = trial_period_days
        elif mode == "payment":
            params["payment_intent_data"] = {"metadata": metadata}
            params["invoice_creation"] = {"enabled": True, "invoice_data": {"metadata": metadata}}
        else:
            params["setup_intent_data"] = {"metadata": metadata}
            params["currency"] = currency or "usd"
        if mode != "setup":
            self._add_checkout_options(params)
        created = await _request(
            self.client.v1.checkout.sessions.create_async(params, {"idempotency_key": key})
        )
        return cast(CheckoutSession, created)

    def _add_checkout_options(self, params: SessionCreateParams) -> None:
        """What the settings turn on (each off by default, so nothing is sent): the billing
        address and a tax ID collected on the page and saved on the customer
        (`customer_update`, which Stripe requires for an existing customer), promotion
        codes, Stripe Tax."""
        options = self.checkout_options
        update: SessionCreateParamsCustomerUpdate = {}
        if options.collect_billing_address:
            params["billing_address_collection"] = options.collect_billing_address
            update["address"] = "auto"
        if options.collect_tax_id:
            params["tax_id_collection"] = {"enabled": True}
            update["name"] = "auto"
        if options.allow_promotion_codes:
            params["allow_promotion_codes"] = True
        if options.automatic_tax:
            params["automatic_tax"] = {"enabled": True}
            update["address"] = "auto"  # the address Checkout asks for tax, kept
        if update:
            params["customer_update"] = update

    async def retrieve_checkout_session(self, session_id: str) -> CheckoutSession:
        found = await _request(
            self.client.v1.checkout.sessions.retrieve_async(session_id, {"expand": ["line_items"]})
        )
        return cast(CheckoutSession, found)

    async def open_checkout_sessions(self, customer_id: str) -> list[CheckoutSession]:
        """The customer's Checkout Sessions that can still be paid."""
        params: SessionListParams = {"customer": customer_id, "status": "open", "limit": 100}
        found = await _list(self.client.v1.checkout.sessions.list_async(params))
        return cast(list[CheckoutSession], found)

    async def expire_checkout_session(self, session_id: str) -> CheckoutSession:
        """Close an open Checkout Session: its page no longer takes a payment."""
        expired = await _request(self.client.v1.checkout.sessions.expire_async(session_id))
        return cast(CheckoutSession, expired)

    # The account's settings (read only: `billing-portal stripe-check`) ----------------------

    async def retrieve_account(self) -> Account:
        """The account the key belongs to (`GET /v1/account`)."""
        return cast(Account, await _request(self.client.v1.accounts.retrieve_current_async()))

    async def list_portal_configurations(self) -> list[PortalConfiguration]:
        found = await _list(self.client.v1.billing_portal.configurations.list_async({"limit": 100}))
        return cast(list[PortalConfiguration], found)

    async def list_webhook_endpoints(self) -> list[WebhookEndpoint]:
        found = await _list(self.client.v1.webhook_endpoints.list_async({"limit": 100}))
        return cast(list[WebhookEndpoint], found)

    async def list_payment_method_configurations(self) -> list[PaymentMethodConfiguration]:
        found = await _list(self.client.v1.payment_method_configurations.list_async({"limit": 100}))
        return cast(list[PaymentMethodConfiguration], found)
