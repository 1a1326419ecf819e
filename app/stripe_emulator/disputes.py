"""Disputes: Stripe's dispute test cards open one after a successful charge
(`charge.dispute.created`, `charge.dispute.funds_withdrawn`); the emulator helper
`POST /_emulator/disputes/{id}/close` with `status=won|lost` closes it
(`charge.dispute.closed`, and `charge.dispute.funds_reinstated` when won)."""

from __future__ import annotations

from typing import Any

from app.stripe_emulator.core import Emulator, list_of, require
from app.stripe_emulator.errors import StripeError
from app.stripe_emulator.routing import ApiRequest, helper, route
from app.stripe_emulator.store import new_id

EVIDENCE_DAYS = 21 * 86400  # how long Stripe gives to respond (evidence_details.due_by)

# Card number -> the dispute reason Stripe's test card produces.
DISPUTE_CARDS = {
    "4000000000000259": "fraudulent",
    "4000000000002685": "product_not_received",
}

_EVIDENCE_FIELDS = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
)


def disputes_when_charged(pm: dict[str, Any]) -> bool:
    return pm.get("_number") in DISPUTE_CARDS


def open_dispute(emu: Emulator, charge: dict[str, Any], now: int) -> dict[str, Any]:
    dispute = {
        "id": new_id("dp"),
        "object": "dispute",
        "amount": charge["amount"],
        "balance_transactions": [new_id("txn")],
        "charge": charge["id"],
        "created": now,
        "currency": charge["currency"],
        "enhanced_eligibility_types": [],
        "evidence": dict.fromkeys(_EVIDENCE_FIELDS),
        "evidence_details": {
            "due_by": now + EVIDENCE_DAYS,
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": charge["payment_intent"],
        "payment_method_details": {
            "card": {
                "brand": ((charge["payment_method_details"] or {}).get("card") or {}).get("brand"),
                "case_type": "chargeback",
                "network_reason_code": "10.4",
            },
            "type": "card",
        },
        "reason": DISPUTE_CARDS.get(_number_of(emu, charge), "general"),
        "status": "needs_response",
        "_customer": charge.get("customer"),
    }
    emu.save(dispute)
    emu.update(charge, lambda c: c.update(disputed=True), None)
    emu.emit("charge.dispute.created", dispute)
    emu.emit("charge.dispute.funds_withdrawn", dispute)
    return dispute


def _number_of(emu: Emulator, charge: dict[str, Any]) -> str:
    pm = emu.store.get(charge.get("payment_method") or "") or {}
    return str(pm.get("_number") or "")


@helper("POST", "/_emulator/disputes/{id}/close")
def close_dispute(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    """Decide a dispute as the card network would: `status=won` or `status=lost`."""
    dispute = emu.load(req["id"], "dispute")
    status = require(req.params, "status")
    if status not in ("won", "lost"):
        raise StripeError(400, "Invalid status: must be one of lost or won", param="status")
    if dispute["status"] in ("won", "lost"):
        raise StripeError(400, f"The dispute {dispute['id']} is already closed.", param="id")
    previous = {"status": dispute["status"]}
    dispute["status"] = status
    if status == "won":
        dispute["balance_transactions"].append(new_id("txn"))
    emu.save(dispute)
    emu.emit("charge.dispute.closed", dispute, previous)
    if status == "won":
        emu.emit("charge.dispute.funds_reinstated", dispute)
    return dispute


@route("GET", "/v1/disputes/{id}")
def retrieve_dispute(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return emu.load(req["id"], "dispute")


@route("GET", "/v1/disputes")
def list_disputes(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return list_of(emu, "dispute", req.params, "/v1/disputes", "charge", "payment_intent")
