"""Charges: the record of a payment attempt (a PaymentIntent's `latest_charge`), with
`charge.succeeded` / `charge.failed`; `GET /v1/charges[/{id}]`."""

from __future__ import annotations

from typing import Any

from app.stripe_emulator import disputes
from app.stripe_emulator.cards import Decline
from app.stripe_emulator.core import Emulator, list_of
from app.stripe_emulator.routing import ApiRequest, route
from app.stripe_emulator.store import new_id


def payment_method_details(pm: dict[str, Any] | None) -> dict[str, Any] | None:
    """A charge's `payment_method_details`: the payment method's own block under its type."""
    if pm is None:
        return None
    kind = pm["type"]
    details = dict(pm.get(kind) or {})
    if kind == "card":
        details = {
            "amount_authorized": None,
            "brand": details.get("brand"),
            "checks": details.get("checks"),
            "country": details.get("country"),
            "exp_month": details.get("exp_month"),
            "exp_year": details.get("exp_year"),
            "fingerprint": details.get("fingerprint"),
            "funding": details.get("funding"),
            "last4": details.get("last4"),
            "network": details.get("brand"),
            "three_d_secure": None,
            "wallet": None,
        }
    elif kind in _BANK_DETAILS:
        details = {key: details.get(key) for key in _BANK_DETAILS[kind]}
        details.update(expected_debit_date=None, mandate=None)
    elif kind == "link":
        details = {"country": "US", "funding_source_group": None}
    return {"type": kind, kind: details}


# What a bank debit's charge repeats of its payment method (Stripe's `payment_method_details`).
_BANK_DETAILS = {
    "sepa_debit": ("bank_code", "branch_code", "country", "fingerprint", "last4"),
    "us_bank_account": (
        "account_holder_type",
        "account_type",
        "bank_name",
        "fingerprint",
        "last4",
        "payment_reference",
        "routing_number",
    ),
}


def build(
    pi: dict[str, Any], pm: dict[str, Any] | None, now: int, decline: Decline | None = None
) -> dict[str, Any]:
    succeeded = decline is None
    return {
        "id": new_id("ch"),
        "object": "charge",
        "amount": pi["amount"],
        "amount_captured": pi["amount"] if succeeded else 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": new_id("txn") if succeeded else None,
        "billing_details": (pm or {}).get("billing_details"),
        "calculated_statement_descriptor": "STRIPE EMULATOR",
        "captured": succeeded,
        "created": now,
        "currency": pi["currency"],
        "customer": pi.get("customer"),
        "description": pi.get("description"),
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": decline.code if decline else None,
        "failure_message": decline.message if decline else None,
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(pi.get("metadata") or {}),
        "on_behalf_of": None,
        "outcome": {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network" if succeeded else "declined_by_network",
            "reason": decline.decline_code if decline else None,
            "risk_level": "normal",
            "seller_message": "Payment complete."
            if succeeded
            else "The bank did not return any further details with this decline.",
            "type": "authorized" if succeeded else "issuer_declined",
        },
        "paid": succeeded,
        "payment_intent": pi["id"],
        "payment_method": (pm or {}).get("id"),
        "payment_method_details": payment_method_details(pm),
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": None,
        "refunded": False,
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded" if succeeded else "failed",
        "transfer_data": None,
        "transfer_group": None,
    }


def record(
    emu: Emulator,
    pi: dict[str, Any],
    pm: dict[str, Any] | None,
    now: int,
    decline: Decline | None = None,
) -> dict[str, Any]:
    """Save the charge of a payment attempt and send its event; a dispute test card then
    opens a dispute on a successful charge, as Stripe's does."""
    charge = emu.save(build(pi, pm, now, decline))
    emu.emit("charge.succeeded" if decline is None else "charge.failed", charge)
    if decline is None and pm is not None and disputes.disputes_when_charged(pm):
        disputes.open_dispute(emu, charge, now)
    return charge


def remaining(charge: dict[str, Any]) -> int:
    return int(charge["amount_captured"]) - int(charge["amount_refunded"])


@route("GET", "/v1/charges/{id}")
def retrieve_charge(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return emu.load(req["id"], "charge")


@route("GET", "/v1/charges")
def list_charges(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return list_of(emu, "charge", req.params, "/v1/charges", "customer", "payment_intent")
