"""Billing rules: checkout, plan changes, cards, and mirroring Stripe's objects into ours.

Two kinds of methods live here:

- **User actions** (`start_*_checkout`, `change_plan`, `cancel`, `resume`, `set_default_card`,
  `remove_card`, `portal_url`): they call Stripe through the gateway and own their
  transaction (commit at the end), because a Stripe call cannot be rolled back and the ids
  it returns (a new Stripe customer) must be stored before the user leaves for Stripe.
- **Mirroring** (`apply_subscription`, `apply_invoice`, `sync_cards`, `apply_checkout_session`,
  `reconcile_customer`): they take Stripe's current state of an object and make our rows
  match it. They only flush; the webhook ledger or the reconcile command commits. They
  compare state rather than trusting the order events arrive in, so replaying one, or
  receiving them shuffled or twice, converges to the same rows.

Idempotency keys: calls that happen once per object of ours use a key made only of our ids
(`customer:<public_id>`, `detach:<pm>`); user actions that may legitimately repeat (buying a
second credit pack, cancel → resume → cancel) add a fresh attempt id, which the SDK's own
retries of that call reuse.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast
from weakref import WeakValueDictionary

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.catalog_sync import CatalogSync
from app.billing.models import Invoice, PaymentMethod
from app.billing.repository import BillingRepository
from app.billing.rules import (
    KEEP_LAST_CARD,
    NOTHING_TO_CANCEL,
    can_remove_card,
    change_ends_trial,
)
from app.catalog.models import Catalog, Interval, Plan
from app.customers.models import Customer, Subscription
from app.customers.service import CustomerService
from app.db.engine import write_from_here
from app.lib.clock import utcnow
from app.lib.errors import NotFound, ValidationFailed, quoted
from app.metering.models import CreditGrant
from app.metering.service import MeteringService
from app.stripe.gateway import (
    ItemChange,
    LineItem,
    StripeGateway,
    StripeGatewayError,
    StripeNotFound,
    idempotency_key,
)
from app.stripe_sync.models import StripeEvent

Json = dict[str, Any]

# Stripe subscription statuses.
LIVE_STATUSES = frozenset({"trialing", "active", "past_due"})
_CARD_LOCKS: WeakValueDictionary[int, asyncio.Lock] = WeakValueDictionary()


def _card_lock(customer_id: int) -> asyncio.Lock:
    lock = _CARD_LOCKS.get(customer_id)
    if lock is None:
        lock = _CARD_LOCKS[customer_id] = asyncio.Lock()
    return lock


# A final payment failure (`unpaid`) or the end of the subscription puts the customer on the free plan.
ENDED_STATUSES = frozenset({"canceled", "incomplete_expired", "unpaid"})
INTERVALS: tuple[Interval, ...] = ("month", "year")


def _ts(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    return datetime.fromtimestamp(int(value), tz=UTC)


def ref_id(value: Any) -> str | None:
    """An expandable field: an id, or the expanded object's id."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _created_order(sub: Json) -> tuple[int, str]:
    """Orders subscriptions by Stripe's `created` (the id breaks a tie)."""
    return int(sub.get("created") or 0), str(sub.get("id") or "")


def _attempt() -> str:
    return uuid.uuid4().hex[:16]


def _lookup_key(item: Json) -> str | None:
    key = (item.get("price") or {}).get("lookup_key")
    return key if isinstance(key, str) and key else None


def _is_metered(item: Json) -> bool:
    recurring = (item.get("price") or {}).get("recurring") or {}
    return recurring.get("usage_type") == "metered"


def plan_item(catalog: Catalog, sub: Json) -> Json | None:
    """The subscription item that says which plan it is: the licensed item whose price's
    lookup key is a plan price. A plan with overage also has metered items (one per billed
    meter); they carry no plan, and Stripe does not promise the items' order."""
    items: list[Json] = list((sub.get("items") or {}).get("data") or [])
    for item in items:
        key = _lookup_key(item)
        if key and catalog.plan_for_lookup_key(key) is not None:
            return item
    licensed = [item for item in items if not _is_metered(item)]
    candidates = licensed or items
    return candidates[0] if candidates else None


@dataclass(frozen=True)
class ActionResult:
    """What a user action did: a message to flash, and where to send the browser."""

    message: str
    redirect_url: str | None = None
    category: str = "success"


@dataclass(frozen=True)
class CheckoutStatus:
    session_id: str
    mode: str
    state: Literal["processing", "done", "failed", "open", "expired"]
    plan: Plan | None = None
    subscription: Subscription | None = None
    pack_name: str | None = None
    credits: int | None = None
    meter_name: str | None = None
    detail: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class BillingService:
    def __init__(
        self,
        session: AsyncSession,
        catalog: Catalog,
        gateway: StripeGateway,
        public_url: str,
        metering: MeteringService | None = None,
    ) -> None:
        self.session = session
        self.catalog = catalog
        self.gateway = gateway
        self.public_url = public_url.rstrip("/")
        self.metering = metering
        self.customers = CustomerService(session, catalog)

    # Lookups ----------------------------------------------------------------------------

    async def customer_for_user(self, user_id: int) -> Customer:
        customer = await self.customers.for_user(user_id)
        if customer is None:
            raise NotFound("No billing account is linked to this login.")
        return customer

    async def customer_by_stripe_id(self, stripe_customer_id: str | None) -> Customer | None:
        if not stripe_customer_id:
            return None
        return cast(
            Customer | None,
            await self.session.scalar(
                select(Customer).where(Customer.stripe_customer_id == stripe_customer_id)
            ),
        )

    async def card_owner(self, stripe_payment_method_id: str) -> str | None:
        """The Stripe customer id of whoever has this card in our mirror (a detached card no
        longer names its customer)."""
        return await BillingRepository(self.session).stripe_customer_of_card(
            stripe_payment_method_id
        )

    async def _customer_by_public_id(self, public_id: str | None) -> Customer | None:
        if not public_id:
            return None
        return cast(
            Customer | None,
            await self.session.scalar(select(Customer).where(Customer.public_id == public_id)),
        )

    async def _locked_subscription(self, customer: Customer) -> Subscription:
        """The customer's subscription row, locked while we rewrite it (PostgreSQL: the row;
        SQLite: the write lock, taken before the read so it sees the latest commit)."""
        await write_from_here(self.session)
        row = await self.session.scalar(
            select(Subscription).where(Subscription.customer_id == customer.id).with_for_update()
        )
        return row if row is not None else await self.customers.subscription(customer)

    async def cards(self, customer: Customer) -> list[PaymentMethod]:
        query = (
            select(PaymentMethod)
            .where(PaymentMethod.customer_id == customer.id)
            .order_by(PaymentMethod.is_default.desc(), PaymentMethod.created_at.desc())
        )
        return list(await self.session.scalars(query))

    def plan_is_paid(self, subscription: Subscription) -> bool:
        plan = self.catalog.plan(subscription.plan_slug)
        return (
            plan is not None
            and not plan.is_free
            and subscription.stripe_subscription_id is not None
            and subscription.status in LIVE_STATUSES
        )

    def _plan_and_interval(self, plan_slug: str, interval: str) -> tuple[Plan, Interval]:
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

    async def ensure_stripe_customer(self, customer: Customer) -> str:
        """The customer's Stripe id, creating the Stripe customer on first use (and committing)."""
        if customer.stripe_customer_id:
            return customer.stripe_customer_id
        created = await self.gateway.create_customer(
            email=customer.email,
            name=customer.name,
            metadata={
                "customer_public_id": customer.public_id,
                "external_id": customer.external_id,
            },
            key=idempotency_key("customer", customer.public_id),
        )
        customer.stripe_customer_id = created["id"]
        await self.session.commit()
        return customer.stripe_customer_id

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

    @staticmethod
    def overage_lookup_keys(plan: Plan, interval: Interval) -> list[str]:
        """The metered prices a subscription to `plan` carries besides the plan's price."""
        return [plan.overage_lookup_key(q.meter_code, interval) for q in plan.overage_quotas()]

    # Checkout ---------------------------------------------------------------------------

    def _success_url(self) -> str:
        return f"{self.public_url}/billing/checkout/success?session_id={{CHECKOUT_SESSION_ID}}"

    def _cancel_url(self) -> str:
        return f"{self.public_url}/billing/checkout/canceled"

    async def start_plan_checkout(
        self, customer: Customer, plan_slug: str, interval: str
    ) -> ActionResult:
        """Checkout in subscription mode; a customer already paying gets a plan change instead."""
        plan, interval_ = self._plan_and_interval(plan_slug, interval)
        if plan.is_free:
            return await self.change_plan(customer, plan_slug, interval)
        subscription = await self.customers.subscription(customer)
        if subscription.stripe_subscription_id and subscription.status in LIVE_STATUSES:
            return await self.change_plan(customer, plan_slug, interval)
        if customer.stripe_customer_id:
            # Our row may lag behind Stripe (a late or failing webhook, a second tab): a live
            # subscription there means the customer already pays, so never open a second one.
            live = await self._newest_live_subscription(customer.stripe_customer_id)
            if live is not None:
                await self.apply_subscription(live)
                await self.session.commit()
                subscription = await self.customers.subscription(customer)
                if subscription.stripe_subscription_id and subscription.status in LIVE_STATUSES:
                    return await self.change_plan(customer, plan_slug, interval)
        price = plan.price(interval_)
        assert price is not None
        stripe_customer_id = await self.ensure_stripe_customer(customer)
        if await self._close_open_plan_checkouts(stripe_customer_id):
            # One completed while we looked: the customer pays now; starting over finds
            # that subscription at Stripe (above) and changes its plan.
            return await self.start_plan_checkout(customer, plan_slug, interval)
        plan_key = price.lookup_key(plan.slug)
        overage_keys = self.overage_lookup_keys(plan, interval_)
        price_ids = await self.price_ids([plan_key, *overage_keys])
        # Metered prices (the plan's overage) take no quantity: Stripe bills reported usage.
        line_items = [LineItem(price_ids[plan_key])]
        line_items += [LineItem(price_ids[key], quantity=None) for key in overage_keys]
        had_subscription = bool(
            subscription.stripe_subscription_id
            or (subscription.metadata_ or {}).get("last_stripe_subscription_id")
        )
        session = await self.gateway.create_checkout_session(
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
            },
            line_items=line_items,
            trial_period_days=None if had_subscription else (plan.trial_days or None),
            key=idempotency_key(
                "checkout", "subscription", customer.public_id, plan.slug, interval_, _attempt()
            ),
        )
        return ActionResult("", redirect_url=session["url"])

    async def _close_open_plan_checkouts(self, stripe_customer_id: str) -> bool:
        """Expire the customer's unpaid plan Checkouts before opening a new one, so at most
        one can be paid: two paid Checkouts (two tabs) would make two subscriptions that
        both bill. True when one of them completed meanwhile (the caller starts over)."""
        for open_session in await self.gateway.open_checkout_sessions(stripe_customer_id):
            if open_session.get("mode") != "subscription":
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

    async def start_credits_checkout(self, customer: Customer, pack_slug: str) -> ActionResult:
        pack = self.catalog.credit_packs.get(pack_slug or "")
        if pack is None:
            raise ValidationFailed(f"Unknown credit pack {quoted(pack_slug)}.", field="pack")
        stripe_customer_id = await self.ensure_stripe_customer(customer)
        price_id = await self.price_id(pack.lookup_key)
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
            key=idempotency_key("checkout", "payment", customer.public_id, pack.slug, _attempt()),
        )
        return ActionResult("", redirect_url=session["url"])

    async def start_card_setup(self, customer: Customer) -> ActionResult:
        stripe_customer_id = await self.ensure_stripe_customer(customer)
        session = await self.gateway.create_checkout_session(
            mode="setup",
            customer_id=stripe_customer_id,
            client_reference_id=customer.public_id,
            success_url=self._success_url(),
            cancel_url=self._cancel_url(),
            metadata={"kind": "card", "customer_public_id": customer.public_id},
            currency=customer.currency,
            key=idempotency_key("checkout", "setup", customer.public_id, _attempt()),
        )
        return ActionResult("", redirect_url=session["url"])

    async def portal_url(self, customer: Customer) -> str:
        stripe_customer_id = await self.ensure_stripe_customer(customer)
        session = await self.gateway.create_portal_session(
            customer_id=stripe_customer_id,
            return_url=f"{self.public_url}/billing",
            key=idempotency_key("portal", customer.public_id, _attempt()),
        )
        return str(session["url"])

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
            if stripe_session.get("status") in ("open", "expired"):
                return CheckoutStatus(session_id, mode, stripe_session["status"])
        event = await self.session.scalar(
            select(StripeEvent)
            .where(
                StripeEvent.type == "checkout.session.completed",
                StripeEvent.object_id == session_id,
            )
            .limit(1)
        )
        if event is not None and event.stripe_customer_id not in (
            None,
            customer.stripe_customer_id,
        ):
            raise NotFound("Unknown checkout session.")
        if event is None or event.status == "received":
            return CheckoutStatus(session_id, mode, "processing")
        obj = (event.payload.get("data") or {}).get("object") or {}
        mode = str(obj.get("mode") or mode)
        if event.status == "failed":
            return CheckoutStatus(session_id, mode, "failed", detail=event.last_error)
        subscription = await self.customers.subscription(customer)
        plan = self.catalog.plan(subscription.plan_slug)
        metadata = obj.get("metadata") or {}
        pack = self.catalog.credit_packs.get(str(metadata.get("pack") or ""))
        if pack is not None and not await self._pack_granted(customer, session_id):
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

    async def _pack_granted(self, customer: Customer, session_id: str) -> bool:
        grant = await self.session.scalar(
            select(CreditGrant.id).where(
                CreditGrant.customer_id == customer.id, CreditGrant.transaction_id == session_id
            )
        )
        return grant is not None

    # Plan changes -----------------------------------------------------------------------

    async def _newest_live_subscription(self, stripe_customer_id: str) -> Json | None:
        """The customer's most recently created live subscription at Stripe, if any."""
        remote = await self.gateway.list_subscriptions(stripe_customer_id)
        live = [s for s in remote if s.get("status") in LIVE_STATUSES]
        return max(live, key=_created_order, default=None)

    async def _live_stripe_subscription(self, subscription: Subscription) -> Json | None:
        if not subscription.stripe_subscription_id:
            return None
        remote = await self.gateway.retrieve_subscription(subscription.stripe_subscription_id)
        return remote if remote.get("status") in LIVE_STATUSES else None

    async def change_plan(self, customer: Customer, plan_slug: str, interval: str) -> ActionResult:
        """Paid → paid now, with proration; paid → free at the end of the period."""
        plan, interval_ = self._plan_and_interval(plan_slug, interval)
        subscription = await self.customers.subscription(customer)
        remote = await self._live_stripe_subscription(subscription)
        if plan.is_free:
            if remote is None:
                return ActionResult(f"You are on the {plan.name} plan.", category="info")
            return await self.cancel(customer)
        if remote is None:
            return await self.start_plan_checkout(customer, plan_slug, interval)
        item = plan_item(self.catalog, remote)
        if item is None:
            raise StripeGatewayError("The Stripe subscription has no items.")
        price = plan.price(interval_)
        assert price is not None
        lookup_key = price.lookup_key(plan.slug)
        # The target plan's metered overage prices: keep those already there, add the
        # missing ones, remove the others (a metered item is not prorated; Stripe bills
        # the usage reported to its meter).
        wanted = self.overage_lookup_keys(plan, interval_)
        metered = [
            other
            for other in (remote.get("items") or {}).get("data") or []
            if other["id"] != item["id"] and _is_metered(other)
        ]
        have = {_lookup_key(other) for other in metered}
        removed = [
            ItemChange(id=other["id"], deleted=True)
            for other in metered
            if _lookup_key(other) not in wanted
        ]
        missing = [key for key in wanted if key not in have]
        same_plan = _lookup_key(item) == lookup_key
        if same_plan and not removed and not missing:
            if remote.get("cancel_at_period_end"):
                return await self.resume(customer)
            return ActionResult(f"You are already on {plan.name}.", category="info")
        end_trial = change_ends_trial(str(remote.get("status")), same_plan, plan.trial_days)
        price_ids = await self.price_ids([lookup_key, *missing])
        changes = [ItemChange(id=item["id"], price=price_ids[lookup_key]), *removed]
        changes += [ItemChange(price=price_ids[key]) for key in missing]
        updated = await self.gateway.update_subscription_items(
            remote["id"],
            items=changes,
            # Only the licensed item is prorated; the same plan only gains its metered items.
            proration_behavior="none" if same_plan else "always_invoice",
            # A new plan takes effect only if its proration is paid: a declined card makes
            # Stripe refuse the update (StripeCardError) and the subscription stays as it was.
            payment_behavior=None if same_plan else "error_if_incomplete",
            metadata={"plan": plan.slug, "interval": interval_},
            key=idempotency_key("change-plan", subscription.external_id, lookup_key, _attempt()),
            end_trial=end_trial,
        )
        await self.apply_subscription(updated)
        await self.session.commit()
        if same_plan:
            return ActionResult(f"Your {plan.name} plan now bills usage beyond its quota.")
        if end_trial:
            return ActionResult(
                f"You are now on {plan.name}. It has no trial, so your trial ended and its "
                "first period was charged."
            )
        return ActionResult(f"You are now on {plan.name}. The difference is prorated.")

    async def cancel(self, customer: Customer) -> ActionResult:
        subscription = await self._set_cancel_at_period_end(customer, True)
        if subscription is None:
            return ActionResult(NOTHING_TO_CANCEL, category="info")
        end = subscription.current_period_end
        when = f" on {end:%Y-%m-%d}" if end else " at the end of the period"
        free = self.catalog.default_plan.name
        return ActionResult(f"Your subscription ends{when}; then you move to {free}.")

    async def resume(self, customer: Customer) -> ActionResult:
        if await self._set_cancel_at_period_end(customer, False) is None:
            return ActionResult("You have no subscription to resume.", category="info")
        return ActionResult("Your subscription will renew as usual.")

    async def _set_cancel_at_period_end(
        self, customer: Customer, cancel: bool
    ) -> Subscription | None:
        """Cancel at period end (or undo it) at Stripe and mirror it; None without a live
        Stripe subscription."""
        subscription = await self.customers.subscription(customer)
        remote = await self._live_stripe_subscription(subscription)
        if remote is None:
            return None
        action = "cancel" if cancel else "resume"
        updated = await self.gateway.set_cancel_at_period_end(
            remote["id"], cancel, key=idempotency_key(action, remote["id"], _attempt())
        )
        await self.apply_subscription(updated)
        await self.session.commit()
        return subscription

    # Cards ------------------------------------------------------------------------------

    async def _owned_card(self, customer: Customer, payment_method_id: str) -> PaymentMethod:
        card = await self.session.scalar(
            select(PaymentMethod).where(
                PaymentMethod.customer_id == customer.id,
                PaymentMethod.stripe_payment_method_id == payment_method_id,
            )
        )
        if card is not None:
            return card
        # Not mirrored yet (the webhook may still be on its way): ask Stripe whose it is.
        if customer.stripe_customer_id and payment_method_id.startswith("pm_"):
            try:
                remote = await self.gateway.retrieve_payment_method(payment_method_id)
            except StripeNotFound:
                remote = {}
            if remote.get("customer") == customer.stripe_customer_id:
                await self.sync_cards(customer)
                card = await self.session.scalar(
                    select(PaymentMethod).where(
                        PaymentMethod.customer_id == customer.id,
                        PaymentMethod.stripe_payment_method_id == payment_method_id,
                    )
                )
                if card is not None:
                    return card
        raise NotFound("No such card on your account.")

    async def set_default_card(self, customer: Customer, payment_method_id: str) -> ActionResult:
        card = await self._owned_card(customer, payment_method_id)
        assert customer.stripe_customer_id is not None
        await self._make_default(customer, card.stripe_payment_method_id)
        await self.sync_cards(customer)
        await self.session.commit()
        return ActionResult(f"{card.brand.title()} •••• {card.last4} is now your default card.")

    async def _make_default(self, customer: Customer, payment_method_id: str) -> None:
        assert customer.stripe_customer_id is not None
        attempt = _attempt()
        await self.gateway.set_default_payment_method(
            customer.stripe_customer_id,
            payment_method_id,
            key=idempotency_key("default-card", customer.public_id, payment_method_id, attempt),
        )
        subscription = await self.customers.subscription(customer)
        if subscription.stripe_subscription_id and subscription.status in LIVE_STATUSES:
            await self.gateway.set_subscription_payment_method(
                subscription.stripe_subscription_id,
                payment_method_id,
                key=idempotency_key(
                    "sub-card", subscription.external_id, payment_method_id, attempt
                ),
            )

    async def remove_card(self, customer: Customer, payment_method_id: str) -> ActionResult:
        card = await self._owned_card(customer, payment_method_id)
        # Two removals at once must not both see two cards. On PostgreSQL the subscription
        # row's lock serializes them (held across the Stripe call, it blocks nothing else).
        # SQLite can only lock the whole database, which would stall every write, usage
        # included, for the length of a Stripe call: there a per-customer lock in this
        # process serializes them (an SQLite deployment runs one web process).
        async with _card_lock(customer.id):
            await self.session.commit()
            subscription = await self._locked_subscription(customer)
            cards = await self.cards(customer)
            if not can_remove_card(len(cards), self.plan_is_paid(subscription)):
                await self.session.commit()  # releases the row lock; nothing was written
                return ActionResult(KEEP_LAST_CARD, category="error")
            await self.gateway.detach_payment_method(
                card.stripe_payment_method_id,
                key=idempotency_key("detach", card.stripe_payment_method_id),
            )
            others = [c for c in cards if c.id != card.id]
            if card.is_default and others:
                await self._make_default(customer, others[0].stripe_payment_method_id)
            await self.sync_cards(customer)
            await self.session.commit()
        return ActionResult(f"{card.brand.title()} •••• {card.last4} was removed.")

    # Mirroring Stripe -------------------------------------------------------------------

    async def _customer_of(self, obj: Json) -> Customer | None:
        customer = await self.customer_by_stripe_id(ref_id(obj.get("customer")))
        if customer is None:
            metadata = obj.get("metadata") or {}
            customer = await self._customer_by_public_id(
                metadata.get("customer_public_id") or obj.get("client_reference_id")
            )
            stripe_customer_id = ref_id(obj.get("customer"))
            if customer is not None and stripe_customer_id and not customer.stripe_customer_id:
                customer.stripe_customer_id = stripe_customer_id
        return customer

    async def apply_subscription(self, sub: Json, *, seen_at: int | None = None) -> str:
        """Make our subscription row match Stripe's subscription `sub` (its current state)."""
        customer = await self._customer_of(sub)
        if customer is None:
            return "ignored: unknown customer"
        row = await self._locked_subscription(customer)
        status = str(sub.get("status"))
        sub_id = str(sub["id"])
        if status not in LIVE_STATUSES and row.stripe_subscription_id != sub_id:
            # Not the customer's current subscription (another one, or none: a plan set
            # directly, e.g. by an admin): its end changes nothing.
            return f"ignored: {sub_id} is {status}, not the customer's subscription"
        if row.stripe_subscription_id not in (None, sub_id) and status in LIVE_STATUSES:
            # Two live subscriptions (e.g. two Checkouts): keep the newer one, whatever order
            # their events arrive in; the older one wins only once the newer one has ended.
            try:
                current: Json | None = await self.gateway.retrieve_subscription(
                    str(row.stripe_subscription_id)
                )
            except StripeNotFound:
                current = None
            if (
                current is not None
                and current.get("status") in LIVE_STATUSES
                and _created_order(current) > _created_order(sub)
            ):
                return f"ignored: {sub_id} is older than the live {row.stripe_subscription_id}"
        if status in ENDED_STATUSES:
            self._to_free(row, sub)
            self._stamp(row, seen_at)
            await self.session.flush()
            return f"ended: {sub_id} is {status}; now on {row.plan_slug}"
        if status not in LIVE_STATUSES:  # incomplete: wait until the first payment settles
            return f"ignored: {sub_id} is {status}"
        item = plan_item(self.catalog, sub)
        if item is None:
            raise ValueError(f"subscription {sub_id} has no items")
        lookup_key = _lookup_key(item)
        found = self.catalog.plan_for_lookup_key(lookup_key) if lookup_key else None
        if found is None:
            raise ValueError(
                f"subscription {sub_id}: price lookup_key {lookup_key!r} is not a plan"
            )
        plan, price = found
        row.plan_slug = plan.slug
        row.interval = price.interval
        row.status = status
        row.stripe_subscription_id = sub_id
        row.current_period_start = _ts(item.get("current_period_start"))
        row.current_period_end = _ts(item.get("current_period_end"))
        row.trial_end = _ts(sub.get("trial_end")) if status == "trialing" else None
        row.cancel_at_period_end = bool(sub.get("cancel_at_period_end") or sub.get("cancel_at"))
        row.canceled_at = _ts(sub.get("canceled_at"))
        row.metadata_ = {
            **(row.metadata_ or {}),
            "stripe_customer_id": ref_id(sub.get("customer")) or "",
        }
        self._stamp(row, seen_at)
        await self.session.flush()
        return f"applied: {sub_id} {status} on {plan.slug}/{price.interval}"

    def _to_free(self, row: Subscription, sub: Json) -> None:
        row.metadata_ = {
            **(row.metadata_ or {}),
            "last_stripe_subscription_id": str(sub["id"]),
            "ended_status": str(sub.get("status")),
        }
        row.plan_slug = self.catalog.default_plan.slug
        row.interval = "month"
        row.status = "active"
        row.stripe_subscription_id = None
        row.current_period_start = None
        row.current_period_end = None
        row.trial_end = None
        row.cancel_at_period_end = False
        row.canceled_at = _ts(sub.get("ended_at") or sub.get("canceled_at")) or utcnow()

    @staticmethod
    def _stamp(row: Subscription, seen_at: int | None) -> None:
        if seen_at is not None:
            row.stripe_state_at = max(row.stripe_state_at or 0, seen_at)

    async def apply_invoice(self, inv: Json, *, seen_at: int | None = None) -> str:
        customer = await self._customer_of(inv)
        if customer is None:
            return "ignored: unknown customer"
        row = await self.session.scalar(
            select(Invoice).where(Invoice.stripe_invoice_id == inv["id"])
        )
        if row is None:
            row = Invoice(customer_id=customer.id, stripe_invoice_id=inv["id"])
            self.session.add(row)
        parent = inv.get("parent") or {}
        details = parent.get("subscription_details") or {}
        lines = (inv.get("lines") or {}).get("data") or []
        period = (lines[0].get("period") if lines else None) or {}
        row.customer_id = customer.id
        row.stripe_subscription_id = ref_id(details.get("subscription")) or ref_id(
            inv.get("subscription")
        )
        row.number = inv.get("number")
        row.status = str(inv.get("status") or "draft")
        row.currency = str(inv.get("currency") or customer.currency)
        row.total = int(inv.get("total") or 0)
        row.amount_due = int(inv.get("amount_due") or 0)
        row.amount_paid = int(inv.get("amount_paid") or 0)
        row.period_start = _ts(period.get("start") or inv.get("period_start"))
        row.period_end = _ts(period.get("end") or inv.get("period_end"))
        row.hosted_invoice_url = inv.get("hosted_invoice_url")
        row.invoice_pdf = inv.get("invoice_pdf")
        description = inv.get("description") or (lines[0].get("description") if lines else None)
        row.description = (description or "")[:500] or None
        row.created_at = _ts(inv.get("created")) or utcnow()
        if seen_at is not None:
            row.stripe_state_at = max(row.stripe_state_at or 0, seen_at)
        await self.session.flush()
        return f"applied: invoice {inv['id']} {row.status}"

    async def sync_cards(self, customer: Customer) -> str:
        """Mirror the customer's cards and default card from Stripe (adds, updates, removes)."""
        if not customer.stripe_customer_id:
            return "ignored: no Stripe customer"
        remote_customer = await self.gateway.retrieve_customer(customer.stripe_customer_id)
        if remote_customer.get("deleted"):
            remote_cards: list[Json] = []
            default_id = None
        else:
            remote_cards = await self.gateway.list_cards(customer.stripe_customer_id)
            settings = remote_customer.get("invoice_settings") or {}
            default_id = ref_id(settings.get("default_payment_method"))
        existing = {
            row.stripe_payment_method_id: row
            for row in await self.session.scalars(
                select(PaymentMethod).where(PaymentMethod.customer_id == customer.id)
            )
        }
        seen: set[str] = set()
        for pm in remote_cards:
            card = pm.get("card") or {}
            row = existing.get(pm["id"])
            if row is None:
                # A card can move between customers only by detaching; take it over.
                await self.session.execute(
                    delete(PaymentMethod).where(PaymentMethod.stripe_payment_method_id == pm["id"])
                )
                row = PaymentMethod(customer_id=customer.id, stripe_payment_method_id=pm["id"])
                row.created_at = _ts(pm.get("created")) or utcnow()
                self.session.add(row)
            row.brand = str(card.get("brand") or "card")[:32]
            row.last4 = str(card.get("last4") or "")[:4]
            row.exp_month = card.get("exp_month")
            row.exp_year = card.get("exp_year")
            row.is_default = pm["id"] == default_id
            seen.add(pm["id"])
        for pm_id, row in existing.items():
            if pm_id not in seen:
                await self.session.delete(row)
        await self.session.flush()
        return f"synced: {len(seen)} card(s), default {default_id}"

    async def apply_checkout_session(self, cs: Json, *, seen_at: int | None = None) -> str:
        """What a completed Checkout means for us: a subscription, credits or a new card."""
        customer = await self._customer_of(cs)
        if customer is None:
            return "ignored: unknown customer"
        if cs.get("status") != "complete":
            return f"ignored: session is {cs.get('status')}"
        mode = cs.get("mode")
        outcomes: list[str] = []
        if mode == "subscription" and ref_id(cs.get("subscription")):
            remote = await self.gateway.retrieve_subscription(str(ref_id(cs["subscription"])))
            outcomes.append(await self.apply_subscription(remote, seen_at=seen_at))
        elif mode == "payment":
            outcomes.append(await self._grant_pack(customer, cs))
            if ref_id(cs.get("invoice")):
                remote = await self.gateway.retrieve_invoice(str(ref_id(cs["invoice"])))
                outcomes.append(await self.apply_invoice(remote, seen_at=seen_at))
        elif mode == "setup":
            outcomes.append(await self.sync_cards(customer))
            cards = await self.cards(customer)
            if cards and not any(card.is_default for card in cards):
                await self._make_default(customer, cards[0].stripe_payment_method_id)
                outcomes.append(await self.sync_cards(customer))
        return "; ".join(outcomes) or f"ignored: mode {mode}"

    async def _grant_pack(self, customer: Customer, cs: Json) -> str:
        metadata = cs.get("metadata") or {}
        if metadata.get("kind") != "credit_pack":
            return "ignored: not a credit pack"
        if cs.get("payment_status") != "paid":
            return f"ignored: payment is {cs.get('payment_status')}"
        pack = self.catalog.credit_packs.get(str(metadata.get("pack")))
        if pack is None:
            raise ValueError(f"unknown credit pack {metadata.get('pack')!r}")
        if self.metering is None:
            raise RuntimeError("credits need the metering service")
        # Derived from the session, not the clock, so a replay asks for exactly the same grant.
        bought_at = _ts(cs.get("created")) or utcnow()
        expires_at = (
            bought_at + timedelta(days=pack.expires_after_days) if pack.expires_after_days else None
        )
        # The grant commits in the metering writer's own transaction; end ours first, so our
        # later writes do not run on a snapshot older than that commit (SQLite refuses that).
        await self.session.commit()
        result = await self.metering.grant_credits(
            customer.external_id,
            pack.meter_code,
            pack.credits,
            reason=f"Bought {pack.name}",
            transaction_id=str(cs["id"]),
            expires_at=expires_at,
            source="purchase",
        )
        return f"credits: {pack.credits} {pack.meter_code}" + (
            " (already granted)" if result.replayed else ""
        )

    # Reconcile --------------------------------------------------------------------------

    async def reconcile_customer(self, customer: Customer, *, repair: bool = True) -> list[str]:
        """Compare this customer's subscription, invoices and cards with Stripe's; list drift.

        With `repair`, our rows are made to match (and flushed); otherwise nothing changes.
        """
        if not customer.stripe_customer_id:
            return []
        drift: list[str] = []
        label = customer.external_id
        row = await self.customers.subscription(customer)
        before = _subscription_snapshot(row)
        remote_subs = await self.gateway.list_subscriptions(customer.stripe_customer_id)
        live = [s for s in remote_subs if s.get("status") in LIVE_STATUSES]
        live.sort(key=_created_order, reverse=True)
        if len(live) > 1:
            # Not repaired here: which one to end, and how to refund, is a person's call.
            extra = ", ".join(str(s["id"]) for s in live[1:])
            drift.append(
                f"{label}: {len(live)} live subscriptions at Stripe; the portal follows "
                f"{live[0]['id']}; the others ({extra}) also bill: cancel them in Stripe"
            )
        nested = self.session.begin_nested()
        await nested.start()
        try:
            if live:
                await self.apply_subscription(live[0])
            elif row.stripe_subscription_id:
                current = next(
                    (s for s in remote_subs if s["id"] == row.stripe_subscription_id), None
                )
                if current is None:
                    current = {
                        "id": row.stripe_subscription_id,
                        "status": "canceled",
                        "customer": customer.stripe_customer_id,
                    }
                await self.apply_subscription(current)
            after = _subscription_snapshot(row)
            if after != before:
                changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
                drift.append(f"{label}: subscription differs from Stripe: {changed}")
            remote_invoices = await self.gateway.list_invoices(customer.stripe_customer_id)
            ours = {
                inv.stripe_invoice_id: (inv.status, inv.amount_paid, inv.total)
                for inv in await self.session.scalars(
                    select(Invoice).where(Invoice.customer_id == customer.id)
                )
            }
            for inv in remote_invoices:
                theirs = (
                    inv.get("status"),
                    int(inv.get("amount_paid") or 0),
                    int(inv.get("total") or 0),
                )
                if ours.get(inv["id"]) != theirs:
                    drift.append(
                        f"{label}: invoice {inv['id']} ours={ours.get(inv['id'])} stripe={theirs}"
                    )
                    await self.apply_invoice(inv)
            cards_before = {
                (c.stripe_payment_method_id, c.is_default) for c in await self.cards(customer)
            }
            await self.sync_cards(customer)
            cards_after = {
                (c.stripe_payment_method_id, c.is_default) for c in await self.cards(customer)
            }
            if cards_before != cards_after:
                drift.append(
                    f"{label}: cards ours={sorted(cards_before)} stripe={sorted(cards_after)}"
                )
        except BaseException:
            await nested.rollback()
            raise
        if repair:
            await nested.commit()
        else:
            await nested.rollback()
        return drift

    async def stripe_customers(self) -> list[Customer]:
        query = (
            select(Customer).where(Customer.stripe_customer_id.is_not(None)).order_by(Customer.id)
        )
        return list(await self.session.scalars(query))

    async def count_cards(self, customer: Customer) -> int:
        return int(
            await self.session.scalar(
                select(func.count())
                .select_from(PaymentMethod)
                .where(PaymentMethod.customer_id == customer.id)
            )
            or 0
        )


def _subscription_snapshot(row: Subscription) -> dict[str, Any]:
    return {
        "plan": row.plan_slug,
        "interval": row.interval,
        "status": row.status,
        "stripe_subscription_id": row.stripe_subscription_id,
        "current_period_end": row.current_period_end,
        "cancel_at_period_end": row.cancel_at_period_end,
    }
