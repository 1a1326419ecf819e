"""Delayed-notification payments at Checkout: SEPA Direct Debit in `payment` mode.

A session created with `allowed_payment_method_types[]=sepa_debit` (currency `eur`) shows an IBAN form
on the hosted page. Paying with an IBAN completes the session at once with
`payment_status: unpaid` (`checkout.session.completed`); the payment intent is `processing`
(`payment_intent.processing`, the charge `pending`). The emulator helper
`POST /_emulator/checkout/sessions/{id}/settle` (`outcome=succeeded|failed`; by default
Stripe's test IBAN decides: `DE62 3704 0044 0532 0130 01` fails, others succeed) ends it:
`checkout.session.async_payment_succeeded` (`payment_status: paid`, the invoice when
`invoice_creation[enabled]`) or `checkout.session.async_payment_failed`, each after the
charge's and payment intent's own events."""

from __future__ import annotations

import hashlib
from typing import Any

from app.stripe_emulator import objects, payments
from app.stripe_emulator.charges import build as build_charge
from app.stripe_emulator.core import Emulator, metadata_update
from app.stripe_emulator.errors import StripeError
from app.stripe_emulator.routing import ApiRequest, helper
from app.stripe_emulator.store import new_id

FAILING_IBANS = {"DE62370400440532013001"}
SUPPORTED_TYPES = ("card", "sepa_debit")
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
        if kind not in SUPPORTED_TYPES:
            raise StripeError(
                400,
                f"The emulator's Checkout takes card and sepa_debit payments, not {kind}.",
                param=f"allowed_payment_method_types[{index}]",
            )
    if "sepa_debit" in types and mode != "payment":
        raise StripeError(
            400,
            "The emulator takes sepa_debit at Checkout in payment mode only.",
            param="allowed_payment_method_types",
        )
    if "sepa_debit" in types and (currency or "").lower() != "eur":
        raise StripeError(
            400,
            "The payment method `sepa_debit` cannot be used with currency "
            f"`{currency}`; it supports `eur`.",
            param="allowed_payment_method_types",
        )
    return types


def normalize_iban(text: str) -> str:
    iban = "".join(text.split()).upper()
    digits = "".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4]) if iban.isalnum() else ""
    if len(iban) < 15 or not iban[:2].isalpha() or not digits or int(digits) % 97 != 1:
        raise StripeError(
            400,
            "The IBAN you entered is invalid.",
            code="invalid_bank_account_iban",
            param="iban",
        )
    return iban


def sepa_payment_method(now: int, iban: str, name: str, email: str | None) -> dict[str, Any]:
    return {
        "id": new_id("pm"),
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": dict(objects._ADDRESS),
            "email": email,
            "name": name,
            "phone": None,
            "tax_id": None,
        },
        "created": now,
        "customer": None,
        "livemode": False,
        "metadata": {},
        "sepa_debit": {
            "bank_code": iban[4:12],
            "branch_code": "",
            "country": iban[:2],
            "fingerprint": hashlib.sha256(iban.encode()).hexdigest()[:16],
            "generated_from": {"charge": None, "setup_attempt": None},
            "last4": iban[-4:],
        },
        "type": "sepa_debit",
        "_iban": iban,
        "_number": "",  # no card number: no test-card behaviour when attached or charged
    }


def complete_sepa(emu: Emulator, session: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    """Pay the hosted page with an IBAN: complete, unpaid, processing."""
    if "sepa_debit" not in session["payment_method_types"]:
        raise StripeError(400, "This Checkout Session does not take SEPA Direct Debit.")
    iban = normalize_iban(form.get("iban", ""))
    name = (form.get("name") or "").strip()
    if not name:
        raise StripeError(400, "Enter the account holder's name.", param="name")
    customer = emu.load(session["customer"], "customer") if session["customer"] else None
    now = emu.now_for(customer) if customer else emu.now()
    email = form.get("email") or session.get("customer_email") or (customer or {}).get("email")
    pm = emu.save(sepa_payment_method(now, iban, name, email))
    data = session.get("_payment_intent_data") or {}
    if customer and data.get("setup_future_usage"):
        payments.attach(emu, pm, customer["id"])
    pi = objects.payment_intent(
        now,
        session["amount_total"],
        session["currency"],
        customer=customer["id"] if customer else None,
        description=data.get("description"),
        metadata=metadata_update({}, data),
        payment_method=pm["id"],
        payment_method_types=["sepa_debit"],
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
    session.update(
        status="complete",
        payment_status="unpaid",
        payment_intent=pi["id"],
        customer_details={
            "address": None,
            "email": email,
            "name": name,
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        },
    )
    emu.save(session)
    emu.emit("checkout.session.completed", session)
    return session


@helper("POST", "/_emulator/checkout/sessions/{id}/settle")
def settle(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    """The bank's answer to a processing Checkout payment."""
    session = emu.load(req["id"], "checkout.session")
    pi = emu.store.get(session.get("payment_intent") or "")
    if pi is None or pi["status"] != "processing":
        raise StripeError(400, f"The Checkout Session {session['id']} has no processing payment.")
    pm = emu.load(pi["payment_method"], "payment_method")
    outcome = req.params.get("outcome") or (
        "failed" if pm.get("_iban") in FAILING_IBANS else "succeeded"
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
