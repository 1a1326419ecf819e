"""Payment methods and charges: what a card does when attached or charged."""

from __future__ import annotations

from typing import Any, cast

from app.stripe_emulator import authentication, cards, charges, objects
from app.stripe_emulator.cards import Decline
from app.stripe_emulator.core import Emulator
from app.stripe_emulator.errors import StripeError, no_such


def create_card(
    emu: Emulator, number: str, exp_month: int, exp_year: int, cvc: str, now: int
) -> dict[str, Any]:
    number = cards.normalize(number)
    cards.validate(number, cvc)
    return emu.save(objects.payment_method(now, number, exp_month, exp_year))


def resolve(emu: Emulator, pm_id: Any, now: int, param: str = "payment_method") -> dict[str, Any]:
    """Load a payment method; Stripe's magic test ids (pm_card_visa...) mint a fresh one."""
    if isinstance(pm_id, str) and pm_id in cards.MAGIC_PAYMENT_METHODS:
        return create_card(emu, cards.MAGIC_PAYMENT_METHODS[pm_id], 12, 2034, "123", now)
    return emu.load(pm_id, "payment_method", param)


def attach(emu: Emulator, pm: dict[str, Any], customer_id: str) -> dict[str, Any]:
    if pm.get("customer") == customer_id:
        return pm
    if pm.get("customer"):
        raise StripeError(
            400,
            "The payment method you provided has already been attached to a customer.",
            code="payment_method_unexpected_state",
        )
    decline = cards.attach_decline(pm.get("_number", ""))  # a card's test number
    if decline:
        raise decline.error()
    pm["customer"] = customer_id
    emu.save(pm)
    emu.emit("payment_method.attached", pm)
    return pm


def detach(emu: Emulator, pm: dict[str, Any]) -> dict[str, Any]:
    customer_id = pm.get("customer")
    if not customer_id:
        raise StripeError(
            400,
            "The payment method you provided is not attached to a customer so detachment is "
            "impossible.",
            code="payment_method_unexpected_state",
        )
    customer = emu.store.get(customer_id)
    if customer and customer["invoice_settings"].get("default_payment_method") == pm["id"]:
        emu.update(
            customer,
            lambda c: c["invoice_settings"].update(default_payment_method=None),
            "customer.updated",
        )
    emu.update(pm, lambda o: o.update(customer=None), "payment_method.detached")
    return pm


def owned_by(emu: Emulator, pm_id: str, customer_id: str, now: int, param: str) -> dict[str, Any]:
    pm = resolve(emu, pm_id, now, param)
    if pm.get("customer") is None and pm_id in cards.MAGIC_PAYMENT_METHODS:
        attach(emu, pm, customer_id)
    if pm.get("customer") != customer_id:
        raise StripeError(
            400,
            f"The customer does not have a payment method with the ID {pm_id}. The payment "
            "method must be attached to the customer.",
            code="resource_missing",
            param=param,
        )
    return pm


def default_payment_method(
    emu: Emulator, customer: dict[str, Any], subscription: dict[str, Any] | None = None
) -> str | None:
    if subscription and subscription.get("default_payment_method"):
        return cast(str, subscription["default_payment_method"])
    return cast(str | None, customer["invoice_settings"].get("default_payment_method"))


def charge(
    emu: Emulator,
    *,
    customer_id: str | None,
    pm_id: str | None,
    amount: int,
    currency: str,
    now: int,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
) -> tuple[dict[str, Any], Decline | None]:
    """Create a confirmed PaymentIntent; it either succeeds or records the card's decline."""
    pm = emu.store.get(pm_id) if pm_id else None
    pi = objects.payment_intent(
        now,
        amount,
        currency,
        customer=customer_id,
        description=description,
        metadata=metadata or {},
        payment_method=pm_id,
        payment_method_types=[pm["type"] if pm else "card"],
    )
    # A bank debit or Link is charged at once and succeeds (no test-card behaviour).
    decline = cards.charge_decline(pm.get("_number", "")) if pm else _NO_PAYMENT_METHOD
    if decline is None and pm is not None and authentication.required(emu, pm):
        authentication.wait_for_action(emu, pi)
        return pi, authentication.ACTION_REQUIRED
    if pm is not None:
        pi["latest_charge"] = charges.record(emu, pi, pm, now, decline)["id"]
    if decline is None:
        pi.update(status="succeeded", amount_received=amount)
        emu.save(pi)
        emu.emit("payment_intent.succeeded", pi)
    else:
        pi["last_payment_error"] = {
            "code": decline.code,
            "decline_code": decline.decline_code,
            "message": decline.message,
            "payment_method": pm and {k: v for k, v in pm.items() if not k.startswith("_")},
            "type": "card_error",
        }
        emu.save(pi)
        emu.emit("payment_intent.payment_failed", pi)
    return pi, decline


_NO_PAYMENT_METHOD = Decline(
    "payment_intent_payment_attempt_failed",
    None,
    "The customer has no attached payment method or default payment method.",
)


def require_customer(emu: Emulator, customer_id: Any, param: str = "customer") -> dict[str, Any]:
    if not isinstance(customer_id, str) or not customer_id:
        raise no_such("customer", str(customer_id), param)
    return emu.load(customer_id, "customer", param)
