"""Invoices and the payments behind them (payment intents, charges, disputes), at Stripe."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from app.stripe.client import (
    GatewayBase,
    Json,
    _list,
    _request,
)
from app.stripe.objects import (
    Charge,
    CheckoutSession,
    Invoice,
    InvoiceLineItem,
    PaymentIntent,
    Price,
)

if TYPE_CHECKING:
    from stripe.params import (
        CreditNoteCreateParams,
        DisputeListParams,
        InvoiceLineItemListParams,
        InvoiceListParams,
        RefundCreateParams,
    )
    from stripe.params.checkout import (
        SessionListParams,
    )

# Stripe's reasons for a refund, and those a credit note has for the same (a credit note has
# no `requested_by_customer`: such a note carries no reason, the refund reason goes to its
# metadata).
REFUND_REASONS = ("requested_by_customer", "duplicate", "fraudulent")
CREDIT_NOTE_REASONS = {"duplicate": "duplicate", "fraudulent": "fraudulent"}


class InvoiceCalls(GatewayBase):
    # Invoices ---------------------------------------------------------------------------

    async def retrieve_invoice(self, invoice_id: str) -> Invoice:
        """The invoice with its `payments` (Stripe includes them only when asked)."""
        return cast(
            Invoice,
            await _request(
                self.client.v1.invoices.retrieve_async(invoice_id, {"expand": ["payments"]})
            ),
        )

    async def list_invoices(self, customer_id: str) -> list[Invoice]:
        params: InvoiceListParams = {
            "customer": customer_id,
            "limit": 100,
            "expand": ["data.payments"],
        }
        return cast(list[Invoice], await _list(self.client.v1.invoices.list_async(params)))

    async def invoice_lines(self, invoice_id: str) -> list[InvoiceLineItem]:
        """Every line of an invoice (the invoice itself carries the first ten)."""
        params: InvoiceLineItemListParams = {"limit": 100}
        found = await _list(self.client.v1.invoices.line_items.list_async(invoice_id, params))
        return cast(list[InvoiceLineItem], found)

    async def retrieve_price(self, price_id: str) -> Price:
        return cast(Price, await _request(self.client.v1.prices.retrieve_async(price_id)))

    # Payments ---------------------------------------------------------------------------

    async def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntent:
        """A PaymentIntent with its latest charge expanded (the card it was paid with)."""
        found = await _request(
            self.client.v1.payment_intents.retrieve_async(
                payment_intent_id, {"expand": ["latest_charge"]}
            )
        )
        return cast(PaymentIntent, found)

    async def retrieve_charge(self, charge_id: str) -> Charge:
        return cast(Charge, await _request(self.client.v1.charges.retrieve_async(charge_id)))

    async def charge_disputes(self, charge_id: str) -> list[Json]:
        """The disputes opened on a charge (their `status`, `amount`)."""
        params: DisputeListParams = {"charge": charge_id, "limit": 100}
        return await _list(self.client.v1.disputes.list_async(params))

    async def checkout_sessions_of_payment(self, payment_intent_id: str) -> list[CheckoutSession]:
        """The Checkout Session(s) whose payment is this PaymentIntent."""
        params: SessionListParams = {"payment_intent": payment_intent_id, "limit": 10}
        found = await _list(self.client.v1.checkout.sessions.list_async(params))
        return cast(list[CheckoutSession], found)

    # Refunds and credit notes ---------------------------------------------------------------

    async def create_credit_note(
        self,
        invoice_id: str,
        *,
        amount: int,
        refund_amount: int,
        reason: str,
        memo: str,
        metadata: dict[str, str],
        key: str,
    ) -> Json:
        """A credit note of `amount` on a paid invoice, `refund_amount` of it refunded to the
        invoice's payment (the rest to the customer's credit balance). `reason` is a refund
        reason (REFUND_REASONS): the note carries Stripe's matching credit note reason, when
        there is one, and the refund reason in its metadata."""
        params: CreditNoteCreateParams = {
            "invoice": invoice_id,
            "amount": amount,
            "refund_amount": refund_amount,
            "metadata": {**metadata, "refund_reason": reason},
        }
        if reason in CREDIT_NOTE_REASONS:
            params["reason"] = CREDIT_NOTE_REASONS[reason]
        if memo:
            params["memo"] = memo[:5000]
        return await _request(
            self.client.v1.credit_notes.create_async(params, {"idempotency_key": key})
        )

    async def create_refund(
        self,
        payment_intent_id: str,
        *,
        amount: int,
        reason: str,
        metadata: dict[str, str],
        key: str,
    ) -> Json:
        """Refund `amount` of a payment (one without an invoice: a credit pack's)."""
        params: RefundCreateParams = {
            "payment_intent": payment_intent_id,
            "amount": amount,
            "reason": reason,
            "metadata": metadata,
        }
        return await _request(self.client.v1.refunds.create_async(params, {"idempotency_key": key}))
