"""Auto top-up and the low-balance email, run by the Stripe worker (app/billing/auto_top_up.py
has the tables and the rules).

Each round:

1. **Evaluate** the rules of the customers whose usage, credits or settings changed since the
   last round (and every rule every `SWEEP` seconds: a new period or expired credits move a
   balance without a write of ours): read the meter's balance, apply `crossing()` to each
   threshold, and write the outcome with a compare-and-set on the rule row (its armed flags
   and crossing counters as read). Only one evaluation of a crossing wins it, however many
   workers look and however many events arrived at once; the winner, in the same commit, adds
   the purchase row (unique per rule and crossing; `capped` when the monthly cap would be
   exceeded, with an email) and queues the low-balance email. The usage write path is not
   touched at all.
2. **Purchase** each pending row: claim it (a lease), commit, then with no transaction open
   charge the default payment method off-session, keyed by the purchase (`customer, rule,
   crossing`), so a retry after a crash returns Stripe's first outcome; on success grant the
   pack through the same path as a Checkout purchase (`grant_pack`, keyed by the purchase
   too), mark it `succeeded` and queue the email. A decline or a bank asking for
   authentication marks it `failed`, turns auto top-up off with the reason (the credits page
   shows it) and emails the customer. Anything else (Stripe unreachable) is retried after a
   backoff with the same key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.billing.auto_top_up import (
    CAPPED,
    FAILED,
    PENDING,
    SUCCEEDED,
    AutoTopUp,
    AutoTopUpPurchase,
    Crossing,
    crossing,
    purchase_key,
    within_cap,
)
from app.billing.auto_top_up_settings import spent_this_month
from app.billing.pack_grants import grant_pack
from app.catalog.models import Catalog
from app.customers.models import Customer
from app.db.engine import write_from_here
from app.lib.clock import as_utc, utcnow
from app.lib.errors import NotFound
from app.lib.money import format_money
from app.metering.models import CreditGrant, UsageTotal
from app.metering.service import MeteringService
from app.notifications.service import (
    AUTO_TOP_UP,
    AUTO_TOP_UP_CAPPED,
    AUTO_TOP_UP_FAILED,
    CREDITS_LOW,
    NotificationService,
)
from app.stripe.gateway import StripeCardError, StripeGateway, StripeGatewayError

log = structlog.get_logger()

LEASE = timedelta(seconds=60)  # a purchase's claim: well above one Stripe call with retries
SWEEP = 30.0  # seconds between evaluations of every rule
OVERLAP = timedelta(seconds=5)  # changes stamped just before a round but committed after it
MAX_ATTEMPTS = 8
BATCH = 100


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(5 * 2 ** max(attempts - 1, 0), 600))


@dataclass(frozen=True)
class Outcome:
    evaluated: int = 0
    fired: int = 0
    purchased: int = 0


def _changed_since(model: Any, stamp: Any, since: datetime) -> Exists:
    """Whether the rule's customer has a `model` row of its meter stamped since `since`."""
    return (
        select(model.id)
        .where(
            model.customer_id == AutoTopUp.customer_id,
            model.meter_code == AutoTopUp.meter_code,
            stamp >= since,
        )
        .exists()
    )


class AutoTopUps:
    """One per worker: evaluates the rules and makes the purchases (see the module docstring)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        catalog: Catalog,
        gateway: StripeGateway,
        *,
        metering: Callable[[AsyncSession], MeteringService],
        notifications: Callable[[AsyncSession], NotificationService],
        lease: timedelta = LEASE,
        sweep: float = SWEEP,
    ) -> None:
        self.sessions = sessions
        self.catalog = catalog
        self.gateway = gateway
        self.metering = metering
        self.notifications = notifications
        self.lease = lease
        self.sweep = sweep
        self._last_round: datetime | None = None
        self._last_sweep: datetime | None = None

    async def run_once(self, now: datetime | None = None) -> Outcome:
        now = now or utcnow()
        sweep = self._last_sweep is None or (now - self._last_sweep).total_seconds() >= self.sweep
        since = None if sweep or self._last_round is None else self._last_round - OVERLAP
        evaluated = fired = 0
        for rule_id in await self.candidates(since):
            evaluated += 1
            fired += await self.evaluate(rule_id)
        self._last_round = now
        if sweep:
            self._last_sweep = now
        purchased = 0
        for purchase_id in await self.due_purchases():
            purchased += await self.purchase(purchase_id)
        return Outcome(evaluated, fired, purchased)

    # Evaluating ---------------------------------------------------------------------------

    async def candidates(self, since: datetime | None) -> list[int]:
        """Rules on (auto top-up or the email) whose meter's usage or credits, or whose
        settings, changed since `since` (all of them when None)."""
        rule = AutoTopUp
        query = select(rule.id).where(or_(rule.enabled, rule.alert_enabled)).order_by(rule.id)
        if since is not None:
            used = _changed_since(UsageTotal, UsageTotal.updated_at, since)
            granted = _changed_since(CreditGrant, CreditGrant.created_at, since)
            query = query.where(or_(rule.updated_at >= since, used, granted))
        async with self.sessions() as session:
            return list((await session.scalars(query)).all())

    async def evaluate(self, rule_id: int) -> int:
        """Apply the crossing rule to the rule's thresholds; returns how many fired (0-2)."""
        async with self.sessions() as session:
            rule = await session.get(AutoTopUp, rule_id)
            customer = await session.get(Customer, rule.customer_id) if rule else None
            if rule is None or customer is None or customer.deleted_at is not None:
                return 0
            try:
                balances = await self.metering(session).balances_for(customer)
            except NotFound:
                return 0
            balance = next((b for b in balances if b.code == rule.meter_code), None)
            if balance is None or balance.available is None:
                return 0  # unlimited: never low
            new = balance.available
            top = crossing(rule.last_balance, new, rule.threshold, rule.armed)
            alert = crossing(rule.last_balance, new, rule.alert_threshold, rule.alert_armed)
            if not rule.enabled:
                top = Crossing(fire=False, armed=rule.armed)
            if not rule.alert_enabled:
                alert = Crossing(fire=False, armed=rule.alert_armed)
            if (
                not top.fire
                and not alert.fire
                and top.armed == rule.armed
                and (alert.armed == rule.alert_armed)
            ):
                # Nothing to record: the armed flags carry the state (`last_balance` is
                # written with them), so a look that changes neither costs no write.
                await session.rollback()
                return 0
            seen = (rule.crossings, rule.alert_crossings, rule.armed, rule.alert_armed)
            settings_at = rule.updated_at
            await write_from_here(session)
            # Compare and set: this evaluation wins the crossing only if nobody changed the
            # rule since it was read (another worker's evaluation, the customer's settings,
            # which stamp `updated_at`).
            won = await session.execute(
                update(AutoTopUp)
                .where(
                    AutoTopUp.id == rule_id,
                    AutoTopUp.crossings == seen[0],
                    AutoTopUp.alert_crossings == seen[1],
                    AutoTopUp.armed == seen[2],
                    AutoTopUp.alert_armed == seen[3],
                    AutoTopUp.updated_at == settings_at,
                )
                .values(
                    armed=top.armed,
                    alert_armed=alert.armed,
                    crossings=AutoTopUp.crossings + int(top.fire),
                    alert_crossings=AutoTopUp.alert_crossings + int(alert.fire),
                    last_balance=new,
                )
                .execution_options(synchronize_session=False)
            )
            if won.rowcount != 1:  # type: ignore[attr-defined]
                await session.rollback()
                return 0
            notify = self.notifications(session)
            meter_name = balance.name
            if top.fire:
                await self._add_purchase(session, notify, rule, customer, new, seen[0] + 1)
            if alert.fire:
                await notify.enqueue(
                    dedupe_key=f"credits_low:{customer.public_id}:{rule.id}:{seen[1] + 1}",
                    kind=CREDITS_LOW,
                    customer=customer,
                    subject=f"Your {meter_name} balance is low: {new:,} left",
                    context={
                        "meter_name": meter_name,
                        "balance": new,
                        "threshold": rule.alert_threshold,
                    },
                )
            await session.commit()
            return int(top.fire) + int(alert.fire)

    async def _add_purchase(
        self,
        session: AsyncSession,
        notify: NotificationService,
        rule: AutoTopUp,
        customer: Customer,
        balance: int,
        number: int,
    ) -> None:
        """The purchase of crossing `number`: pending, or capped (with its email)."""
        pack = self.catalog.credit_packs.get(rule.pack_slug or "")
        if pack is None or pack.meter_code != rule.meter_code:
            log.warning("auto top-up pack not on sale", rule=rule.id, pack=rule.pack_slug)
            return
        now = utcnow()
        spent = await spent_this_month(session, rule.id, now)
        allowed = within_cap(spent, pack.amount, rule.monthly_cap)
        key = purchase_key(customer.public_id, rule.id, number)
        session.add(
            AutoTopUpPurchase(
                rule_id=rule.id,
                customer_id=customer.id,
                meter_code=rule.meter_code,
                crossing=number,
                pack_slug=pack.slug,
                credits=pack.credits,
                amount=pack.amount,
                currency=pack.currency,
                balance=balance,
                status=PENDING if allowed else CAPPED,
                key=key,
                attempts=0,
                created_at=now,
                updated_at=now,
            )
        )
        if allowed:
            return
        await notify.enqueue(
            dedupe_key=f"auto_top_up_capped:{key}",
            kind=AUTO_TOP_UP_CAPPED,
            customer=customer,
            subject=f"Auto top-up skipped: {pack.name} would go over your monthly cap",
            context={
                **self._context(rule, pack.name, pack.amount, pack.currency, balance),
                "would_spend": format_money(spent + pack.amount, pack.currency, cents=True),
            },
        )

    def _context(
        self, rule: AutoTopUp, pack_name: str, amount: int, currency: str, balance: int
    ) -> dict[str, object]:
        meter = self.catalog.meter(rule.meter_code)
        return {
            "meter_name": meter.name if meter else rule.meter_code,
            "pack_name": pack_name,
            "amount": format_money(amount, currency, cents=True),
            "balance": balance,
            "threshold": rule.threshold,
            "cap": format_money(rule.monthly_cap, rule.currency, cents=True),
        }

    # Purchasing ---------------------------------------------------------------------------

    async def due_purchases(self) -> list[int]:
        now = utcnow()
        async with self.sessions() as session:
            found = await session.scalars(
                select(AutoTopUpPurchase.id)
                .where(
                    AutoTopUpPurchase.status == PENDING,
                    or_(
                        AutoTopUpPurchase.claimed_until.is_(None),
                        AutoTopUpPurchase.claimed_until < now,
                    ),
                )
                .order_by(AutoTopUpPurchase.id)
                .limit(BATCH)
            )
            return list(found.all())

    async def purchase(self, purchase_id: int) -> int:
        """Claim, charge, grant, record: 1 when this call completed the purchase."""
        async with self.sessions() as session:
            now = utcnow()
            await write_from_here(session)
            claimed = await session.execute(
                update(AutoTopUpPurchase)
                .where(
                    AutoTopUpPurchase.id == purchase_id,
                    AutoTopUpPurchase.status == PENDING,
                    or_(
                        AutoTopUpPurchase.claimed_until.is_(None),
                        AutoTopUpPurchase.claimed_until < now,
                    ),
                )
                .values(claimed_until=now + self.lease, attempts=AutoTopUpPurchase.attempts + 1)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                await session.rollback()
                return 0
            await session.commit()
            row = await session.get(AutoTopUpPurchase, purchase_id)
            rule = await session.get(AutoTopUp, row.rule_id) if row else None
            customer = await session.get(Customer, row.customer_id) if row else None
            await session.commit()  # no transaction open during the Stripe call
            assert row is not None and rule is not None and customer is not None
            pack = self.catalog.credit_packs.get(row.pack_slug)
            if pack is None:
                return await self._failed(
                    session, row, rule, customer, "The pack is no longer on sale."
                )
            if not rule.enabled:
                return await self._failed(
                    session, row, rule, customer, "Auto top-up was turned off.", turn_off=False
                )
            if not customer.stripe_customer_id:
                return await self._failed(
                    session, row, rule, customer, "There is no payment method on file."
                )
            try:
                intent = await self.gateway.charge_off_session(
                    customer.stripe_customer_id,
                    amount=row.amount,
                    currency=row.currency,
                    description=f"Auto top-up: {pack.name}",
                    metadata={
                        "kind": "auto_top_up",
                        "customer_public_id": customer.public_id,
                        "pack": pack.slug,
                        "purchase": row.key,
                    },
                    key=row.key,
                )
            except StripeCardError as exc:
                return await self._failed(session, row, rule, customer, exc.message)
            except StripeGatewayError as exc:
                return await self._retry_later(session, row, rule, customer, exc.message)
            if intent.get("status") != "succeeded":
                reason = "Your bank asked for authentication, which needs you present."
                return await self._failed(session, row, rule, customer, reason)
            # The grant commits in the metering writer's own transaction (ours is closed).
            await grant_pack(
                self.metering(session),
                customer.external_id,
                pack,
                transaction_id=row.key,
                bought_at=as_utc(row.created_at),
                reason=f"Auto top-up: {pack.name}",
            )
            await write_from_here(session)
            await session.execute(
                update(AutoTopUpPurchase)
                .where(AutoTopUpPurchase.id == row.id)
                .values(
                    status=SUCCEEDED,
                    payment_intent_id=intent["id"],
                    error=None,
                    claimed_until=None,
                    updated_at=utcnow(),
                )
                .execution_options(synchronize_session=False)
            )
            spent = await spent_this_month(session, rule.id, as_utc(row.created_at))
            await self.notifications(session).enqueue(
                dedupe_key=f"auto_top_up:{row.key}",
                kind=AUTO_TOP_UP,
                customer=customer,
                subject=f"Auto top-up: {pack.name} bought for "
                f"{format_money(row.amount, row.currency, cents=True)}",
                context={
                    **self._context(rule, pack.name, row.amount, row.currency, row.balance),
                    "credits": row.credits,
                    "spent": format_money(spent, row.currency, cents=True),
                },
            )
            await session.commit()
        # Look again at once: the pack normally lifts the balance back over the threshold,
        # which re-arms it before more usage can take it under again unseen.
        await self.evaluate(rule.id)
        return 1

    async def _failed(
        self,
        session: AsyncSession,
        row: AutoTopUpPurchase,
        rule: AutoTopUp,
        customer: Customer,
        reason: str,
        *,
        turn_off: bool = True,
    ) -> int:
        """Nothing was charged: the purchase failed; auto top-up off, and the customer told."""
        now = utcnow()
        await write_from_here(session)
        await session.execute(
            update(AutoTopUpPurchase)
            .where(AutoTopUpPurchase.id == row.id, AutoTopUpPurchase.status == PENDING)
            .values(status=FAILED, error=reason[:2000], claimed_until=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if turn_off:
            await session.execute(
                update(AutoTopUp)
                .where(AutoTopUp.id == rule.id)
                .values(enabled=False, failure=reason[:2000], failed_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            pack = self.catalog.credit_packs.get(row.pack_slug)
            await self.notifications(session).enqueue(
                dedupe_key=f"auto_top_up_failed:{row.key}",
                kind=AUTO_TOP_UP_FAILED,
                customer=customer,
                subject="Auto top-up failed and is now off",
                context={
                    **self._context(
                        rule,
                        pack.name if pack else row.pack_slug,
                        row.amount,
                        row.currency,
                        row.balance,
                    ),
                    "reason": reason,
                },
            )
        await session.commit()
        log.info("auto top-up failed", purchase=row.key, reason=reason)
        return 0

    async def _retry_later(
        self,
        session: AsyncSession,
        row: AutoTopUpPurchase,
        rule: AutoTopUp,
        customer: Customer,
        reason: str,
    ) -> int:
        """Stripe did not answer (or refused for another reason): the same key later."""
        if row.attempts >= MAX_ATTEMPTS:
            return await self._failed(session, row, rule, customer, reason)
        await write_from_here(session)
        await session.execute(
            update(AutoTopUpPurchase)
            .where(AutoTopUpPurchase.id == row.id)
            .values(
                error=reason[:2000],
                claimed_until=utcnow() + backoff(row.attempts),
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        log.warning("auto top-up payment retried later", purchase=row.key, reason=reason)
        return 0
