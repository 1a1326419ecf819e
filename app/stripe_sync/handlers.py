"""One `on_<event>` per Stripe event type the portal acts on.

Handlers do not trust the event's copy of the object, nor the order events arrive in: each
one re-fetches the object from Stripe through the gateway and hands Stripe's *current*
state to `BillingService`, which makes our rows match it. Running a handler twice, or
running the handlers of a lifecycle in any order, therefore ends in the same rows.

A handler returns a short description of what it did (stored on the ledger row's
`last_error` column only when it fails); it raises to mark the event failed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.billing.details_mirror import BillingDetailsMirror
from app.billing.mirror import StripeMirror
from app.billing.stripe_objects import StripeObject, ref_id
from app.db.engine import write_from_here
from app.notifications.service import NotificationService
from app.stripe.gateway import StripeGateway, StripeNotFound
from app.stripe_sync.repository import OutboxRepository

Json = dict[str, Any]


@dataclass(frozen=True)
class EventContext:
    gateway: StripeGateway
    mirror: StripeMirror
    notifications: NotificationService
    event: Json

    @property
    def object(self) -> Json:
        return dict((self.event.get("data") or {}).get("object") or {})

    @property
    def created(self) -> int:
        return int(self.event.get("created") or 0)


Handler = Callable[[EventContext], Awaitable[str]]


async def _subscription(ctx: EventContext) -> str:
    obj = ctx.object
    current: StripeObject
    try:
        current = await ctx.gateway.retrieve_subscription(obj["id"])
    except StripeNotFound:
        # Gone at Stripe (e.g. test data deleted): treat it as ended.
        current = {**obj, "status": "canceled"}
    return await ctx.mirror.apply_subscription(current, seen_at=ctx.created)


async def on_customer_subscription_created(ctx: EventContext) -> str:
    return await _subscription(ctx)


async def on_customer_subscription_updated(ctx: EventContext) -> str:
    return await _subscription(ctx)


async def on_customer_subscription_deleted(ctx: EventContext) -> str:
    return await _subscription(ctx)


async def on_subscription_schedule(ctx: EventContext) -> str:
    # A schedule's phases changed, or it ended (released, canceled, completed): the plan
    # change it makes next, read again with the subscription it manages (or managed).
    obj = ctx.object
    sub_id = ref_id(obj.get("subscription")) or ref_id(obj.get("released_subscription"))
    if sub_id is None:
        return "ignored: a schedule without a subscription"
    try:
        current = await ctx.gateway.retrieve_subscription(sub_id)
    except StripeNotFound:
        return f"ignored: {sub_id} is gone"
    return await ctx.mirror.apply_subscription(current, seen_at=ctx.created, read_schedule=True)


async def on_customer_subscription_trial_will_end(ctx: EventContext) -> str:
    # Nothing to decide: the trial's end is already mirrored; refresh it anyway.
    outcome = await _subscription(ctx)
    notify = ctx.notifications
    return f"{outcome}; {await notify.trial_will_end(ctx.event['id'], ctx.object['id'])}"


async def on_checkout_session_completed(ctx: EventContext) -> str:
    current = await ctx.gateway.retrieve_checkout_session(ctx.object["id"])
    return await ctx.mirror.apply_checkout_session(current, seen_at=ctx.created)


async def on_checkout_session_async_payment_succeeded(ctx: EventContext) -> str:
    # A delayed payment method (ACH...): `completed` came with `payment_status=unpaid`; now it
    # is paid. The same handler: the session is re-fetched and a credit grant is keyed by
    # its id, so whichever event grants first, the pack is granted once.
    return await on_checkout_session_completed(ctx)


async def _invoice(ctx: EventContext, *, action_required: bool = False) -> str:
    current = await ctx.gateway.retrieve_invoice(ctx.object["id"])
    outcome = await ctx.mirror.apply_invoice(
        current, seen_at=ctx.created, action_required=action_required
    )
    parent = current.get("parent") or {}
    sub_id = ref_id((parent.get("subscription_details") or {}).get("subscription"))
    if sub_id:
        # A payment failure (past_due) or recovery shows on the subscription: refresh it too.
        subscription = await ctx.gateway.retrieve_subscription(sub_id)
        outcome += "; " + await ctx.mirror.apply_subscription(subscription, seen_at=ctx.created)
    return outcome


async def on_invoice_created(ctx: EventContext) -> str:
    return await _invoice(ctx)


async def on_invoice_finalized(ctx: EventContext) -> str:
    return await _invoice(ctx)


async def on_invoice_paid(ctx: EventContext) -> str:
    outcome = await _invoice(ctx)
    notify = ctx.notifications
    return f"{outcome}; {await notify.payment_succeeded(ctx.object['id'])}"


async def on_invoice_payment_failed(ctx: EventContext) -> str:
    outcome = await _invoice(ctx)
    notify = ctx.notifications
    return f"{outcome}; {await notify.payment_failed(ctx.event['id'], ctx.object['id'])}"


async def on_invoice_payment_action_required(ctx: EventContext) -> str:
    # The payment waits for the customer (3-D Secure: a renewal on an off-session card, or a
    # plan change pending its payment): the billing pages link to the hosted invoice page
    # while the invoice is open, and one email per invoice says so.
    outcome = await _invoice(ctx, action_required=True)
    notify = ctx.notifications
    return f"{outcome}; {await notify.payment_action_required(ctx.object['id'])}"


async def on_invoice_updated(ctx: EventContext) -> str:
    # Also `invoice.voided` and `invoice.marked_uncollectible`: the status, amounts and credit
    # notes as Stripe has them now.
    return await _invoice(ctx)


async def _cards_of(ctx: EventContext, stripe_customer_id: str | None) -> str:
    customer = await ctx.mirror.customers.by_stripe_id(stripe_customer_id)
    if customer is None:
        return "ignored: unknown customer"
    return await ctx.mirror.sync_cards(customer)


async def on_payment_method_attached(ctx: EventContext) -> str:
    return await _cards_of(ctx, ref_id(ctx.object.get("customer")))


async def on_payment_method_detached(ctx: EventContext) -> str:
    # The detached card no longer names its customer: find who had it.
    previous = (ctx.event.get("data") or {}).get("previous_attributes") or {}
    stripe_customer_id = ref_id(previous.get("customer"))
    if stripe_customer_id is None:
        stripe_customer_id = await ctx.mirror.card_owner(ctx.object["id"])
    return await _cards_of(ctx, stripe_customer_id)


async def on_customer_updated(ctx: EventContext) -> str:
    # The default card (invoice_settings.default_payment_method), the credit balance
    # (`balance`) and the billing details (name, address, email) live on the customer.
    customer = await ctx.mirror.customers.by_stripe_id(ctx.object.get("id"))
    if customer is None:
        return "ignored: unknown customer"
    outcome = await ctx.mirror.sync_customer(customer)
    details = BillingDetailsMirror(ctx.mirror.session, ctx.gateway)
    return f"{outcome}; {await details.sync(customer)}"


async def on_customer_tax_id(ctx: EventContext) -> str:
    # `created`, `updated` (its verification), `deleted`: the customer's tax IDs as Stripe
    # has them now, with the rest of its billing details.
    customer = await ctx.mirror.customers.by_stripe_id(ref_id(ctx.object.get("customer")))
    if customer is None:
        return "ignored: unknown customer"
    return await BillingDetailsMirror(ctx.mirror.session, ctx.gateway).sync(customer)


async def on_charge_refunded(ctx: EventContext) -> str:
    # A refund of an invoice's payment shows on that invoice; a refunded credit pack's unused
    # credits are revoked.
    current = await ctx.gateway.retrieve_charge(ctx.object["id"])
    return await ctx.mirror.apply_charge(current)


async def on_charge_dispute(ctx: EventContext) -> str:
    # `created` and `closed`: a disputed credit pack's unused credits are revoked, and given
    # back when the dispute is won; decided from the charge's disputes as Stripe has them now.
    charge_id = ref_id(ctx.object.get("charge"))
    if charge_id is None:
        return "ignored: a dispute without a charge"
    return await ctx.mirror.apply_charge(await ctx.gateway.retrieve_charge(charge_id))


async def on_customer_deleted(ctx: EventContext) -> str:
    # Forget the deleted customer's id, so the next Checkout creates a new customer.
    return await ctx.mirror.forget_stripe_customer(ref_id(ctx.object.get("id")))


async def on_payment_method_updated(ctx: EventContext) -> str:
    # Also `automatically_updated` (the card updater): the card's expiry and last four.
    return await _cards_of(ctx, ref_id(ctx.object.get("customer")))


async def on_checkout_session_async_payment_failed(ctx: EventContext) -> str:
    # A delayed payment (SEPA) failed: nothing is granted; the success page shows the failure
    # from this ledger row (app.stripe_sync.repository.completed_checkout).
    current = await ctx.gateway.retrieve_checkout_session(ctx.object["id"])
    return f"payment failed: {current['id']} is {current.get('payment_status')}; nothing granted"


async def on_credit_note_created(ctx: EventContext) -> str:
    # A credit note changes its invoice's credited amounts (and maybe the customer's balance,
    # which `customer.updated` brings): mirror the invoice as Stripe has it now.
    invoice_id = ref_id(ctx.object.get("invoice"))
    if invoice_id is None:
        return "ignored: credit note without an invoice"
    current = await ctx.gateway.retrieve_invoice(invoice_id)
    return await ctx.mirror.apply_invoice(current, seen_at=ctx.created)


async def on_meter_error_report(ctx: EventContext) -> str:
    # A thin event (`POST /webhooks/stripe/thin`): meter events Stripe accepted, then
    # rejected. Its data (fetched from Stripe) names samples of them: their outbox rows are
    # flagged for an admin, and the whole report stays on this ledger row (the admin's event
    # page shows its payload).
    reason = ctx.object.get("reason") or {}
    rejected: dict[str, str] = {}
    for kind in reason.get("error_types") or []:
        for sample in kind.get("sample_errors") or []:
            identifier = (sample.get("request") or {}).get("identifier")
            if identifier:
                rejected[str(identifier)] = f"{kind.get('code')}: {sample.get('error_message')}"
    await write_from_here(ctx.mirror.session)
    flagged = await OutboxRepository(ctx.mirror.session).flag_rejected(rejected)
    return (
        f"meter {ctx.object.get('id')}: {reason.get('error_count', len(rejected))} rejected; "
        f"flagged {len(flagged)} outbox row(s)"
    )


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": on_checkout_session_completed,
    "checkout.session.async_payment_succeeded": on_checkout_session_async_payment_succeeded,
    "customer.subscription.created": on_customer_subscription_created,
    "customer.subscription.updated": on_customer_subscription_updated,
    "customer.subscription.deleted": on_customer_subscription_deleted,
    "customer.subscription.trial_will_end": on_customer_subscription_trial_will_end,
    "subscription_schedule.created": on_subscription_schedule,
    "subscription_schedule.updated": on_subscription_schedule,
    "subscription_schedule.released": on_subscription_schedule,
    "subscription_schedule.canceled": on_subscription_schedule,
    "subscription_schedule.completed": on_subscription_schedule,
    "invoice.created": on_invoice_created,
    "invoice.finalized": on_invoice_finalized,
    "invoice.paid": on_invoice_paid,
    "invoice.payment_failed": on_invoice_payment_failed,
    "invoice.payment_action_required": on_invoice_payment_action_required,
    "invoice.updated": on_invoice_updated,
    "invoice.voided": on_invoice_updated,
    "invoice.marked_uncollectible": on_invoice_updated,
    "payment_method.attached": on_payment_method_attached,
    "payment_method.detached": on_payment_method_detached,
    "customer.updated": on_customer_updated,
    "customer.tax_id.created": on_customer_tax_id,
    "customer.tax_id.updated": on_customer_tax_id,
    "customer.tax_id.deleted": on_customer_tax_id,
    "charge.refunded": on_charge_refunded,
    "charge.dispute.created": on_charge_dispute,
    "charge.dispute.closed": on_charge_dispute,
    "customer.deleted": on_customer_deleted,
    "payment_method.updated": on_payment_method_updated,
    "payment_method.automatically_updated": on_payment_method_updated,
    "checkout.session.async_payment_failed": on_checkout_session_async_payment_failed,
    "customer.subscription.paused": on_customer_subscription_updated,
    "customer.subscription.resumed": on_customer_subscription_updated,
    "v1.billing.meter.error_report_triggered": on_meter_error_report,
    "credit_note.created": on_credit_note_created,
    "credit_note.updated": on_credit_note_created,
    "credit_note.voided": on_credit_note_created,
}
