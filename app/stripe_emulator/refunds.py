"""Refunds: `POST /v1/refunds` (a `payment_intent` or a `charge`, `amount` for a partial one)
refunds the charge at once (card refunds succeed in test mode): `refund.created`, then
`charge.refunded` with the charge's new `amount_refunded` / `refunded`."""

from __future__ import annotations

from typing import Any

from app.stripe_emulator import charges
from app.stripe_emulator.core import Emulator, int_param, list_of, metadata_update
from app.stripe_emulator.errors import StripeError
from app.stripe_emulator.routing import ApiRequest, route
from app.stripe_emulator.store import new_id

# Stripe's refund reasons (https://docs.stripe.com/api/refunds/create#create_refund-reason);
# `expired_uncaptured_charge` and the like are set by Stripe itself, never accepted.
REASONS = ("duplicate", "fraudulent", "requested_by_customer")


def checked_reason(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if value not in REASONS:
        raise StripeError(
            400,
            "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer",
            param="reason",
        )
    return str(value)


def charge_to_refund(emu: Emulator, p: dict[str, Any]) -> dict[str, Any]:
    if p.get("charge"):
        charge = emu.load(p["charge"], "charge", "charge")
        if p.get("payment_intent") and p["payment_intent"] != charge["payment_intent"]:
            raise StripeError(
                400,
                f"The charge {charge['id']} does not belong to the PaymentIntent "
                f"{p['payment_intent']}.",
                param="payment_intent",
            )
        return charge
    if not p.get("payment_intent"):
        raise StripeError(
            400,
            "One of the following params should be provided for this request: payment_intent "
            "or charge.",
            code="parameter_missing",
        )
    pi = emu.load(p["payment_intent"], "payment_intent", "payment_intent")
    latest = emu.store.get(pi.get("latest_charge") or "")
    if latest is None or latest["status"] != "succeeded":
        raise StripeError(
            400,
            f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
            param="payment_intent",
        )
    return latest


def refund(
    emu: Emulator,
    charge: dict[str, Any],
    amount: int | None,
    now: int,
    *,
    reason: str | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Refund `amount` (all that is left when None) of a charge; returns the refund."""
    if charge["disputed"]:
        raise StripeError(
            400,
            f"Charge {charge['id']} has been charged back; cannot issue a refund.",
            code="charge_disputed",
        )
    left = charges.remaining(charge)
    if left <= 0:
        raise StripeError(
            400, f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
        )
    amount = left if amount is None else amount
    if amount <= 0:
        raise StripeError(
            400,
            "Invalid positive integer",
            code="parameter_invalid_integer",
            param="amount",
        )
    if amount > left:
        raise StripeError(
            400,
            f"Refund amount ({_money(amount, charge)}) is greater than unrefunded amount on "
            f"charge ({_money(left, charge)})",
            code="amount_too_large",
            param="amount",
        )
    created = {
        "id": new_id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": new_id("txn"),
        "charge": charge["id"],
        "created": now,
        "currency": charge["currency"],
        "destination_details": {
            "card": {
                "reference": None,
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund",
            },
            "type": "card",
        },
        "metadata": metadata or {},
        "payment_intent": charge["payment_intent"],
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
        "_customer": charge.get("customer"),
    }
    emu.save(created)
    emu.emit("refund.created", created)

    def apply(c: dict[str, Any]) -> None:
        c["amount_refunded"] += amount
        c["refunded"] = c["amount_refunded"] >= c["amount_captured"]

    emu.update(charge, apply, "charge.refunded")
    return created


def _money(amount: int, charge: dict[str, Any]) -> str:
    return f"{amount / 100:.2f} {charge['currency'].upper()}"


@route("POST", "/v1/refunds")
def create_refund(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    reason = checked_reason(p.get("reason"))
    charge = charge_to_refund(emu, p)
    return refund(
        emu,
        charge,
        int_param(p, "amount"),
        emu.now_for(charge),
        reason=reason,
        metadata=metadata_update({}, p),
    )


@route("GET", "/v1/refunds/{id}")
def retrieve_refund(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return emu.load(req["id"], "refund")


@route("GET", "/v1/refunds")
def list_refunds(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return list_of(emu, "refund", req.params, "/v1/refunds", "charge", "payment_intent")
