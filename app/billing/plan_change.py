"""A paying customer's plan change: reviewed first, then confirmed (issue 17, DESIGN promise 9).

`review` shows what Stripe will do, from Stripe's own invoice preview of the change
(`invoices.create_preview` with the same items `BillingService.change_plan` sends, as of a
`proration_date` the review page carries): the amount charged today, its lines, the card,
the next renewal. It changes nothing. Only `confirm` does: it fetches the preview again as of
the same date and refuses when the amount due differs from what the page showed; the update
then gets that `proration_date`, so Stripe charges exactly the previewed amount. The form's
figures are signed (HMAC with the secret key), so a customer cannot post a date or amount the
page did not show. The confirm's idempotency keys are made of the review's inputs (plan,
interval, the review page's id), so a double-submitted confirm is one change at Stripe.

A downgrade (a plan costing less a month, or yearly → monthly: `rules.waits_for_period_end`)
is not made now: a subscription schedule makes it at the end of the paid period (its preview
is that renewal), and the billing page says so with a "Keep <plan>" button that releases the
schedule until then. Without a live Stripe subscription a plan starts at Checkout, which
shows its own price first; a move to the free plan is the cancel page.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, replace
from datetime import datetime

from app.billing.models import PaymentMethod
from app.billing.plan_items import PlannedChange, changed_items, current_items
from app.billing.rules import waits_for_period_end
from app.billing.service import ActionResult, BillingService, review_path
from app.billing.stripe_objects import new_attempt, plan_item, ref_id, ts
from app.catalog.models import Catalog, Interval, Plan, Price
from app.customers.models import Customer, Subscription
from app.db.engine import write_from_here
from app.db.transactions import rolls_back_on_error
from app.lib.clock import utcnow
from app.lib.errors import ValidationFailed
from app.lib.jinja import format_cents, format_date
from app.lib.money import per_month
from app.stripe.gateway import Phase, StripeCardError, idempotency_key
from app.stripe.objects import InvoiceLineItem, InvoicePreview
from app.stripe.objects import Subscription as StripeSubscription

# How long a review's figures may be confirmed: its proration date must be this recent.
REVIEW_MAX_AGE = 3600
PREVIEW_CHANGED = (
    "What this change costs has changed since the review was shown. Please check the new "
    "figures and confirm again."
)
# Stripe's refusal (`error_if_incomplete`) of a change whose payment needs 3-D Secure.
NEEDS_AUTHENTICATION = "subscription_payment_intent_requires_action"
PENDING_CHANGE = (
    "Your last plan change is waiting for your bank's confirmation. Confirm that payment "
    "(or let it lapse) before changing your plan again."
)
REVIEW_EXPIRED = "That review is out of date. Please check the figures again and confirm."
DASHBOARD = "/billing"
PLANS_PAGE = "/billing/upgrade"
CANCEL_PAGE = "/billing/subscription/cancel"


@dataclass(frozen=True)
class ReviewLine:
    description: str
    amount: int
    start: datetime | None
    end: datetime | None
    proration: bool


@dataclass(frozen=True)
class PlanReview:
    """What confirming the change to `plan` at `interval` does, from Stripe's preview."""

    plan: Plan
    interval: Interval
    current_plan: Plan
    current_interval: str
    # A downgrade: made at `takes_effect` (the period end), the preview is that renewal.
    scheduled: bool
    takes_effect: datetime | None
    currency: str
    # The preview's amount due: today's charge (the confirm checks it), or (scheduled) the
    # renewal's at the period end.
    amount_due: int
    total: int
    credit_applied: int  # from the customer's Stripe credit balance
    credit_left: int  # credit the customer has after this invoice
    lines: list[ReviewLine]
    card: PaymentMethod | None
    renews_on: datetime | None
    renewal_amount: int | None
    ends_trial: bool
    # What the confirm form carries back: Stripe's time the figures are as of, ours when
    # they were shown, this review's id (the confirm's idempotency keys: a double submit is
    # one change, another review another) and our signature over them all (the customer
    # cannot pick another date or amount).
    proration_date: int
    reviewed_at: int
    review_id: str
    signature: str
    # What the invoice takes off (a promotion code's discount) and adds (Stripe Tax), shown
    # between the lines and the total.
    discount: int = 0
    tax: int = 0

    @property
    def charged_today(self) -> int:
        return 0 if self.scheduled else self.amount_due


@dataclass(frozen=True)
class ReviewedFigures:
    """The review's hidden fields, as the confirm form posts them."""

    proration_date: str
    amount: str
    reviewed_at: str
    review_id: str
    signature: str


class PlanChangeService:
    def __init__(self, billing: BillingService, secret_key: str) -> None:
        self.billing = billing
        self.secret_key = secret_key
        self.session = billing.session
        self.catalog = billing.catalog
        self.gateway = billing.gateway
        self.customers = billing.customers
        self.mirror = billing.mirror

    async def review(
        self, customer: Customer, plan_slug: str, interval: str, now: datetime | None = None
    ) -> PlanReview | ActionResult:
        """The review of a change (nothing changes), or where to go instead."""
        found = await self._change(customer, plan_slug, interval)
        if isinstance(found, ActionResult):
            return found
        subscription, change = found
        reviewed_at = int((now or utcnow()).timestamp())
        scheduled = self._scheduled(subscription, change)
        preview = await self._preview(change, scheduled, None)
        # The figures are as of Stripe's clock (a test clock may run ahead of ours).
        proration_date = _proration_date(preview) or reviewed_at
        cards = await self.billing.cards(customer)
        card = next((c for c in cards if c.is_default), cards[0] if cards else None)
        review = self._review(subscription, change, scheduled, preview, card)
        review = replace(
            review, proration_date=proration_date, reviewed_at=reviewed_at, review_id=new_attempt()
        )
        return replace(review, signature=self._sign(customer, change, review))

    @rolls_back_on_error
    async def confirm(
        self,
        customer: Customer,
        plan_slug: str,
        interval: str,
        figures: ReviewedFigures,
        now: datetime | None = None,
    ) -> ActionResult:
        """Make the reviewed change, if Stripe's preview still says what the page showed."""
        try:
            as_of, shown = int(figures.proration_date), int(figures.amount)
            reviewed_at = int(figures.reviewed_at)
        except ValueError:
            raise ValidationFailed("The review's figures are missing.", field="amount") from None
        moment = int((now or utcnow()).timestamp())
        found = await self._change(customer, plan_slug, interval)
        if isinstance(found, ActionResult):
            return found
        subscription, change = found
        back = review_path(change.plan.slug, change.interval)
        signed = (as_of, shown, reviewed_at, figures.review_id)
        signature = self._signature(customer, change, *signed)
        fresh = moment - REVIEW_MAX_AGE <= reviewed_at <= moment + 60
        if not fresh or not hmac.compare_digest(signature, figures.signature):
            return ActionResult(REVIEW_EXPIRED, redirect_url=back, category="error")
        scheduled = self._scheduled(subscription, change)
        # What is charged now: nothing for a change at the period end (its renewal may still
        # change, as any renewal can), else Stripe's preview as of the same date again.
        today = 0
        if not scheduled:
            preview = await self._preview(change, scheduled, as_of)
            today = int(preview.get("amount_due") or 0)
        if today != shown:
            return ActionResult(PREVIEW_CHANGED, redirect_url=back, category="error")
        inputs = (subscription.external_id, change.plan.slug, change.interval, figures.review_id)
        if scheduled:
            return await self._schedule(customer, change, inputs)
        schedule_id = ref_id(change.remote.get("schedule"))
        if schedule_id is not None:  # this change replaces a scheduled one
            await self.gateway.release_subscription_schedule(
                schedule_id, key=idempotency_key("release-schedule", schedule_id)
            )
        key = idempotency_key("change-plan", *inputs)
        try:
            done = await self.billing.apply_change(change, key=key, proration_date=as_of)
        except StripeCardError as exc:
            # Refused whole (`error_if_incomplete`): nothing changed. A card asking for 3-D
            # Secure gets the change made pending its payment instead; a decline is the
            # customer's to fix (another card).
            if exc.stripe_code != NEEDS_AUTHENTICATION:
                raise
            return await self._change_once_paid(change, inputs, as_of)
        return replace(done, redirect_url=DASHBOARD)

    async def _change_once_paid(
        self, change: PlannedChange, inputs: tuple[object, ...], as_of: int
    ) -> ActionResult:
        """The change as Stripe's pending update (`payment_behavior=pending_if_incomplete`):
        the subscription keeps its plan (and we its quotas) until the invoice is paid, which
        the customer confirms with their bank on Stripe's hosted invoice page; Stripe then
        applies it (`customer.subscription.updated`), or discards it when it expires."""
        if change.remote.get("cancel_at_period_end"):
            # A pending update takes only the change's own parameters: keep the plan first.
            await self.gateway.set_cancel_at_period_end(
                change.subscription_id, False, key=idempotency_key("keep-for-change", *inputs)
            )
        updated = await self.gateway.update_subscription_items(
            change.subscription_id,
            items=change.items,
            proration_behavior=change.proration_behavior,
            payment_behavior="pending_if_incomplete",
            metadata={"plan": change.plan.slug, "interval": change.interval},
            key=idempotency_key("change-plan-once-paid", *inputs),
            end_trial=change.end_trial,
            proration_date=as_of,
        )
        invoice_id = ref_id(updated.get("latest_invoice"))
        invoice = None
        if updated.get("pending_update") and invoice_id:
            invoice = await self.gateway.retrieve_invoice(invoice_id)
            await self.mirror.apply_invoice(invoice)  # its Stripe reads, then the write lock
        await self.mirror.apply_subscription(updated)
        await self.session.commit()
        if invoice is None:  # paid after all: the change is made
            return ActionResult(f"You are now on {change.plan.name}.", redirect_url=DASHBOARD)
        amount = format_cents(int(invoice.get("amount_due") or 0), str(invoice.get("currency")))
        return ActionResult(
            f"Your bank needs you to confirm the payment of {amount} for {change.plan.name}. "
            f"You keep {_plan_name(self.catalog, change.remote)} until it is confirmed.",
            redirect_url=invoice.get("hosted_invoice_url") or DASHBOARD,
            category="info",
        )

    @rolls_back_on_error
    async def keep_current_plan(self, customer: Customer) -> ActionResult:
        """Call off a scheduled change: release the schedule, the plan renews as it is."""
        subscription = await self.customers.subscription(customer)
        schedule_id = subscription.stripe_schedule_id
        plan = self.catalog.plan(subscription.plan_slug) or self.catalog.default_plan
        if schedule_id is None:
            return ActionResult(
                f"No plan change is scheduled: you keep {plan.name}.", category="info"
            )
        schedule = await self.gateway.retrieve_subscription_schedule(schedule_id)
        if schedule.get("status") in ("not_started", "active"):
            await self.gateway.release_subscription_schedule(
                schedule_id, key=idempotency_key("release-schedule", schedule_id)
            )
        await write_from_here(self.session)  # after the Stripe calls
        row = await self.customers.locked_subscription(customer)
        self.mirror.forget_schedule(row)
        await self.session.commit()
        return ActionResult(f"You keep {plan.name}; it renews as usual.")

    # The change and its preview ----------------------------------------------------------

    async def _change(
        self, customer: Customer, plan_slug: str, interval: str
    ) -> tuple[Subscription, PlannedChange] | ActionResult:
        plan, interval_ = self.billing.plan_and_interval(plan_slug, interval)
        if plan.is_free:  # the end of the paid plan: its own confirm page
            return ActionResult("", redirect_url=CANCEL_PAGE)
        subscription = await self.customers.subscription(customer)
        remote = await self.billing.live_stripe_subscription(subscription)
        if remote is None:
            return ActionResult(
                f"Choose {plan.name} on this page: Stripe Checkout shows the price before you pay.",
                redirect_url=PLANS_PAGE,
                category="info",
            )
        if remote.get("pending_update"):  # one change at a time: Stripe holds the earlier one
            return ActionResult(PENDING_CHANGE, DASHBOARD, category="info")
        change = await self.billing.planned_change(remote, plan, interval_)
        if change is None:
            return ActionResult(f"You are already on {plan.name}.", DASHBOARD, category="info")
        return subscription, change

    def _sign(self, customer: Customer, change: PlannedChange, review: PlanReview) -> str:
        return self._signature(
            customer,
            change,
            review.proration_date,
            review.charged_today,
            review.reviewed_at,
            review.review_id,
        )

    def _signature(self, customer: Customer, change: PlannedChange, *figures: object) -> str:
        parts = (customer.public_id, change.plan.slug, change.interval, *figures)
        message = "|".join(str(part) for part in parts)
        key = f"plan-review:{self.secret_key}".encode()
        return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()

    def _scheduled(self, subscription: Subscription, change: PlannedChange) -> bool:
        current = self.catalog.plan(subscription.plan_slug)
        current_price = current.price(subscription.interval) if current else None  # type: ignore[arg-type]
        target_price = change.plan.price(change.interval)
        if current_price is None or target_price is None:
            return False
        return waits_for_period_end(
            str(change.remote.get("status")),
            subscription.plan_slug == change.plan.slug,
            _monthly(current_price),
            _monthly(target_price),
            subscription.interval,
            change.interval,
        )

    async def _preview(
        self, change: PlannedChange, scheduled: bool, proration_date: int | None
    ) -> InvoicePreview:
        """Stripe's invoice for the change: the one made now, or (scheduled) the renewal
        billing the new plan."""
        return await self.gateway.preview_subscription_change(
            change.subscription_id,
            items=change.items,
            proration_behavior="none" if scheduled else change.proration_behavior,
            proration_date=proration_date,
            end_trial=change.end_trial and not scheduled,
        )

    def _review(
        self,
        subscription: Subscription,
        change: PlannedChange,
        scheduled: bool,
        preview: InvoicePreview,
        card: PaymentMethod | None,
    ) -> PlanReview:
        lines = [_line(line) for line in (preview.get("lines") or {}).get("data") or []]
        period_end = _period_end(self.catalog, change.remote)
        price = change.plan.price(change.interval)
        if scheduled:
            renews_on: datetime | None = period_end
        else:  # a new interval or the end of a trial starts a new period now
            renews_on = max((line.end for line in lines if line.end), default=period_end)
        current = self.catalog.plan(subscription.plan_slug) or self.catalog.default_plan
        starting = int(preview.get("starting_balance") or 0)
        ending = preview.get("ending_balance")
        return PlanReview(
            plan=change.plan,
            interval=change.interval,
            current_plan=current,
            current_interval=subscription.interval,
            scheduled=scheduled,
            takes_effect=period_end if scheduled else None,
            currency=str(preview.get("currency") or (price.currency if price else "usd")),
            amount_due=int(preview.get("amount_due") or 0),
            total=int(preview.get("total") or 0),
            credit_applied=max(0, min(-starting, int(preview.get("total") or 0))),
            credit_left=max(0, -int(ending)) if ending is not None else 0,
            lines=lines,
            card=card,
            renews_on=renews_on,
            renewal_amount=price.amount if price else None,
            ends_trial=change.end_trial and not scheduled,
            proration_date=0,
            reviewed_at=0,
            review_id="",
            signature="",
            discount=sum(
                int(d.get("amount") or 0) for d in preview.get("total_discount_amounts") or []
            ),
            tax=sum(int(t.get("amount") or 0) for t in preview.get("total_taxes") or []),
        )

    async def _schedule(
        self, customer: Customer, change: PlannedChange, inputs: tuple[object, ...]
    ) -> ActionResult:
        """Make the change at the period end: a schedule from the subscription with two
        phases, the current prices until the period ends, then the new ones (released
        after that phase: the subscription goes on as the new plan)."""
        remote = change.remote
        schedule_id = ref_id(remote.get("schedule"))
        if schedule_id is None:
            created = await self.gateway.create_subscription_schedule(
                change.subscription_id, key=idempotency_key("schedule", *inputs)
            )
            schedule = created
        else:  # a change is scheduled already: this one replaces it
            schedule = await self.gateway.retrieve_subscription_schedule(schedule_id)
        period_end = _period_end(self.catalog, remote)
        phase_start = (schedule.get("current_phase") or {}).get("start_date")
        updated = await self.gateway.set_schedule_phases(
            schedule["id"],
            phases=[
                Phase(
                    current_items(remote),
                    start_date=phase_start,
                    end_date=int(period_end.timestamp()) if period_end else None,
                ),
                Phase(changed_items(remote, change)),
            ],
            metadata={"plan": change.plan.slug, "interval": change.interval},
            key=idempotency_key("schedule-phases", *inputs),
        )
        await write_from_here(self.session)  # after the Stripe calls
        row = await self.customers.locked_subscription(customer)
        self.mirror.apply_schedule(row, updated)
        await self.session.commit()
        current = self.catalog.plan(row.plan_slug) or self.catalog.default_plan
        when = format_date(row.scheduled_change_at or period_end)
        return ActionResult(
            f"Your plan changes to {change.plan.name} on {when}. You keep {current.name} "
            "until then.",
            redirect_url=DASHBOARD,
        )


def _plan_name(catalog: Catalog, remote: StripeSubscription) -> str:
    item = plan_item(catalog, remote) or {}
    found = catalog.plan_for_lookup_key(str((item.get("price") or {}).get("lookup_key") or ""))
    return found[0].name if found else "your plan"


def _monthly(price: Price) -> int:
    return price.amount if price.interval == "month" else per_month(price.amount)


def _period_end(catalog: Catalog, remote: StripeSubscription) -> datetime | None:
    item = plan_item(catalog, remote) or {}
    return ts(item.get("current_period_end"))


def _proration_date(preview: InvoicePreview) -> int | None:
    """The time Stripe prorated the preview as of: the date it reports, else the start of
    its proration lines (None when nothing is prorated)."""
    details = (preview.get("parent") or {}).get("subscription_details") or {}
    if details.get("subscription_proration_date"):
        return int(details["subscription_proration_date"])
    starts = [
        int((line.get("period") or {}).get("start") or 0)
        for line in (preview.get("lines") or {}).get("data") or []
        if ((line.get("parent") or {}).get("subscription_item_details") or {}).get("proration")
    ]
    return max(starts) if starts and all(starts) else None


def _line(line: InvoiceLineItem) -> ReviewLine:
    period = line.get("period") or {}
    details = (line.get("parent") or {}).get("subscription_item_details") or {}
    return ReviewLine(
        description=str(line.get("description") or ""),
        amount=int(line.get("amount") or 0),
        start=ts(period.get("start")),
        end=ts(period.get("end")),
        proration=bool(details.get("proration")),
    )
