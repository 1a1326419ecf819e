"""Refunds from the admin pages (issue 20, item 8): a paid invoice, in full or in part (a
credit pack bought through Checkout has one too: `invoice_creation`), or a credit pack's
payment by its Checkout Session (for a pack without an invoice: bought before packs were
invoiced).

- **An invoice is refunded by a credit note with a refund** (`refund_amount` = the amount),
  Stripe's recommended way to adjust a finalized invoice: the invoice itself then records
  the credit (`post_payment_credit_notes_amount`), the customer gets a credit note document
  (PDF, email) next to the invoice, and the refund of the invoice's payment is made by
  Stripe with it. A bare refund would leave the invoice saying "paid" in full.
- **A credit pack's payment by its Checkout Session is refunded by a Refund** of its
  PaymentIntent (such a pack may have no invoice to credit).
- Either way, when the payment bought a credit pack, its unused credits are then revoked by
  the same rule the `charge.refunded` webhook applies (`StripeMirror.apply_charge` →
  app.billing.credit_reversals), not a copy; the webhook arriving later changes nothing more.

What is refundable is read from Stripe at the review and again at the action: the amount
paid, less what the charge already refunded (and, for an invoice, what credit notes already
credited). The amount is typed in the invoice's currency and must be positive and at most
that. The reason is one of Stripe's refund reasons plus the admin's note (required, in the
audit log, and the credit note's memo).

Money moves once: the confirm form's one-time request id is both the audit entry's unique
`request_id` (a resubmitted form finds it and does nothing) and, through the idempotency
key, the Stripe call's (two submits racing get the same credit note or refund back).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.admin.commands import Actor, AdminCommands, Outcome, checked_request_id, required_reason
from app.billing.credit_reversals import CreditReversals
from app.billing.mirror import _payment_intent_id
from app.billing.service import BillingService
from app.billing.stripe_objects import ref_id
from app.catalog.models import Catalog
from app.customers.models import Customer
from app.db.transactions import rolls_back_on_error
from app.lib.errors import NotFound, ValidationFailed
from app.lib.money import format_money, parse_money
from app.stripe.gateway import idempotency_key
from app.stripe.invoices import REFUND_REASONS

REASON_LABELS = {
    "requested_by_customer": "Requested by the customer",
    "duplicate": "Duplicate payment",
    "fraudulent": "Fraudulent payment",
}
assert set(REASON_LABELS) == set(REFUND_REASONS)


@dataclass(frozen=True)
class Refundable:
    """A payment an admin may refund, as Stripe has it now."""

    kind: str  # invoice | pack
    object_id: str  # the invoice (in_...) or the pack's Checkout Session (cs_...)
    customer: Customer
    title: str
    currency: str
    paid: int
    refunded: int
    credited: int  # invoices: what credit notes credited already
    refundable: int
    payment_intent_id: str | None
    charge_id: str | None
    paid_with: str | None
    why_not: str = ""  # when nothing is refundable: why

    def money(self, amount: int) -> str:
        return format_money(amount, self.currency, cents=True)

    @property
    def audit_action(self) -> str:
        return "invoice.refund" if self.kind == "invoice" else "payment.refund"


def _paid_with(charge: dict[str, Any] | None) -> str | None:
    if not charge:
        return None
    details = charge.get("payment_method_details") or {}
    card = details.get("card") or {}
    if card.get("last4"):
        return f"{str(card.get('brand') or 'card').capitalize()} ending in {card['last4']}"
    return str(details.get("type") or "") or None


class AdminRefunds:
    def __init__(self, commands: AdminCommands, billing: BillingService, catalog: Catalog) -> None:
        self.commands = commands
        self.session = commands.session
        self.billing = billing
        self.gateway = billing.gateway
        self.mirror = billing.mirror
        self.catalog = catalog

    # What can be refunded --------------------------------------------------------------------

    async def refundable(self, object_id: str) -> Refundable:
        if object_id.startswith("in_"):
            return await self._invoice(object_id)
        if object_id.startswith("cs_"):
            return await self._pack(object_id)
        raise NotFound(f"No payment {object_id!r}.", code="payment_not_found")

    async def _invoice(self, invoice_id: str) -> Refundable:
        row = await self.billing.repo.invoice_by_stripe_id(invoice_id)
        customer = await self.billing.customers.repo.by_id(row.customer_id) if row else None
        if row is None or customer is None:
            raise NotFound(f"No invoice {invoice_id!r}.", code="invoice_not_found")
        inv = await self.gateway.retrieve_invoice(invoice_id)
        # The payment as Stripe has it now (our row has it once the invoice was mirrored paid).
        intent_id = _payment_intent_id(inv, "paid") or row.stripe_payment_intent_id
        charge = await self._charge_of_intent(intent_id)
        paid = int(inv.get("amount_paid") or 0)
        refunded = int(charge.get("amount_refunded") or 0) if charge else 0
        credited = int(inv.get("pre_payment_credit_notes_amount") or 0) + int(
            inv.get("post_payment_credit_notes_amount") or 0
        )
        why_not = ""
        if inv.get("status") != "paid":
            why_not = f"Only a paid invoice can be refunded; this one is {inv.get('status')}."
        elif charge is None:
            why_not = "Nothing was charged for this invoice (paid from the credit balance)."
        elif charge.get("disputed"):
            why_not = "The payment is disputed: the dispute decides what is given back."
        refundable = 0 if why_not else max(0, min(paid - refunded, int(inv["total"]) - credited))
        if not why_not and refundable == 0:
            why_not = "Everything paid has been refunded or credited already."
        return Refundable(
            kind="invoice",
            object_id=invoice_id,
            customer=customer,
            title=f"Invoice {row.number or invoice_id}",
            currency=str(inv.get("currency") or row.currency),
            paid=paid,
            refunded=refunded,
            credited=credited,
            refundable=refundable,
            payment_intent_id=intent_id,
            charge_id=charge.get("id") if charge else None,
            paid_with=_paid_with(charge),
            why_not=why_not,
        )

    async def _pack(self, session_id: str) -> Refundable:
        cs = await self.gateway.retrieve_checkout_session(session_id)
        metadata = cs.get("metadata") or {}
        customer = await self.billing.customers.by_stripe_id(ref_id(cs.get("customer")))
        if metadata.get("kind") != "credit_pack" or customer is None:
            raise NotFound(f"No credit pack payment {session_id!r}.", code="payment_not_found")
        pack = self.catalog.credit_packs.get(str(metadata.get("pack")))
        found = await CreditReversals(self.catalog, self.gateway, None).charge_of(cs)
        charge: dict[str, Any] = dict(found) if found else {}
        paid = int(charge.get("amount") or 0)
        refunded = int(charge.get("amount_refunded") or 0)
        why_not = ""
        if charge.get("status") != "succeeded":
            why_not = "This credit pack was not paid."
        elif charge.get("disputed"):
            why_not = "The payment is disputed: the dispute decides what is given back."
        refundable = 0 if why_not else max(0, paid - refunded)
        if not why_not and refundable == 0:
            why_not = "Everything paid has been refunded already."
        return Refundable(
            kind="pack",
            object_id=session_id,
            customer=customer,
            title=f"Credit pack {pack.name if pack else metadata.get('pack')}",
            currency=str(cs.get("currency") or charge.get("currency") or "usd"),
            paid=paid,
            refunded=refunded,
            credited=0,
            refundable=refundable,
            payment_intent_id=ref_id(cs.get("payment_intent")),
            charge_id=charge.get("id"),
            paid_with=_paid_with(charge),
            why_not=why_not,
        )

    async def _charge_of_intent(self, intent_id: str | None) -> dict[str, Any] | None:
        if not intent_id:
            return None
        intent = await self.gateway.retrieve_payment_intent(intent_id)
        charge = intent.get("latest_charge")
        return dict(charge) if isinstance(charge, dict) else None

    # Validation ------------------------------------------------------------------------------

    def summary(self, target: Refundable, amount: Any, reason: Any) -> dict[str, Any]:
        """The refund's checked amount (minor units) and reason, for the review and the action."""
        if target.refundable <= 0:
            raise ValidationFailed(target.why_not or "Nothing is left to refund.", field="amount")
        text = str(amount or "").strip()
        if not text:
            value = target.refundable
        else:
            try:
                value = parse_money(text, target.currency)
            except ValueError:
                raise ValidationFailed(
                    f"The amount must be a positive number in {target.currency.upper()}, "
                    f"such as {target.money(target.refundable).lstrip('$€£')}.",
                    field="amount",
                ) from None
        if value <= 0:
            raise ValidationFailed("The amount must be more than zero.", field="amount")
        if value > target.refundable:
            raise ValidationFailed(
                f"At most {target.money(target.refundable)} can be refunded "
                f"({target.money(target.paid)} paid, {target.money(target.paid - target.refundable)}"
                f" refunded or credited already); {target.money(value)} is too much.",
                field="amount",
            )
        reason = str(reason or "requested_by_customer")
        if reason not in REFUND_REASONS:
            raise ValidationFailed("Choose a reason for the refund.", field="refund_reason")
        return {
            "amount": value,
            "amount_text": target.money(value),
            "full": value == target.refundable == target.paid,
            "reason": reason,
            "reason_label": REASON_LABELS[reason],
        }

    # The action ------------------------------------------------------------------------------

    @rolls_back_on_error
    async def refund(
        self,
        actor: Actor,
        object_id: str,
        amount: Any,
        refund_reason: Any,
        note: str | None,
        request_id: str | None,
    ) -> Outcome:
        why = required_reason(note)
        rid = checked_request_id(request_id)
        done = await self.commands._already_done(rid)
        if done is not None:
            return Outcome("This refund was already made.", "info", done)
        target = await self.refundable(object_id)
        checked = self.summary(target, amount, refund_reason)
        value, reason = checked["amount"], checked["reason"]
        await self.session.commit()  # no transaction open across the Stripe calls
        key = idempotency_key("admin-refund", object_id, rid)
        metadata = {"admin_request_id": rid, "admin": actor.email[:400]}
        details: dict[str, Any] = {
            "object": object_id,
            "amount": value,
            "currency": target.currency,
            "refund_reason": reason,
        }
        if target.kind == "invoice":
            note_obj = await self.gateway.create_credit_note(
                object_id,
                amount=value,
                refund_amount=value,
                reason=reason,
                memo=why,
                metadata=metadata,
                key=key,
            )
            details["credit_note"] = note_obj.get("id")
            details["credit_note_number"] = note_obj.get("number")
            details["refunds"] = [r.get("refund") for r in note_obj.get("refunds") or []]
        else:
            assert target.payment_intent_id is not None  # a paid pack has one
            refund_obj = await self.gateway.create_refund(
                target.payment_intent_id, amount=value, reason=reason, metadata=metadata, key=key
            )
            details["refunds"] = [refund_obj.get("id")]
        # Mirror now what the webhooks will say (idempotently): the invoice's refunded and
        # credited amounts, and a credit pack's unused credits revoked, by the webhook's rule.
        # Each read from Stripe comes before its transaction writes, and is committed.
        if target.charge_id:
            charge = await self.gateway.retrieve_charge(target.charge_id)
            details["mirror"] = await self.mirror.apply_charge(charge)
            await self.session.commit()
        if target.kind == "invoice":
            current = await self.gateway.retrieve_invoice(object_id)
            await self.mirror.apply_invoice(current)
            await self.session.commit()
        entry = await self.commands._audit(
            actor, target.audit_action, "customer", target.customer.external_id, why, details, rid
        )
        what = f"credit note {details['credit_note_number']}" if target.kind == "invoice" else ""
        message = f"Refunded {checked['amount_text']} of {target.title}" + (
            f" ({what})." if what else "."
        )
        return Outcome(message, entry=entry)
