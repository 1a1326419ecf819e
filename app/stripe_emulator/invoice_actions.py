"""Ending an invoice without payment: `POST /v1/invoices/{id}/void` (`invoice.voided`) and
`POST /v1/invoices/{id}/mark_uncollectible` (`invoice.marked_uncollectible`), each followed by
`invoice.updated` with the status's `previous_attributes`, as Stripe sends them."""

from __future__ import annotations

import copy
from typing import Any

from app.stripe_emulator.core import Emulator, previous_attributes
from app.stripe_emulator.errors import StripeError
from app.stripe_emulator.routing import ApiRequest, route


def transition(
    emu: Emulator, invoice: dict[str, Any], status: str, stamp: str, event: str
) -> dict[str, Any]:
    """Move an invoice to `status`, stamp `status_transitions[stamp]`, and send `event` and
    `invoice.updated`."""
    before = copy.deepcopy(invoice)
    now = emu.now_for(invoice)
    invoice.update(status=status, next_payment_attempt=None, auto_advance=False)
    invoice["status_transitions"][stamp] = now
    emu.save(invoice)
    emu.emit(event, invoice)
    emu.emit("invoice.updated", invoice, previous_attributes(before, invoice))
    return invoice


@route("POST", "/v1/invoices/{id}/void")
def void_invoice(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    invoice = emu.load(req["id"], "invoice")
    if invoice["status"] not in ("open", "uncollectible"):
        raise StripeError(
            400,
            f"You can only void an open or uncollectible invoice; this one is {invoice['status']}.",
            code="invoice_not_editable" if invoice["status"] == "paid" else None,
        )
    return transition(emu, invoice, "void", "voided_at", "invoice.voided")


@route("POST", "/v1/invoices/{id}/mark_uncollectible")
def mark_uncollectible(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    invoice = emu.load(req["id"], "invoice")
    if invoice["status"] != "open":
        raise StripeError(
            400,
            f"You can only mark an open invoice uncollectible; this one is {invoice['status']}.",
        )
    return transition(
        emu, invoice, "uncollectible", "marked_uncollectible_at", "invoice.marked_uncollectible"
    )
