"""Credit notes: `POST /v1/credit_notes` on an open or paid invoice, by `amount` or `lines`
(`credit_note.created`, then `invoice.updated`).

- First the invoice's `amount_remaining` (and `amount_due`) goes down, not below zero
  (`pre_payment_amount`); an open invoice with nothing left to pay is then paid
  (`invoice.paid`).
- The rest (`post_payment_amount`, all of it on a paid invoice) is split as asked:
  `refund_amount` refunds the invoice's charge (`refund.created`, `charge.refunded`),
  `out_of_band_amount` is only recorded, and `credit_amount` (by default whatever the other
  two leave) goes to the customer's credit balance (a `credit_note` customer balance
  transaction); the three must add up to it.
"""

from __future__ import annotations

from typing import Any

from app.stripe_emulator import balances, invoices, refunds
from app.stripe_emulator.core import (
    Emulator,
    int_param,
    list_of,
    metadata_update,
    paginate,
    require,
)
from app.stripe_emulator.errors import StripeError
from app.stripe_emulator.routing import ApiRequest, route
from app.stripe_emulator.store import new_id


def _line(invoice: dict[str, Any], raw: Any, index: int) -> dict[str, Any]:
    param = f"lines[{index}]"
    if not isinstance(raw, dict):
        raise StripeError(400, "Invalid hash", param=param)
    kind = require(raw, "type")
    quantity = int_param(raw, "quantity")
    if kind == "invoice_line_item":
        line_id = require(raw, "invoice_line_item")
        found = next((li for li in invoice["lines"]["data"] if li["id"] == line_id), None)
        if found is None:
            raise StripeError(
                400,
                f"No such invoice line item: '{line_id}' on invoice {invoice['id']}",
                code="resource_missing",
                param=f"{param}[invoice_line_item]",
            )
        unit = int(found["amount"]) // max(int(found["quantity"] or 1), 1)
        amount = int_param(raw, "amount")
        if amount is None:
            amount = unit * (quantity or int(found["quantity"] or 1))
        description = found["description"]
    else:
        unit = int_param(raw, "unit_amount") or 0
        amount = unit * (quantity or 1)
        description = raw.get("description") or ""
        line_id = None
    return {
        "id": new_id("cnli"),
        "object": "credit_note_line_item",
        "amount": amount,
        "description": description,
        "discount_amount": 0,
        "discount_amounts": [],
        "invoice_line_item": line_id,
        "livemode": False,
        "metadata": metadata_update({}, raw),
        "pretax_credit_amounts": [],
        "quantity": quantity or 1,
        "tax_rates": [],
        "taxes": [],
        "type": kind,
        "unit_amount": unit,
        "unit_amount_decimal": str(unit),
    }


def _already_credited(emu: Emulator, invoice: dict[str, Any]) -> int:
    return sum(
        int(note["total"])
        for note in emu.store.all("credit_note", invoice["customer"])
        if note["invoice"] == invoice["id"] and note["status"] == "issued"
    )


# https://docs.stripe.com/api/credit_notes/create#create_credit_note-reason
REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory")


def create(emu: Emulator, p: dict[str, Any]) -> dict[str, Any]:
    if p.get("reason") not in (None, "", *REASONS):
        raise StripeError(
            400,
            "Invalid reason: must be one of duplicate, fraudulent, order_change, or "
            "product_unsatisfactory",
            param="reason",
        )
    invoice = emu.load(require(p, "invoice"), "invoice", "invoice")
    if invoice["status"] not in ("open", "paid"):
        raise StripeError(
            400,
            f"You can only credit an open or paid invoice; {invoice['id']} is {invoice['status']}.",
            param="invoice",
        )
    raw_lines = p.get("lines") or []
    lines = [_line(invoice, raw, i) for i, raw in enumerate(raw_lines)]
    total = sum(line["amount"] for line in lines) if lines else int_param(p, "amount") or 0
    if not lines:
        if total <= 0:
            raise StripeError(
                400,
                "One of the following params should be provided for this request: amount, "
                "lines, or shipping_cost.",
                code="parameter_missing",
            )
        lines = [_line(invoice, {"type": "custom_line_item", "unit_amount": str(total)}, 0)]
        lines[0]["description"] = "Credit"
    limit = int(invoice["total"]) - _already_credited(emu, invoice)
    if total > limit:
        raise StripeError(
            400,
            f"The credit note amount ({total}) is greater than the amount left to credit on "
            f"invoice {invoice['id']} ({limit}).",
            param="amount",
        )
    # First what is still due goes down; the rest is credited after payment.
    pre = min(total, int(invoice["amount_remaining"])) if invoice["status"] == "open" else 0
    post = total - pre
    now = emu.now_for(invoice)
    refund_amount = int_param(p, "refund_amount", 0) or 0
    out_of_band = int_param(p, "out_of_band_amount", 0) or 0
    credit_amount = int_param(p, "credit_amount")
    if credit_amount is None:
        credit_amount = max(post - refund_amount - out_of_band, 0)
    if refund_amount + out_of_band + credit_amount != post:
        raise StripeError(
            400,
            "The sum of refund_amount, credit_amount and out_of_band_amount must equal the "
            f"credit note's post-payment amount ({post}).",
            param="refund_amount",
        )
    note_id = new_id("cn")
    count = sum(1 for n in emu.store.all("credit_note") if n["invoice"] == invoice["id"]) + 1
    note = {
        "id": note_id,
        "object": "credit_note",
        "amount": total,
        "amount_shipping": 0,
        "created": now,
        "currency": invoice["currency"],
        "customer": invoice["customer"],
        "customer_account": None,
        "customer_balance_transaction": None,
        "discount_amount": 0,
        "discount_amounts": [],
        "effective_at": now,
        "invoice": invoice["id"],
        "lines": {
            "object": "list",
            "data": lines,
            "has_more": False,
            "url": f"/v1/credit_notes/{note_id}/lines",
        },
        "livemode": False,
        "memo": p.get("memo") or None,
        "metadata": metadata_update({}, p),
        "number": f"{invoice['number']}-CN-{count:02d}",
        "out_of_band_amount": out_of_band or None,
        "pdf": invoice["invoice_pdf"],
        "post_payment_amount": post,
        "pre_payment_amount": pre,
        "pretax_credit_amounts": [],
        "reason": p.get("reason") or None,
        "refunds": [],
        "shipping_cost": None,
        "status": "issued",
        "subtotal": total,
        "subtotal_excluding_tax": total,
        "total": total,
        "total_excluding_tax": total,
        "total_taxes": [],
        "type": "mixed" if pre and post else ("pre_payment" if pre else "post_payment"),
        "voided_at": None,
    }
    if refund_amount:
        charge = refunds.charge_to_refund(
            emu, {"payment_intent": invoices.payment_intent_of(invoice)}
        )
        refund = refunds.refund(emu, charge, refund_amount, now)
        note["refunds"].append(
            {
                "amount_refunded": refund_amount,
                "payment_record_refund": None,
                "refund": refund["id"],
                "type": "refund",
            }
        )
    if credit_amount:
        customer = emu.load(invoice["customer"], "customer")
        transaction = balances.record(
            emu, customer, -credit_amount, invoice["currency"], now, "credit_note"
        )
        transaction["credit_note"] = note_id
        emu.save(transaction)
        note["customer_balance_transaction"] = transaction["id"]
    emu.save(note)
    emu.emit("credit_note.created", note)
    _credit_invoice(emu, emu.load(invoice["id"], "invoice"), pre, post, now)
    return note


def _credit_invoice(emu: Emulator, invoice: dict[str, Any], pre: int, post: int, now: int) -> None:
    def change(i: dict[str, Any]) -> None:
        i["pre_payment_credit_notes_amount"] += pre
        i["post_payment_credit_notes_amount"] += post
        i["amount_due"] = max(0, int(i["amount_due"]) - pre)
        i["amount_remaining"] = max(0, int(i["amount_remaining"]) - pre)

    emu.update(invoice, change, "invoice.updated")
    if pre and invoice["amount_remaining"] == 0:
        invoices.pay(emu, invoice, None, now)  # nothing left to charge: marked paid


@route("POST", "/v1/credit_notes")
def create_credit_note(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return create(emu, req.params)


@route("GET", "/v1/credit_notes/{id}")
def retrieve_credit_note(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return emu.load(req["id"], "credit_note")


@route("GET", "/v1/credit_notes/{id}/lines")
def list_credit_note_lines(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    note = emu.load(req["id"], "credit_note")
    return paginate(note["lines"]["data"], req.params, f"/v1/credit_notes/{note['id']}/lines")


@route("GET", "/v1/credit_notes")
def list_credit_notes(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return list_of(emu, "credit_note", req.params, "/v1/credit_notes", "invoice", "customer")
