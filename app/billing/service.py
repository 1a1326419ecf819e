"""Billing's user actions: checkout, plan changes, cancel/resume, cards, the portal link.

They call Stripe through the gateway and own their transaction (commit at the end), because
a Stripe call cannot be rolled back and the ids it returns (a new Stripe customer) must be
stored before the user leaves for Stripe. What Stripe answers is mirrored into our rows by
`StripeMirror` (app.billing.mirror), which the webhook handlers and `reconcile` use too.

Idempotency keys: calls that happen once per object of ours use a key made only of our ids
(`customer:<public_id>`, `detach:<pm>`); user actions that may legitimately repeat (buying a
second credit pack, cancel → resume → cancel) add an attempt id, which the SDK's own retries
of that call reuse: the form's own id when the page sent one (`attempt`, one per rendered
form: a double submit is one Checkout Session), else a fresh one. The plan change's confirm
uses its review's id (app.billing.plan_change). Cancel, resume and a default card set twice
end in the same state and charge nothing.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlencode
from weakref import WeakValueDictionary

from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.catalog_sync import CatalogSync
from app.billing.checkout_status import CheckoutLedger, CheckoutStatus
from app.billing.details_repository import BillingDetailsRepository
from app.billing.details_restore import SavedDetails
from app.billing.mirror import StripeMirror
from app.billing.models import PaymentMethod
from app.billing.plan_items import PlannedChange, items_change, overage_lookup_keys
from app.billing.repository import BillingRepository
from app.billing.rules import (
    KEEP_LAST_CARD,
    NOTHING_TO_CANCEL,
    can_remove_card,
    change_ends_trial,
    plan_is_paid,
    trial_eligible,
)
from app.billing.stripe_objects import created_order, new_attempt, ref_id
from app.catalog.models import Catalog, Interval, Plan
from app.customers.models import Customer, Subscription
from app.customers.service import CustomerService
from app.customers.statuses import SubscriptionStatus
from app.db.engine import write_from_here
from app.db.transactions import rolls_back_on_error
from app.lib.errors import NotFound, ValidationFailed, quoted
from app.metering.service import MeteringService
from app.stripe.gateway import (
    LineItem,
    StripeGateway,
    StripeGatewayError,
    StripeNotFound,
    idempotency_key,
)
from app.stripe.objects import CheckoutSession
from app.stripe.objects import Subscription as StripeSubscription

T = TypeVar("T")
_CARD_LOCKS: WeakValueDictionary[int, asyncio.Lock] = WeakValueDictionary()


def _card_lock(customer_id: int) -> asyncio.Lock:
    lock = _CARD_LOCKS.get(customer_id)
    if lock is None:
        lock = _CARD_LOCKS[customer_id] = asyncio.Lock()
    return lock


INTERVALS: tuple[Interval, ...] = ("month", "year")
_ATTEMPT = re.compile(r"[0-9a-f]{8,32}")


def _form_attempt(attempt: str) -> str:
    """The form's own id when it sent a well-formed one, else a fresh one."""
    return attempt if _ATTEMPT.fullmatch(attempt or "") else new_attempt()


def review_path(plan_slug: str, interval: str) -> str:
    """The page reviewing a change of the paying customer's plan (app.billing.plan_change)."""
    return "/billing/subscription/review?" + urlencode({"plan": plan_slug, "interval": interval})


@dataclass(frozen=True)
class ActionResult:
    """What a user action did: a message to flash, and where to send the browser."""

    message: str
    redirect_url: str | None = None
    category: str = "success"


class BillingService:
    def __init__(
        self,
        session: AsyncSession,
        catalog: Catalog,
        gateway: StripeGateway,
        public_url: str,
        metering: MeteringService | None = None,
        checkout_ledger: CheckoutLedger | None = None,
        mirror: StripeMirror | None = None,
    ) -> None:
        self.session = session
        self.catalog = catalog
        self.gateway = gateway
        self.public_url = public_url.rstrip("/")
        self.metering = metering
        self.checkout_ledger = checkout_ledger
        self.customers = CustomerService(session, catalog)
        self.repo = BillingRepository(session)
        self.mirror = mirror or StripeMirror(session, catalog, gateway, metering)

    # Lookups ----------------------------------------------------------------------------

    async def customer_for_user(self, user_id: int) -> Customer:
        customer = await self.customers.for_user(user_id)
        if customer is None:
            raise NotFound("No billing account is linked to this login.")
        return customer

    async def customer_by_stripe_id(self, stripe_customer_id: str | None) -> Customer | None:
        return await self.customers.by_stripe_id(stripe_customer_id)

    async def stripe_customers(self) -> list[Customer]:
        """Every customer with a Stripe customer (what `reconcile` walks)."""
        return await self.customers.with_stripe_customer()

    async def cards(self, customer: Customer) -> list[PaymentMethod]:
        return await self.repo.payment_methods(customer.id)

    def _stripe_bills_a_card(self, subscription: Subscription) -> bool:
        """A paid plan that Stripe charges (one set directly, complimentary, charges no card)."""
        plan = self.catalog.plan(subscription.plan_slug)
        return (
            plan is not None
            and subscription.stripe_subscription_id is not None
            and plan_is_paid(plan.is_free, subscription.status)
        )

    def plan_and_interval(self, plan_slug: str, interval: str) -> tuple[Plan, Interval]:
        plan = self.catalog.plan(plan_slug or "")
        if plan is None or not plan.public:
            raise ValidationFailed(
                f"Unknown plan {quoted(plan_slug)}.", code="unknown_plan", field="plan"
            )
        chosen: Interval | None = next((i for i in INTERVALS if i == interval), None)
        if chosen is None or plan.price(chosen) is None:
            raise ValidationFailed(
                f"The {plan.name} plan has no {quoted(interval)} price.", field="interval"
            )
        return plan, chosen

    # Stripe ids -------------------------------------------------------------------------

    async def _on_live_stripe_customer(
        self, customer: Customer, action: Callable[[], Awaitable[T]]
    ) -> T:
        """Run `action` (which uses the customer's Stripe id); when Stripe no longer has that
        customer (deleted at Stripe, its `customer.deleted` webhook not here yet), forget it
        as the webhook would and run `action` once more, on a new Stripe customer."""
        try:
            return await action()
        except StripeNotFound:
            stale = customer.stripe_customer_id
            if stale is None or not await self._stripe_customer_gone(stale):
                raise
        await self.mirror.forget_stripe_customer(stale)
        await self.session.commit()
        return await action()

    async def _stripe_customer_gone(self, stripe_customer_id: str) -> bool:
        try:
            return bool((await self.gateway.retrieve_customer(stripe_customer_id)).get("deleted"))
        except StripeNotFound:
            return True

    async def ensure_stripe_customer(self, customer: Customer) -> str:
        """The customer's Stripe id, creating the Stripe customer on first use (and committing),
        with the billing details and tax IDs our rows hold (app.billing.details_restore)."""
        if customer.stripe_customer_id:
            return customer.stripe_customer_id
        saved = await SavedDetails.of(self.session, customer)
        created = await self.gateway.create_customer(
            email=saved.email,
            name=saved.name,
            address=saved.address,
            metadata={
                "customer_public_id": customer.public_id,
                "external_id": customer.external_id,
            },
            # After a deletion at Stripe a new key: the old one would replay the deleted customer.
            key=idempotency_key(
                "customer",
                customer.public_id,
                *sorted(await self.mirror.deleted_stripe_customers(customer)),
            ),
        )
        await saved.push_tax_ids(self.gateway, created["id"])
        await write_from_here(self.session)  # after the Stripe calls
        customer.stripe_customer_id = created["id"]
        await saved.mirror(self.session)
        await self.session.commit()
        return customer.stripe_customer_id

    async def sync_customer_email(self, customer: Customer, change: str) -> None:
        """Give the Stripe customer (when there is one) the customer's email; `change` names
        this change (a retry of it is one update, a later change back to an earlier address
        another). Stripe's answer changes nothing of ours, so nothing is committed."""
        if not customer.stripe_customer_id or not customer.email:
            return
        details = await BillingDetailsRepository(self.session).details(customer.id)
        if details is not None and details.invoice_email:
            return  # invoices go to the address set on the billing details page, not the login's
        await self.gateway.update_customer_email(
            customer.stripe_customer_id,
            customer.email,
            key=idempotency_key("customer-email", customer.public_id, change),
        )

    async def price_id(self, lookup_key: str) -> str:
        """Stripe's price for a catalog lookup key; syncs the catalog when it is missing."""
        return (await self.price_ids([lookup_key]))[lookup_key]

    async def price_ids(self, lookup_keys: list[str]) -> dict[str, str]:
        """Stripe's prices for catalog lookup keys; syncs the catalog when one is missing."""
        found = await self.gateway.prices_by_lookup_key(lookup_keys)
        if any(key not in found for key in lookup_keys):
            await CatalogSync(self.gateway, self.catalog).run()
            found = await self.gateway.prices_by_lookup_key(lookup_keys)
        for key in lookup_keys:
            if key not in found:
                raise StripeGatewayError(f"Stripe has no price {key!r}; run sync-catalog.")
        return {key: str(found[key]["id"]) for key in lookup_keys}

    # Checkout ---------------------------------------------------------------------------

    def _success_url(self) -> str:
        return f"{self.public_url}/billing/checkout/success?session_id={{CHECKOUT_SESSION_ID}}"

    def _cancel_url(self) -> str:
        return f"{self.public_url}/billing/checkout/canceled"

    @rolls_back_on_error
    async def start_plan_checkout(
        self, customer: Customer, plan_slug: str, interval: str, *, attempt: str = ""
    ) -> ActionResult:
        """Checkout in subscription mode; a customer already paying is sent to the review of
        a plan change instead (nothing changes before its confirm)."""
        return await self._on_live_stripe_customer(
            customer, lambda: self._plan_checkout(customer, plan_slug, interval, attempt)
        )

    async def _plan_checkout(
        self, customer: Customer, plan_slug: str, interval: str, attempt: str
    ) -> ActionResult:
        plan, interval_ = self.plan_and_interval(plan_slug, interval)
        if plan.is_free:
            return await self.change_plan(customer, plan_slug, interval)
        subscription = await self.customers.subscription(customer)
        if subscription.stripe_subscription_id and subscription.status in SubscriptionStatus.live():
            return ActionResult("", redirect_url=review_path(plan.slug, interval_))
        if customer.stripe_customer_id:
            # Our row may lag behind Stripe (a late or failing webhook, a second tab): a live
            # subscription there means the customer already pays, so never open a second one.
            live = await self._newest_live_subscription(customer.stripe_customer_id)
            if live is not None:
                await self.mirror.apply_subscription(live)
                await self.session.commit()
                subscription = await self.customers.subscription(customer)
                if (
                    subscription.stripe_subscription_id
                    and subscription.status in SubscriptionStatus.live()
                ):
                    return ActionResult("", redirect_url=review_path(plan.slug, interval_))
        price = plan.price(interval_)
        assert price is not None
        stripe_customer_id = await self.ensure_stripe_customer(customer)
        attempt = _form_attempt(attempt)
        if await self._close_open_plan_checkouts(stripe_customer_id, attempt):
            # One completed while we looked: the customer pays now; starting over finds
            # that subscription at Stripe (above) and changes its plan.
            return await self._plan_checkout(customer, plan_slug, interval, attempt)
        plan_key = price.lookup_key(plan.slug)
        overage_keys = overage_lookup_keys(plan, interval_)
        price_ids = await self.price_ids([plan_key, *overage_keys])
        # Metered prices (the plan's overage) take no quantity: Stripe bills reported usage.
        line_items = [LineItem(price_ids[plan_key])]
        line_items += [LineItem(price_ids[key], quantity=None) for key in overage_keys]
        trial_days = (plan.trial_days or None) if trial_eligible(subscription) else None

        async def create(attempt: str) -> CheckoutSession:
            return await self.gateway.create_checkout_session(
                mode="subscription",
                customer_id=stripe_customer_id,
                client_reference_id=customer.public_id,
                success_url=self._success_url(),
                cancel_url=self._cancel_url(),
                metadata={
                    "kind": "plan",
                    "customer_public_id": customer.public_id,
                    "plan": plan.slug,
                    "interval": interval_,
                    "attempt": attempt,
                },
                line_items=line_items,
                trial_period_days=trial_days,
                key=idempotency_key(
                    "checkout", "subscription", customer.public_id, plan.slug, interval_, attempt
                ),
            )

        session = await create(attempt)
        current = await self.gateway.retrieve_checkout_session(session["id"])
        if current.get("status") != "open":  # a replay of this form's session, expired since
            session = await create(new_attempt())
        return ActionResult("", redirect_url=session["url"])

    async def _close_open_plan_checkouts(self, stripe_customer_id: str, attempt: str) -> bool:
        """Expire the customer's unpaid plan Checkouts before opening a new one, so at most
        one can be paid: two paid Checkouts (two tabs) would make two subscriptions that
        both bill. The one this form opened (`attempt`: a double submit) stays, to be
        replayed. True when one of them completed meanwhile (the caller starts over)."""
        for open_session in await self.gateway.open_checkout_sessions(stripe_customer_id):
            if open_session.get("mode") != "subscription":
                continue
            if (open_session.get("metadata") or {}).get("attempt") == attempt:
                continue
            try:
                await self.gateway.expire_checkout_session(str(open_session["id"]))
            except StripeGatewayError:
                current = await self.gateway.retrieve_checkout_session(str(open_session["id"]))
                if current.get("status") == "complete":
                    return True
                if current.get("status") == "open":
                    raise
        return False

    @rolls_back_on_error
    async def start_credits_checkout(
        self, customer: Customer, pack_slug: str, *, attempt: str = ""
    ) -> ActionResult:
        return await self._on_live_stripe_customer(
            customer, lambda: self._credits_checkout(customer, pack_slug, attempt)
        )

    async def _credits_checkout(
        self, customer: Customer, pack_slug: str, attempt: str
    ) -> ActionResult:
        pack = self.catalog.credit_packs.get(pack_slug or "")
        if pack is None:
            raise ValidationFailed(f"Unknown credit pack {quoted(pack_slug)}.", field="pack")
        stripe_customer_id = await self.ensure_stripe_customer(customer)
        price_id = await self.price_id(pack.lookup_key)
        # The same form again gets the same session, whatever became of it: it never buys twice.
        attempt = _form_attempt(attempt)
        session = await self.gateway.create_checkout_session(
            mode="payment",
            customer_id=stripe_customer_id,
            client_reference_id=customer.public_id,
            success_url=self._success_url(),
            cancel_url=self._cancel_url(),
            metadata={
                "kind": "credit_pack",
                "customer_public_id": customer.public_id,
                "pack": pack.slug,
            },
            line_items=[LineItem(price_id)],
            key=idempotency_key("checkout", "payment", customer.public_id, pack.slug, attempt),
        )
        return ActionResult("", redirect_url=session["url"])

    @rolls_back_on_error
    async def start_card_setup(self, customer: Customer) -> ActionResult:
        return await self._on_live_stripe_customer(customer, lambda: self._card_setup(customer))

    async def _card_setup(self, customer: Customer) -> ActionResult:
        stripe_customer_id = await self.ensure_stripe_customer(customer)
        session = await self.gateway.create_checkout_session(
            mode="setup",
            customer_id=stripe_customer_id,
            client_reference_id=customer.public_id,
            success_url=self._success_url(),
            cancel_url=self._cancel_url(),
            metadata={"kind": "card", "customer_public_id": customer.public_id},
            currency=customer.currency,
            key=idempotency_key("checkout", "setup", customer.public_id, new_attempt()),
        )
        return ActionResult("", redirect_url=session["url"])

    async def checkout_status(
        self, customer: Customer, session_id: str, *, fetch: bool = True
    ) -> CheckoutStatus:
        """Where a Checkout Session of this customer stands, judged by our ledger, not the redirect.

        `fetch` asks Stripe for the session first (the success page does it once, which also
        proves the session is this customer's); the polling partial reads only our database.
        """
        if not session_id.startswith("cs_") or len(session_id) > 255:
            raise NotFound("Unknown checkout session.")
        mode = "unknown"
        if fetch:
            try:
                stripe_session = await self.gateway.retrieve_checkout_session(session_id)
            except StripeNotFound:
                raise NotFound("Unknown checkout session.") from None
            if not customer.stripe_customer_id or stripe_session.get("customer") != (
                customer.stripe_customer_id
            ):
                raise NotFound("Unknown checkout session.")
            mode = str(stripe_session.get("mode"))
            status = stripe_session.get("status")
            if status == "open" or status == "expired":
                return CheckoutStatus(session_id, mode, status)
        if self.checkout_ledger is None:
            raise RuntimeError("checkout_status needs the event ledger (checkout_ledger)")
        event = await self.checkout_ledger.completed_checkout(session_id)
        if event is not None and event.stripe_customer_id not in (
            None,
            customer.stripe_customer_id,
        ):
            raise NotFound("Unknown checkout session.")
        if event is None or event.status == "received":
            return CheckoutStatus(session_id, mode, "processing")
        mode = str(event.mode or mode)
        if event.status == "failed":
            return CheckoutStatus(session_id, mode, "failed", detail=event.last_error)
        if event.payment_failed:
            return CheckoutStatus(
                session_id,
                mode,
                "payment_failed",
                detail="Your bank declined the payment: nothing was charged and no credits "
                "were added. You can try again with another payment method.",
            )
        subscription = await self.customers.subscription(customer)
        plan = self.catalog.plan(subscription.plan_slug)
        pack = self.catalog.credit_packs.get(event.pack_slug or "")
        if pack is not None and not await self.repo.credits_granted(customer.id, session_id):
            # Completed but not paid yet (a bank debit): credits come with the payment.
            return CheckoutStatus(
                session_id,
                mode,
                "processing",
                detail="Your payment is being confirmed; the credits appear when it clears.",
            )
        meter = self.catalog.meter(pack.meter_code) if pack else None
        return CheckoutStatus(
            session_id,
            mode,
            "done",
            plan=plan,
            subscription=subscription,
            pack_name=pack.name if pack else None,
            credits=pack.credits if pack else None,
            meter_name=meter.name if meter else None,
        )

    # Plan changes -----------------------------------------------------------------------

    async def _newest_live_subscription(self, stripe_customer_id: str) -> StripeSubscription | None:
        """The customer's most recently created live subscription at Stripe, if any."""
        remote = await self.gateway.list_subscriptions(stripe_customer_id)
        live = [s for s in remote if s.get("status") in SubscriptionStatus.live()]
        return max(live, key=created_order, default=None)

    async def live_stripe_subscription(
        self, subscription: Subscription
    ) -> StripeSubscription | None:
        if not subscription.stripe_subscription_id:
            return None
        remote = await self.gateway.retrieve_subscription(subscription.stripe_subscription_id)
        return remote if remote.get("status") in SubscriptionStatus.live() else None

    @rolls_back_on_error
    async def change_plan(self, customer: Customer, plan_slug: str, interval: str) -> ActionResult:
        """Paid → paid now, with proration; paid → free at the end of the period. (The
        customer's pages go through the review first: app.billing.plan_change.)"""
        plan, interval_ = self.plan_and_interval(plan_slug, interval)
        subscription = await self.customers.subscription(customer)
        remote = await self.live_stripe_subscription(subscription)
        if plan.is_free:
            if remote is None:
                return ActionResult(f"You are on the {plan.name} plan.", category="info")
            return await self.cancel(customer)
        if remote is None:
            return await self.start_plan_checkout(customer, plan_slug, interval)
        change = await self.planned_change(remote, plan, interval_)
        if change is None:
            if remote.get("cancel_at_period_end"):
                return await self.resume(customer)
            return ActionResult(f"You are already on {plan.name}.", category="info")
        key = idempotency_key(
            "change-plan", subscription.external_id, change.items[0].price, new_attempt()
        )
        return await self.apply_change(change, key=key)

    async def planned_change(
        self, remote: StripeSubscription, plan: Plan, interval: Interval
    ) -> PlannedChange | None:
        """The update moving the live subscription `remote` to `plan`; None when it has
        nothing to change."""
        items = items_change(self.catalog, remote, plan, interval)
        if items.nothing:
            return None
        price_ids = await self.price_ids([items.plan_key, *items.add])
        return PlannedChange(
            remote=remote,
            plan=plan,
            interval=interval,
            items=items.item_changes(price_ids),
            same_plan=items.same_plan,
            end_trial=change_ends_trial(
                str(remote.get("status")), items.same_plan, plan.trial_days
            ),
        )

    async def apply_change(
        self, change: PlannedChange, *, key: str, proration_date: int | None = None
    ) -> ActionResult:
        """Send the update to Stripe, mirror what it answers and commit."""
        plan = change.plan
        updated = await self.gateway.update_subscription_items(
            change.subscription_id,
            items=change.items,
            proration_behavior=change.proration_behavior,
            payment_behavior=change.payment_behavior,
            metadata={"plan": plan.slug, "interval": change.interval},
            key=key,
            end_trial=change.end_trial,
            proration_date=proration_date,
        )
        await self.mirror.apply_subscription(updated)
        await self.session.commit()
        if change.same_plan:
            return ActionResult(f"Your {plan.name} plan now bills usage beyond its quota.")
        if change.end_trial:
            return ActionResult(
                f"You are now on {plan.name}. It has no trial, so your trial ended and its "
                "first period was charged."
            )
        return ActionResult(f"You are now on {plan.name}. The difference is prorated.")

    @rolls_back_on_error
    async def cancel(self, customer: Customer) -> ActionResult:
        subscription = await self._set_cancel_at_period_end(customer, True)
        if subscription is None:
            return ActionResult(NOTHING_TO_CANCEL, category="info")
        end = subscription.current_period_end
        when = f" on {end:%Y-%m-%d}" if end else " at the end of the period"
        free = self.catalog.default_plan.name
        return ActionResult(f"Your subscription ends{when}; then you move to {free}.")

    @rolls_back_on_error
    async def resume(self, customer: Customer) -> ActionResult:
        if await self._set_cancel_at_period_end(customer, False) is None:
            return ActionResult("You have no subscription to resume.", category="info")
        return ActionResult("Your subscription will renew as usual.")

    @rolls_back_on_error
    async def cancel_now(self, customer: Customer) -> ActionResult:
        """End the live Stripe subscription at once (an account being deleted): no refund,
        the customer is on the free plan from now on."""
        subscription = await self.customers.subscription(customer)
        remote = await self.live_stripe_subscription(subscription)
        if remote is None:
            return ActionResult(NOTHING_TO_CANCEL, category="info")
        schedule_id = ref_id(remote.get("schedule"))
        if schedule_id:  # the end replaces a scheduled plan change
            await self.gateway.release_subscription_schedule(
                schedule_id, key=idempotency_key("release-schedule", schedule_id)
            )
        ended = await self.gateway.cancel_subscription_now(
            remote["id"], key=idempotency_key("cancel-now", remote["id"])
        )
        await self.mirror.apply_subscription(ended)
        await self.session.commit()
        return ActionResult("Your subscription has ended.")

    async def _set_cancel_at_period_end(
        self, customer: Customer, cancel: bool
    ) -> Subscription | None:
        """Cancel at period end (or undo it) at Stripe and mirror it; None without a live
        Stripe subscription."""
        subscription = await self.customers.subscription(customer)
        remote = await self.live_stripe_subscription(subscription)
        if remote is None:
            return None
        action = "cancel" if cancel else "resume"
        schedule_id = ref_id(remote.get("schedule"))
        if cancel and schedule_id:  # the plan's end replaces a scheduled plan change
            await self.gateway.release_subscription_schedule(
                schedule_id, key=idempotency_key("release-schedule", schedule_id)
            )
        updated = await self.gateway.set_cancel_at_period_end(
            remote["id"], cancel, key=idempotency_key(action, remote["id"], new_attempt())
        )
        await self.mirror.apply_subscription(updated)
        await self.session.commit()
        return subscription

    # Cards ------------------------------------------------------------------------------

    async def _owned_card(self, customer: Customer, payment_method_id: str) -> PaymentMethod:
        card = await self.repo.card(customer.id, payment_method_id)
        if card is not None:
            return card
        # Not mirrored yet (the webhook may still be on its way): ask Stripe whose it is.
        if customer.stripe_customer_id and payment_method_id.startswith("pm_"):
            try:
                owner = ref_id(
                    (await self.gateway.retrieve_payment_method(payment_method_id)).get("customer")
                )
            except StripeNotFound:
                owner = None
            if owner == customer.stripe_customer_id:
                await self.mirror.sync_cards(customer)
                card = await self.repo.card(customer.id, payment_method_id)
                if card is not None:
                    return card
        raise NotFound("No such payment method on your account.")

    @rolls_back_on_error
    async def set_default_card(self, customer: Customer, payment_method_id: str) -> ActionResult:
        card = await self._owned_card(customer, payment_method_id)
        assert customer.stripe_customer_id is not None
        await self.mirror.make_default_card(customer, card.stripe_payment_method_id)
        await self.mirror.sync_cards(customer)
        await self.session.commit()
        return ActionResult(f"{card.label} is now your default payment method.")

    @rolls_back_on_error
    async def remove_card(self, customer: Customer, payment_method_id: str) -> ActionResult:
        card = await self._owned_card(customer, payment_method_id)
        # Two removals at once must not both see two cards. On PostgreSQL the subscription
        # row's lock serializes them (held across the Stripe call, it blocks nothing else).
        # SQLite can only lock the whole database, which would stall every write, usage
        # included, for the length of a Stripe call: there a per-customer lock in this
        # process serializes them (an SQLite deployment runs one web process).
        async with _card_lock(customer.id):
            await self.session.commit()
            subscription = await self.customers.locked_subscription(customer)
            cards = await self.repo.payment_methods(customer.id)
            if not can_remove_card(len(cards), self._stripe_bills_a_card(subscription)):
                await self.session.commit()  # releases the row lock; nothing was written
                return ActionResult(KEEP_LAST_CARD, category="error")
            await self.gateway.detach_payment_method(
                card.stripe_payment_method_id,
                key=idempotency_key("detach", card.stripe_payment_method_id),
            )
            others = [c for c in cards if c.id != card.id]
            if card.is_default and others:
                await self.mirror.make_default_card(customer, others[0].stripe_payment_method_id)
            await self.mirror.sync_cards(customer)
            await self.session.commit()
        return ActionResult(f"{card.label} was removed.")
