"""Mirroring Stripe: make our rows (subscription, invoices, cards, credits) match Stripe's
current state of an object.

Used by the webhook handlers (app.stripe_sync), by `reconcile`, and by the user actions of
`BillingService` after a Stripe call. These methods only flush: the event ledger, the
reconcile command or the user action commits (one exception: granting a credit pack ends the
transaction first, see `_grant_pack`). They compare state rather than trusting the order
events arrive in, so replaying one, or receiving them shuffled or twice, converges to the
same rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.credit_reversals import CreditReversals
from app.billing.details_mirror import BillingDetailsMirror, details_snapshot
from app.billing.invoice_lines import describe, line_price_id, mirror_lines, price_lookup_key
from app.billing.invoice_views import is_trial
from app.billing.models import Invoice, PaymentMethod
from app.billing.pack_grants import grant_pack
from app.billing.plan_items import scheduled_change
from app.billing.repository import BillingRepository
from app.billing.stripe_objects import (
    Json,
    StripeObject,
    created_order,
    lookup_key,
    new_attempt,
    plan_item,
    ref_id,
    ts,
)
from app.catalog.models import Catalog
from app.customers.models import Customer, Subscription
from app.customers.service import CustomerService
from app.customers.statuses import SubscriptionStatus
from app.db.engine import write_from_here
from app.lib.clock import utcnow
from app.metering.service import MeteringService
from app.stripe.gateway import StripeGateway, StripeNotFound, idempotency_key
from app.stripe.objects import Charge, CheckoutSession, SubscriptionSchedule, TaxId
from app.stripe.objects import Customer as StripeCustomer
from app.stripe.objects import PaymentMethod as StripePaymentMethod

# Statuses whose subscription we follow: the live ones, and paused (the plan is kept for its
# resumption, its quotas are not: app.metering.rules.quota_plan).
_KEPT = SubscriptionStatus.live() | {SubscriptionStatus.PAUSED}
# The subscription row's metadata key listing the customer's Stripe ids deleted at Stripe.
_DELETED_CUSTOMERS = "deleted_stripe_customers"
# Price id → its lookup key (fixed in the price's metadata by the catalog sync).
_PRICE_KEYS: dict[str, str | None] = {}
_PRICE_KEYS_MAX = 1000


class StripeMirror:
    def __init__(
        self,
        session: AsyncSession,
        catalog: Catalog,
        gateway: StripeGateway,
        metering: MeteringService | None = None,
    ) -> None:
        self.session = session
        self.catalog = catalog
        self.gateway = gateway
        self.metering = metering
        self.customers = CustomerService(session, catalog)
        self.repo = BillingRepository(session)

    async def make_default_card(self, customer: Customer, payment_method_id: str) -> None:
        """Make a card the default at Stripe: on the customer, and on its live subscription."""
        assert customer.stripe_customer_id is not None
        attempt = new_attempt()
        await self.gateway.set_default_payment_method(
            customer.stripe_customer_id,
            payment_method_id,
            key=idempotency_key("default-card", customer.public_id, payment_method_id, attempt),
        )
        subscription = await self.customers.subscription(customer)
        if subscription.stripe_subscription_id and subscription.status in SubscriptionStatus.live():
            await self.gateway.set_subscription_payment_method(
                subscription.stripe_subscription_id,
                payment_method_id,
                key=idempotency_key(
                    "sub-card", subscription.external_id, payment_method_id, attempt
                ),
            )

    async def card_owner(self, stripe_payment_method_id: str) -> str | None:
        """The Stripe customer id of whoever has this card in our mirror (a detached card no
        longer names its customer)."""
        return await self.repo.stripe_customer_of_card(stripe_payment_method_id)

    async def customer_of(self, obj: Mapping[str, Any]) -> Customer | None:
        """Whose Stripe object this is: by Stripe customer id, else by our public id in its
        metadata or `client_reference_id` (and then the Stripe id is remembered)."""
        customer = await self.customers.by_stripe_id(ref_id(obj.get("customer")))
        if customer is None:
            metadata = obj.get("metadata") or {}
            customer = await self.customers.by_public_id(
                metadata.get("customer_public_id") or obj.get("client_reference_id")
            )
            stripe_customer_id = ref_id(obj.get("customer"))
            if stripe_customer_id and customer is not None:
                if stripe_customer_id in await self.deleted_stripe_customers(customer):
                    return None  # a late event of a Stripe customer deleted since
                if not customer.stripe_customer_id:
                    customer.stripe_customer_id = stripe_customer_id
        return customer

    async def deleted_stripe_customers(self, customer: Customer) -> set[str]:
        """The customer's Stripe ids deleted at Stripe (`customer.deleted`)."""
        row = await self.customers.subscription(customer)
        return set((row.metadata_ or {}).get(_DELETED_CUSTOMERS, "").split())

    async def forget_stripe_customer(self, stripe_customer_id: str | None) -> str:
        """The customer was deleted at Stripe (`customer.deleted`): forget its id, so the next
        Checkout creates a new one, its cards, and its subscription (Stripe cancels a deleted
        customer's subscriptions: back to the free plan). Invoices stay, as history; a late
        event of the deleted customer is not ours any more (`customer_of`)."""
        await write_from_here(self.session)
        customer = await self.customers.by_stripe_id(stripe_customer_id)
        if customer is None or stripe_customer_id is None:
            return "ignored: unknown customer"
        row = await self.customers.locked_subscription(customer)
        if row.stripe_subscription_id:
            self._to_free(row, {"id": row.stripe_subscription_id, "status": "canceled"})
        deleted = await self.deleted_stripe_customers(customer) | {stripe_customer_id}
        row.metadata_ = {**(row.metadata_ or {}), _DELETED_CUSTOMERS: " ".join(sorted(deleted))}
        for card in await self.repo.payment_methods(customer.id):
            await self.session.delete(card)
        customer.stripe_customer_id = None
        self._apply_balance(customer, {"id": stripe_customer_id, "deleted": True})
        await self.session.flush()
        return f"forgotten: {stripe_customer_id} (deleted at Stripe); now on {row.plan_slug}"

    async def apply_subscription(
        self, sub: StripeObject, *, seen_at: int | None = None, read_schedule: bool = False
    ) -> str:
        """Make our subscription row match Stripe's subscription `sub` (its current state);
        `read_schedule` reads its schedule again even when we know it (its phases changed)."""
        customer = await self.customer_of(sub)
        if customer is None:
            return "ignored: unknown customer"
        row = await self.customers.locked_subscription(customer)
        status = str(sub.get("status"))
        sub_id = str(sub["id"])
        if status not in _KEPT and row.stripe_subscription_id != sub_id:
            # Not the customer's current subscription (another one, or none: a plan set
            # directly, e.g. by an admin): its end changes nothing.
            return f"ignored: {sub_id} is {status}, not the customer's subscription"
        if row.stripe_subscription_id not in (None, sub_id) and status in _KEPT:
            # Two live subscriptions (e.g. two Checkouts): keep the newer one, whatever order
            # their events arrive in; the older one wins only once the newer one has ended.
            try:
                current: StripeObject | None = await self.gateway.retrieve_subscription(
                    str(row.stripe_subscription_id)
                )
            except StripeNotFound:
                current = None
            if (
                current is not None
                and current.get("status") in _KEPT
                and created_order(current) > created_order(sub)
            ):
                return f"ignored: {sub_id} is older than the live {row.stripe_subscription_id}"
        if status in SubscriptionStatus.ended():
            self._to_free(row, sub)
            self._stamp(row, seen_at)
            await self.session.flush()
            return f"ended: {sub_id} is {status}; now on {row.plan_slug}"
        # incomplete: wait until the first payment settles.
        if status not in _KEPT:
            return f"ignored: {sub_id} is {status}"
        item = plan_item(self.catalog, sub)
        if item is None:
            raise ValueError(f"subscription {sub_id} has no items")
        key = lookup_key(item)
        found = self.catalog.plan_for_lookup_key(key) if key else None
        if found is None:
            raise ValueError(f"subscription {sub_id}: price lookup_key {key!r} is not a plan")
        plan, price = found
        row.plan_slug = plan.slug
        row.interval = price.interval
        row.status = status
        row.stripe_subscription_id = sub_id
        row.current_period_start = ts(item.get("current_period_start"))
        row.current_period_end = ts(item.get("current_period_end"))
        row.trial_end = ts(sub.get("trial_end")) if status == "trialing" else None
        row.cancel_at_period_end = bool(sub.get("cancel_at_period_end") or sub.get("cancel_at"))
        row.canceled_at = ts(sub.get("canceled_at"))
        await self._apply_schedule(row, ref_id(sub.get("schedule")), read_schedule)
        self._apply_pending_update(row, sub)
        row.metadata_ = {
            **(row.metadata_ or {}),
            "stripe_customer_id": ref_id(sub.get("customer")) or "",
        }
        self._stamp(row, seen_at)
        await self.session.flush()
        return f"applied: {sub_id} {status} on {plan.slug}/{price.interval}"

    def _to_free(self, row: Subscription, sub: StripeObject) -> None:
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
        row.canceled_at = ts(sub.get("ended_at") or sub.get("canceled_at")) or utcnow()
        self.forget_schedule(row)
        self._apply_pending_update(row, {})

    async def _apply_schedule(
        self, row: Subscription, schedule_id: str | None, read: bool = False
    ) -> None:
        """The change the subscription's schedule makes next (a downgrade at the period end);
        asks Stripe only when the schedule is not the one we know."""
        if schedule_id is None:
            self.forget_schedule(row)
            return
        if (
            not read
            and schedule_id == row.stripe_schedule_id
            and row.scheduled_change_at is not None
            and row.current_period_start is not None
            and row.current_period_start < row.scheduled_change_at
        ):
            return  # known, and still to come
        schedule = await self.gateway.retrieve_subscription_schedule(schedule_id)
        self.apply_schedule(row, schedule)

    @staticmethod
    def apply_schedule(row: Subscription, schedule: SubscriptionSchedule) -> None:
        change = scheduled_change(schedule)
        live = schedule.get("status") in ("not_started", "active")
        row.stripe_schedule_id = schedule["id"] if live else None
        row.scheduled_plan_slug = change.plan_slug if change else None
        row.scheduled_interval = change.interval if change else None
        row.scheduled_change_at = change.at if change else None

    def _apply_pending_update(self, row: Subscription, sub: StripeObject) -> None:
        """A plan change waiting for its invoice to be paid (Stripe's `pending_update`): our
        plan stays the subscription's items' (so do the quotas) until Stripe applies it."""
        pending = sub.get("pending_update") or {}
        items = {"items": {"data": pending.get("subscription_items") or []}}
        item = plan_item(self.catalog, items) if pending else None
        key = lookup_key(item) if item else None
        found = self.catalog.plan_for_lookup_key(key) if key else None
        row.pending_plan_slug = found[0].slug if found else None
        row.pending_interval = found[1].interval if found else None
        row.pending_invoice_id = ref_id(sub.get("latest_invoice")) if pending else None
        row.pending_expires_at = ts(pending.get("expires_at"))

    @staticmethod
    def forget_schedule(row: Subscription) -> None:
        row.stripe_schedule_id = row.scheduled_plan_slug = row.scheduled_interval = None
        row.scheduled_change_at = None

    @staticmethod
    def _stamp(row: Subscription, seen_at: int | None) -> None:
        if seen_at is not None:
            row.stripe_state_at = max(row.stripe_state_at or 0, seen_at)

    async def apply_invoice(
        self, inv: StripeObject, *, seen_at: int | None = None, action_required: bool = False
    ) -> str:
        customer = await self.customer_of(inv)
        if customer is None:
            return "ignored: unknown customer"
        row = await self.repo.invoice_by_stripe_id(inv["id"])
        if row is None:
            row = Invoice(customer_id=customer.id, stripe_invoice_id=inv["id"])
            self.session.add(row)
        parent = inv.get("parent") or {}
        details = parent.get("subscription_details") or {}
        listed = inv.get("lines") or {}
        lines: list[Json] = list(listed.get("data") or [])
        if listed.get("has_more"):
            lines = [dict(line) for line in await self.gateway.invoice_lines(inv["id"])]
        period = (lines[0].get("period") if lines else None) or {}
        row.customer_id = customer.id
        row.stripe_subscription_id = ref_id(details.get("subscription")) or ref_id(
            inv.get("subscription")
        )
        row.number = inv.get("number")
        row.status = str(inv.get("status") or "draft")
        row.currency = str(inv.get("currency") or customer.currency)
        row.billing_reason = (inv.get("billing_reason") or None) and str(inv["billing_reason"])
        row.total = int(inv.get("total") or 0)
        row.subtotal = int(inv.get("subtotal") or 0)
        row.tax = sum(int(t.get("amount") or 0) for t in inv.get("total_taxes") or [])
        row.discount = sum(
            int(d.get("amount") or 0) for d in inv.get("total_discount_amounts") or []
        )
        row.amount_due = int(inv.get("amount_due") or 0)
        row.amount_paid = int(inv.get("amount_paid") or 0)
        row.starting_balance = int(inv.get("starting_balance") or 0)
        ending = inv.get("ending_balance")
        row.ending_balance = None if ending is None else int(ending)
        row.amount_credited = int(inv.get("pre_payment_credit_notes_amount") or 0) + int(
            inv.get("post_payment_credit_notes_amount") or 0
        )
        row.period_start = ts(period.get("start") or inv.get("period_start"))
        row.period_end = ts(period.get("end") or inv.get("period_end"))
        row.hosted_invoice_url = inv.get("hosted_invoice_url")
        row.invoice_pdf = inv.get("invoice_pdf")
        row.lines = mirror_lines(self.catalog, lines, await self._lookup_keys(lines))
        row.billed_to = billed_to(inv)
        row.description = describe(row.lines, fallback=inv.get("description"), trial=is_trial(row))[
            :500
        ]
        await self._apply_payment(row, inv)
        await self._note_action_required(row, inv, action_required)
        row.created_at = ts(inv.get("created")) or utcnow()
        if seen_at is not None:
            row.stripe_state_at = max(row.stripe_state_at or 0, seen_at)
        await write_from_here(self.session)  # after every Stripe call above
        if row in self.session.new:
            # Read before the write lock: a webhook may have mirrored the invoice since (the
            # customer's own action and Stripe's events race for a new invoice). Seen under the
            # lock now; apply onto that row instead (this rare pass repeats the Stripe reads).
            with self.session.no_autoflush:
                mirrored = await self.repo.invoice_by_stripe_id(inv["id"])
            if mirrored is not None:
                self.session.expunge(row)
                return await self.apply_invoice(
                    inv, seen_at=seen_at, action_required=action_required
                )
        await self.session.flush()
        return f"applied: invoice {inv['id']} {row.status}"

    async def _lookup_keys(self, lines: list[Json]) -> dict[str, str | None]:
        """The lookup keys of the lines' prices (a price's key is fixed in its metadata, so
        they are remembered for the process)."""
        keys: dict[str, str | None] = {}
        for line in lines:
            price_id = line_price_id(line)
            if price_id is None or price_id in keys:
                continue
            if price_id not in _PRICE_KEYS:
                try:
                    price = await self.gateway.retrieve_price(price_id)
                except StripeNotFound:
                    price = None
                if len(_PRICE_KEYS) >= _PRICE_KEYS_MAX:
                    _PRICE_KEYS.clear()
                _PRICE_KEYS[price_id] = price_lookup_key(price)
            keys[price_id] = _PRICE_KEYS[price_id]
        return keys

    async def _apply_payment(self, row: Invoice, inv: StripeObject) -> None:
        """The payment that paid the invoice: its card and what of it was refunded."""
        intent_id = _payment_intent_id(inv, "paid")
        if intent_id is None:
            return
        row.stripe_payment_intent_id = intent_id
        intent = await self.gateway.retrieve_payment_intent(intent_id)
        charge = intent.get("latest_charge")
        if isinstance(charge, dict):
            details: Json = dict(charge.get("payment_method_details") or {})
            paid_with = str(details.get("type") or "card")
            card = details.get(paid_with) or {}  # or a SEPA debit's, a bank account's...
            brand = card.get("brand") if paid_with == "card" else paid_with
            row.payment_brand = str(brand)[:32] if brand else None
            row.payment_last4 = (card.get("last4") or None) and str(card["last4"])[:4]
            row.amount_refunded = int(charge.get("amount_refunded") or 0)

    async def _note_action_required(self, row: Invoice, inv: StripeObject, said: bool) -> None:
        """Stamp an open invoice whose payment waits for the customer (3-D Secure: the
        payment intent `requires_action`, or `said` by `invoice.payment_action_required`); the
        stamp stays while the invoice is open (a failed authentication can be tried again on
        its hosted page)."""
        if row.status != "open" or row.action_required_at is not None:
            return
        if said:
            row.action_required_at = utcnow()
            return
        intent_id = _payment_intent_id(inv, "open")  # the attempt in progress
        if intent_id is None:
            return
        intent = await self.gateway.retrieve_payment_intent(intent_id)
        if intent.get("status") == "requires_action":
            row.action_required_at = utcnow()

    async def apply_charge(self, charge: Charge) -> str:
        """A charge's refunds and disputes as Stripe has them now: the refunded amount on the
        invoice it paid, and a credit pack's unused credits revoked or given back
        (app.billing.credit_reversals)."""
        reversals = CreditReversals(self.catalog, self.gateway, self.metering)
        cs = await reversals.pack_session(charge)
        disputes = await reversals.disputes(charge) if cs is not None else []
        outcome = await self.apply_charge_refunds(charge)  # after the Stripe calls
        if cs is None:
            return outcome
        return f"{outcome}; {await self._reverse_pack(reversals, cs, charge, disputes)}"

    async def _reverse_pack(
        self, reversals: CreditReversals, cs: CheckoutSession, charge: Charge, disputes: list[Json]
    ) -> str:
        await write_from_here(self.session)
        customer = await self.customer_of(cs)
        if customer is None:
            return "ignored: unknown customer"
        # The metering writer commits on its own: end ours first (as `_grant_pack`).
        await self.session.commit()
        return await reversals.apply(customer, cs, charge, disputes)

    async def apply_charge_refunds(self, charge: Charge) -> str:
        """A refund of an invoice's payment shows on that invoice (Stripe's current charge)."""
        intent_id = ref_id(charge.get("payment_intent"))
        await write_from_here(self.session)
        row = await self.repo.invoice_by_payment_intent(intent_id) if intent_id else None
        if row is None:
            # Not an invoice's payment, or its invoice is not mirrored yet: mirroring the
            # invoice reads the charge's refunds then.
            return f"ignored: no invoice paid by {intent_id}"
        row.amount_refunded = int(charge.get("amount_refunded") or 0)
        await self.session.flush()
        return f"applied: invoice {row.stripe_invoice_id} refunded {row.amount_refunded}"

    async def sync_customer(self, customer: Customer) -> str:
        """Mirror the customer's Stripe credit balance and cards."""
        if not customer.stripe_customer_id:
            return "ignored: no Stripe customer"
        remote = await self.gateway.retrieve_customer(customer.stripe_customer_id)
        cards: list[StripePaymentMethod] = []
        if not remote.get("deleted"):
            cards = await self.gateway.list_payment_methods(customer.stripe_customer_id)
        await write_from_here(self.session)  # after the Stripe calls
        self._apply_balance(customer, remote)
        return await self._sync_cards(customer, remote, cards)

    @staticmethod
    def _apply_balance(customer: Customer, remote: StripeCustomer) -> None:
        if remote.get("deleted"):
            customer.stripe_balance = 0
            return
        customer.stripe_balance = int(remote.get("balance") or 0)
        currency = remote.get("currency")
        customer.stripe_balance_currency = str(currency)[:3] if currency else None

    async def sync_cards(self, customer: Customer) -> str:
        """Mirror the customer's cards and default card from Stripe (adds, updates, removes);
        the credit balance comes along (one read of the customer)."""
        return await self.sync_customer(customer)

    async def _sync_cards(
        self,
        customer: Customer,
        remote_customer: StripeCustomer,
        remote_cards: list[StripePaymentMethod],
    ) -> str:
        settings = remote_customer.get("invoice_settings") or {}
        default_id = ref_id(settings.get("default_payment_method"))
        existing = {
            row.stripe_payment_method_id: row
            for row in await self.repo.payment_methods(customer.id)
        }
        seen: set[str] = set()
        for pm in remote_cards:
            kind = str(pm.get("type") or "card")
            blocks: StripeObject = pm
            card = blocks.get(kind) or {}  # the type's own block: card, sepa_debit, link...
            row = existing.get(pm["id"])
            if row is None:
                # A card can move between customers only by detaching; take it over.
                await self.repo.delete_card_everywhere(pm["id"])
                row = PaymentMethod(customer_id=customer.id, stripe_payment_method_id=pm["id"])
                row.created_at = ts(pm.get("created")) or utcnow()
                self.session.add(row)
            row.type = kind[:32]
            row.brand = str(card.get("brand") or kind)[:32]
            row.last4 = str(card.get("last4") or "")[:4]
            row.exp_month = card.get("exp_month")
            row.exp_year = card.get("exp_year")
            row.bank_name = str(card["bank_name"])[:255] if card.get("bank_name") else None
            row.email = str(card["email"])[:320] if card.get("email") else None
            row.is_default = pm["id"] == default_id
            seen.add(pm["id"])
        for pm_id, row in existing.items():
            if pm_id not in seen:
                await self.session.delete(row)
        await self.session.flush()
        return f"synced: {len(seen)} payment method(s), default {default_id}"

    async def apply_checkout_session(
        self, cs: CheckoutSession, *, seen_at: int | None = None
    ) -> str:
        """What a completed Checkout means for us: a subscription, credits or a new card."""
        customer = await self.customer_of(cs)
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
            if outcomes[-1].startswith("credits:"):
                # A refund or dispute that came before the grant: apply it now.
                reversals = CreditReversals(self.catalog, self.gateway, self.metering)
                charge = await reversals.charge_of(cs)
                if charge is not None and (charge.get("amount_refunded") or charge.get("disputed")):
                    disputes = await reversals.disputes(charge)
                    outcomes.append(await self._reverse_pack(reversals, cs, charge, disputes))
            if ref_id(cs.get("invoice")):
                invoice = await self.gateway.retrieve_invoice(str(ref_id(cs["invoice"])))
                outcomes.append(await self.apply_invoice(invoice, seen_at=seen_at))
        elif mode == "setup":
            outcomes.append(await self.sync_cards(customer))
            cards = await self.repo.payment_methods(customer.id)
            if cards and not any(card.is_default for card in cards):
                await self.make_default_card(customer, cards[0].stripe_payment_method_id)
                outcomes.append(await self.sync_cards(customer))
        return "; ".join(outcomes) or f"ignored: mode {mode}"

    async def _grant_pack(self, customer: Customer, cs: CheckoutSession) -> str:
        metadata: dict[str, str] = cs.get("metadata") or {}
        if metadata.get("kind") != "credit_pack":
            return "ignored: not a credit pack"
        if cs.get("payment_status") != "paid":
            return f"ignored: payment is {cs.get('payment_status')}"
        pack = self.catalog.credit_packs.get(str(metadata.get("pack")))
        if pack is None:
            raise ValueError(f"unknown credit pack {metadata.get('pack')!r}")
        if self.metering is None:
            raise RuntimeError("credits need the metering service")
        # The grant commits in the metering writer's own transaction; end ours first, so our
        # later writes do not run on a snapshot older than that commit (SQLite refuses that).
        await self.session.commit()
        result = await grant_pack(
            self.metering,
            customer.external_id,
            pack,
            transaction_id=str(cs["id"]),
            # Derived from the session, not the clock: a replay asks for the same grant.
            bought_at=ts(cs.get("created")) or utcnow(),
            reason=f"Bought {pack.name}",
        )
        return f"credits: {pack.credits} {pack.meter_code}" + (
            " (already granted)" if result.replayed else ""
        )

    # Reconcile --------------------------------------------------------------------------

    async def reconcile_customer(self, customer: Customer, *, repair: bool = True) -> list[str]:
        """Compare this customer's subscription, invoices, cards, credit balance and billing
        details (name, address, invoice email, tax IDs) with Stripe's; list drift.

        With `repair`, our rows are made to match (and flushed); otherwise nothing changes.
        """
        if not customer.stripe_customer_id:
            return []
        drift: list[str] = []
        label = customer.external_id
        row = await self.customers.subscription(customer)
        before = _subscription_snapshot(row)
        remote_subs = await self.gateway.list_subscriptions(customer.stripe_customer_id)
        live = [s for s in remote_subs if s.get("status") in SubscriptionStatus.live()]
        live.sort(key=created_order, reverse=True)
        if len(live) > 1:
            # Not repaired here: which one to end, and how to refund, is a person's call.
            extra = ", ".join(str(s["id"]) for s in live[1:])
            drift.append(
                f"{label}: {len(live)} live subscriptions at Stripe; the portal follows "
                f"{live[0]['id']}; the others ({extra}) also bill: cancel them in Stripe"
            )
        # Stripe's side first, then the write lock (SQLite: a savepoint cannot take it later),
        # then the comparison and repair in a savepoint that a dry run rolls back.
        remote_invoices = await self.gateway.list_invoices(customer.stripe_customer_id)
        remote_customer = await self.gateway.retrieve_customer(customer.stripe_customer_id)
        remote_cards: list[StripePaymentMethod] = []
        remote_tax_ids: list[TaxId] = []
        if not remote_customer.get("deleted"):
            remote_cards = await self.gateway.list_payment_methods(customer.stripe_customer_id)
            remote_tax_ids = await self.gateway.list_tax_ids(customer.stripe_customer_id)
        await write_from_here(self.session)
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
            mirrored = {
                inv.stripe_invoice_id: inv for inv in await self.repo.all_invoices(customer.id)
            }
            ours = {
                stripe_id: (inv.status, inv.amount_paid, inv.total)
                for stripe_id, inv in mirrored.items()
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
                elif mirrored[inv["id"]].lines is None:
                    # Mirrored before invoices kept their lines: fill them in (not drift).
                    await self.apply_invoice(inv)
            balance_before = (customer.stripe_balance, customer.stripe_balance_currency)
            cards_before = {
                (c.stripe_payment_method_id, c.is_default)
                for c in await self.repo.payment_methods(customer.id)
            }
            self._apply_balance(customer, remote_customer)
            await self._sync_cards(customer, remote_customer, remote_cards)
            cards_after = {
                (c.stripe_payment_method_id, c.is_default)
                for c in await self.repo.payment_methods(customer.id)
            }
            if cards_before != cards_after:
                drift.append(
                    f"{label}: cards ours={sorted(cards_before)} stripe={sorted(cards_after)}"
                )
            balance_after = (customer.stripe_balance, customer.stripe_balance_currency)
            if balance_after[0] != balance_before[0]:
                drift.append(
                    f"{label}: credit balance ours={balance_before[0]} stripe={balance_after[0]}"
                )
            drift += await self._reconcile_details(customer, remote_customer, remote_tax_ids)
        except BaseException:
            await nested.rollback()
            raise
        if repair:
            await nested.commit()
        else:
            await nested.rollback()
        return drift

    async def _reconcile_details(
        self, customer: Customer, remote: StripeCustomer, tax_ids: list[TaxId]
    ) -> list[str]:
        """The billing details and tax IDs made to match the Stripe customer's (as read)."""
        details = BillingDetailsMirror(self.session, self.gateway)
        repo = details.repo
        before = details_snapshot(
            customer, await repo.details(customer.id), await repo.tax_ids(customer.id)
        )
        await details.apply(customer, remote, tax_ids)
        after = details_snapshot(
            customer, await repo.details(customer.id), await repo.tax_ids(customer.id)
        )
        changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
        if not changed:
            return []
        return [f"{customer.external_id}: billing details differ from Stripe: {changed}"]


def billed_to(inv: StripeObject) -> Json | None:
    """Who the invoice is made out to, as Stripe fixed it when finalizing it: the customer's
    name, address and tax IDs then (None when it carries none of them)."""
    address = {k: v for k, v in (inv.get("customer_address") or {}).items() if v}
    tax_ids = [
        {"type": str(t.get("type") or ""), "value": str(t.get("value") or "")}
        for t in inv.get("customer_tax_ids") or []
    ]
    name = inv.get("customer_name") or None
    if not (name or address or tax_ids):
        return None
    return {"name": name, "address": address or None, "tax_ids": tax_ids}


def _payment_intent_id(inv: StripeObject, status: str) -> str | None:
    """The payment intent of the invoice's last payment in `status` (`paid`, `open`)."""
    payments = [
        p for p in (inv.get("payments") or {}).get("data") or [] if p.get("status") == status
    ]
    return ref_id(((payments[-1] if payments else {}).get("payment") or {}).get("payment_intent"))


def _subscription_snapshot(row: Subscription) -> dict[str, Any]:
    return {
        "plan": row.plan_slug,
        "interval": row.interval,
        "status": row.status,
        "stripe_subscription_id": row.stripe_subscription_id,
        "current_period_end": row.current_period_end,
        "cancel_at_period_end": row.cancel_at_period_end,
    }
