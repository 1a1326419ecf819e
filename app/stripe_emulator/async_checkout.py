"""Delayed-notification payments at Checkout: SEPA Direct Debit and US bank accounts in
`payment` mode.

A session created with `allowed_payment_method_types[]=sepa_debit` (currency `eur`) or
`us_bank_account` (`usd`) shows an IBAN or a bank account form on the hosted page. Paying
with it completes the session at once with `payment_status: unpaid`
(`checkout.session.completed`); the payment intent is `processing` (`payment_intent.processing`,
the charge `pending`). The emulator helper `POST /_emulator/checkout/sessions/{id}/settle`
(`outcome=succeeded|failed`; by default Stripe's test accounts decide: the IBAN
`DE62 3704 0044 0532 0130 01` and the US account `000222222227` fail, others succeed) ends it:
`checkout.session.async_payment_succeeded` (`payment_status: paid`, the invoice when
`invoice_creation[enabled]`) or `checkout.session.async_payment_failed`, each after the
charge's and payment intent's own events. In `setup` and `subscription` mode these methods
are saved (and charged) at once, as a card is; the payment methods are built in
`payment_method_types.py`."""

from __future__ import annotations

from typing import Any

from app.stripe_emulator import objects, payment_method_types, payments
from app.stripe_emulator.charges import build as build_charge
from app.stripe_emulator.core import Emulator, metadata_update
from app.stripe_emulator.errors import StripeError
from app.stripe_emulator.routing import ApiRequest, helper
from app.stripe_emulator.store import new_id

INSUFFICIENT_FUNDS = (
    "insufficient_funds",
    "The customer's account has insufficient funds to cover this payment.",
)


def check_payment_method_types(p: dict[str, Any], mode: str, currency: str | None) -> list[str]:
    """The session's `payment_method_types` from a create request's
    `allowed_payment_method_types` (card when not given)."""
    raw = p.get("allowed_payment_method_types") or ["card"]
    types = [str(t) for t in (raw if isinstance(raw, list) else [raw])]
    for index, kind in enumerate(types):
        if kind not in payment_method_types.SUPPORTED_TYPES:
            raise StripeError(
                400,
                "The emulator's Checkout takes "
                f"{', '.join(payment_method_types.SUPPORTED_TYPES)} payments, not {kind}.",
                param=f"allowed_payment_method_types[{index}]",
            )
        needed = payment_method_types.CURRENCY.get(kind)
        if needed and mode != "setup" and (currency or "").lower() != needed:
            raise StripeError(
                400,
                f"The payment method `{kind}` cannot be used with currency "
                f"`{currency}`; it supports `{needed}`.",
                param="allowed_payment_method_types",
            )
    return types


def payment_intent_data(
    emu: Emulator, session: dict[str, Any], customer: dict[str, Any] | None, pm: dict[str, Any]
) -> dict[str, Any]:
    """The session's `payment_intent_data`; the payment method is saved to the customer first
    when it asks for `setup_future_usage`."""
    data: dict[str, Any] = session.get("_payment_intent_data") or {}
    if customer and data.get("setup_future_usage"):
        payments.attach(emu, pm, customer["id"])
    return data


def complete_delayed(
    emu: Emulator,
    session: dict[str, Any],
    customer: dict[str, Any] | None,
    pm: dict[str, Any],
    now: int,
) -> dict[str, Any]:
    """A payment-mode session paid by bank debit: complete, unpaid, processing."""
    data = payment_intent_data(emu, session, customer, pm)
    pi = objects.payment_intent(
        now,
        session["amount_total"],
        session["currency"],
        customer=customer["id"] if customer else None,
        description=data.get("description"),
        metadata=metadata_update({}, data),
        payment_method=pm["id"],
        payment_method_types=[pm["type"]],
        status="processing",
    )
    charge = build_charge(pi, pm, now)
    charge.update(
        status="pending", paid=False, captured=True, balance_transaction=None, outcome=None
    )
    emu.save(charge)
    emu.emit("charge.pending", charge)
    pi["latest_charge"] = charge["id"]
    emu.save(pi)
    emu.emit("payment_intent.processing", pi)
    return {"payment_intent": pi["id"], "payment_status": "unpaid"}


@helper("POST", "/_emulator/checkout/sessions/{id}/settle")
def settle(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    """The bank's answer to a processing Checkout payment."""
    session = emu.load(req["id"], "checkout.session")
    pi = emu.store.get(session.get("payment_intent") or "")
    if pi is None or pi["status"] != "processing":
        raise StripeError(400, f"The Checkout Session {session['id']} has no processing payment.")
    pm = emu.load(pi["payment_method"], "payment_method")
    outcome = req.params.get("outcome") or (
        "failed" if payment_method_types.fails_later(pm) else "succeeded"
    )
    if outcome not in ("succeeded", "failed"):
        raise StripeError(
            400, "Invalid outcome: must be one of failed or succeeded", param="outcome"
        )
    charge = emu.load(pi["latest_charge"], "charge")
    now = emu.now_for(pi) if pi.get("customer") else emu.now()
    if outcome == "succeeded":
        emu.update(
            charge,
            lambda c: c.update(status="succeeded", paid=True, balance_transaction=new_id("txn")),
            None,
        )
        emu.emit("charge.succeeded", charge)
        emu.update(pi, lambda o: o.update(status="succeeded", amount_received=o["amount"]), None)
        emu.emit("payment_intent.succeeded", pi)
        session["payment_status"] = "paid"
        if session.get("customer") and (session.get("invoice_creation") or {}).get("enabled"):
            from app.stripe_emulator.checkout import paid_invoice  # checkout imports this module

            customer = emu.load(session["customer"], "customer")
            session["invoice"] = paid_invoice(emu, session, customer, pi, now)
        emu.save(session)
        emu.emit("checkout.session.async_payment_succeeded", session)
        return session
    code, message = INSUFFICIENT_FUNDS
    emu.update(
        charge,
        lambda c: c.update(status="failed", failure_code=code, failure_message=message),
        None,
    )
    emu.emit("charge.failed", charge)

    def fail(o: dict[str, Any]) -> None:
        o["status"] = "requires_payment_method"
        o["last_payment_error"] = {
            "code": code,
            "message": message,
            "payment_method": {k: v for k, v in pm.items() if not k.startswith("_")},
            "type": "invalid_request_error",
        }

    emu.update(pi, fail, None)
    emu.emit("payment_intent.payment_failed", pi)
    emu.emit("checkout.session.async_payment_failed", session)
    return session
