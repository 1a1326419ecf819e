"""`POST /v1/payment_intents`: a payment made by the server, confirmed at once, typically
off-session on the customer's saved card (what the portal's auto top-up does).

With `confirm=true` the card is charged now: success is `succeeded`; a decline, or a card
whose bank asks for authentication, is Stripe's `402 card_error` (with the PaymentIntent in
the error, as Stripe sends it). Off-session, an authentication request fails the payment
(`authentication_required`, the intent back to `requires_payment_method`): nobody is there to
authenticate. Without `confirm` the intent waits (`requires_confirmation`).
"""

from __future__ import annotations

from typing import Any

from app.stripe_emulator import authentication, objects, payments
from app.stripe_emulator.core import Emulator, bool_param, int_param, render, require
from app.stripe_emulator.errors import StripeError
from app.stripe_emulator.routing import ApiRequest, route


@route("POST", "/v1/payment_intents")
def create_payment_intent(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    amount = int_param(p, "amount")
    if amount is None or amount < 1:
        raise StripeError(400, "Amount must be at least 1.", param="amount")
    currency = str(require(p, "currency")).lower()
    customer = payments.require_customer(emu, p["customer"]) if p.get("customer") else None
    now = emu.now_for(customer) if customer else emu.now()
    pm_id = p.get("payment_method") or None
    if customer is not None:
        pm_id = pm_id or payments.default_payment_method(emu, customer)
        if pm_id:
            pm_id = payments.owned_by(emu, pm_id, customer["id"], now, "payment_method")["id"]
    metadata = p.get("metadata") if isinstance(p.get("metadata"), dict) else {}
    description = p.get("description") or None
    if not bool_param(p, "confirm", False):
        pi = objects.payment_intent(
            now,
            amount,
            currency,
            customer=customer["id"] if customer else None,
            description=description,
            metadata=metadata,
            payment_method=pm_id,
        )
        pi["status"] = "requires_confirmation" if pm_id else "requires_payment_method"
        emu.save(pi)
        emu.emit("payment_intent.created", pi)
        return pi
    pi, decline = payments.charge(
        emu,
        customer_id=customer["id"] if customer else None,
        pm_id=pm_id,
        amount=amount,
        currency=currency,
        now=now,
        description=description,
        metadata=metadata,
    )
    if decline is None:
        return pi
    if decline is authentication.ACTION_REQUIRED and bool_param(p, "off_session", False):
        # Nobody is there to authenticate: the payment fails, the intent can be tried again.
        pi.update(
            status="requires_payment_method",
            next_action=None,
            last_payment_error={
                "code": decline.code,
                "decline_code": decline.decline_code,
                "message": decline.message,
                "type": "card_error",
            },
        )
        emu.save(pi)
        emu.emit("payment_intent.payment_failed", pi)
    elif decline is authentication.ACTION_REQUIRED:
        return pi  # on-session: `requires_action`, the customer authenticates
    raise StripeError(
        402,
        decline.message,
        type="card_error",
        code=decline.code,
        decline_code=decline.decline_code,
        extra={"payment_intent": render(pi)},
    )
