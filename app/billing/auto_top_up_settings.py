"""The customer's auto top-up and low-balance email settings, and what the credits page shows
of them (the rules and the worker that applies them: app/billing/auto_top_up.py,
app/stripe_sync/auto_top_up.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.auto_top_up import (
    CAPPED,
    SPENDING,
    AutoTopUp,
    AutoTopUpPurchase,
    month_start,
)
from app.billing.models import PaymentMethod
from app.billing.repository import BillingRepository
from app.catalog.models import Catalog, CreditPack, Meter
from app.customers.models import Customer
from app.db.engine import write_from_here
from app.db.transactions import rolls_back_on_error
from app.lib.clock import utcnow
from app.lib.errors import ValidationFailed
from app.lib.money import ZERO_DECIMAL_CURRENCIES, format_money, parse_money

MAX_THRESHOLD = 10**12
RECENT = 5


@dataclass(frozen=True)
class AutoTopUpView:
    """What the credits page shows: the forms' current values and the recent outcomes."""

    packs: list[CreditPack]
    meters: list[Meter]
    top_up: AutoTopUp | None  # the rule the top-up form edits (its pack's meter)
    alert: AutoTopUp | None  # the rule the email form edits
    default_card: PaymentMethod | None
    spent: int  # this month, by the top-up form's rule
    failed: list[AutoTopUp] = field(default_factory=list)  # turned off by a failed payment
    capped: AutoTopUpPurchase | None = None  # this month's latest purchase over the cap
    recent: list[AutoTopUpPurchase] = field(default_factory=list)

    def pack_name(self, slug: str | None) -> str:
        return next((p.name for p in self.packs if p.slug == slug), slug or "")

    def cap_text(self) -> str:
        rule = self.top_up
        if rule is None or not rule.monthly_cap:
            return ""
        if rule.currency.lower() in ZERO_DECIMAL_CURRENCIES:
            return str(rule.monthly_cap)
        return f"{rule.monthly_cap // 100}.{rule.monthly_cap % 100:02d}"


async def spent_this_month(session: AsyncSession, rule_id: int, now: datetime) -> int:
    """What the rule's auto top-ups charged (or are charging) in `now`'s calendar month (UTC):
    what counts against its cap."""
    total = await session.scalar(
        select(func.coalesce(func.sum(AutoTopUpPurchase.amount), 0)).where(
            AutoTopUpPurchase.rule_id == rule_id,
            AutoTopUpPurchase.status.in_(SPENDING),
            AutoTopUpPurchase.created_at >= month_start(now),
        )
    )
    return int(total or 0)


def _threshold(text: str, name: str) -> int:
    value = (text or "").strip().replace(",", "")
    if not value.isdigit() or not 1 <= int(value) <= MAX_THRESHOLD:
        raise ValidationFailed("Enter a whole number of at least 1.", field=name)
    return int(value)


def _on(text: str) -> bool:
    return (text or "").lower() in {"on", "1", "true", "yes"}


class AutoTopUpSettings:
    def __init__(self, session: AsyncSession, catalog: Catalog) -> None:
        self.session = session
        self.catalog = catalog
        self.repo = BillingRepository(session)

    def packs(self) -> list[CreditPack]:
        return list(self.catalog.credit_packs.values())

    def meters(self) -> list[Meter]:
        return list(self.catalog.meters.values())

    async def rules(self, customer: Customer) -> list[AutoTopUp]:
        found = await self.session.scalars(
            select(AutoTopUp).where(AutoTopUp.customer_id == customer.id).order_by(AutoTopUp.id)
        )
        return list(found.all())

    async def view(self, customer: Customer) -> AutoTopUpView:
        rules = await self.rules(customer)
        pack_meters = {pack.meter_code for pack in self.packs()}
        top_up = next((r for r in rules if r.enabled), None) or next(
            (r for r in rules if r.pack_slug and r.meter_code in pack_meters), None
        )
        alert = next((r for r in rules if r.alert_enabled), None) or next(
            (r for r in rules if r.alert_threshold), None
        )
        cards = await self.repo.payment_methods(customer.id)
        now = utcnow()
        recent = list(
            (
                await self.session.scalars(
                    select(AutoTopUpPurchase)
                    .where(AutoTopUpPurchase.customer_id == customer.id)
                    .order_by(AutoTopUpPurchase.id.desc())
                    .limit(RECENT)
                )
            ).all()
        )
        capped = next(
            (p for p in recent if p.status == CAPPED and p.created_at >= month_start(now)), None
        )
        spent = await self.spent(top_up.id, now) if top_up else 0
        return AutoTopUpView(
            packs=self.packs(),
            meters=self.meters(),
            top_up=top_up,
            alert=alert,
            default_card=next((c for c in cards if c.is_default), None),
            spent=spent,
            failed=[r for r in rules if r.failure and not r.enabled],
            capped=capped,
            recent=recent,
        )

    async def spent(self, rule_id: int, now: datetime) -> int:
        return await spent_this_month(self.session, rule_id, now)

    async def _rule(self, customer: Customer, meter_code: str) -> AutoTopUp:
        """The customer's row for the meter, made when missing (the write lock is held on
        SQLite; on PostgreSQL two first saves at once both find none: the second one's insert
        meets the first's row, and then uses it)."""
        query = select(AutoTopUp).where(
            AutoTopUp.customer_id == customer.id, AutoTopUp.meter_code == meter_code
        )
        rule = await self.session.scalar(query)
        if rule is None:
            now = utcnow()
            rule = AutoTopUp(
                customer_id=customer.id,
                meter_code=meter_code,
                enabled=False,
                threshold=0,
                monthly_cap=0,
                currency=customer.currency or "usd",
                armed=True,
                crossings=0,
                alert_enabled=False,
                alert_threshold=0,
                alert_armed=True,
                alert_crossings=0,
                created_at=now,
                updated_at=now,
            )
            try:
                async with self.session.begin_nested():
                    self.session.add(rule)
            except IntegrityError:
                rule = (await self.session.scalars(query)).one()
        return rule

    @rolls_back_on_error
    async def save_top_up(
        self, customer: Customer, *, enabled: str, pack: str, threshold: str, monthly_cap: str
    ) -> str:
        """Turn auto top-up on (or change it) or off; returns what to tell the customer."""
        on = _on(enabled)
        chosen = self.catalog.credit_packs.get(pack or "")
        if chosen is None:
            raise ValidationFailed("Choose a credit pack.", field="pack")
        await write_from_here(self.session)
        rule = await self._rule(customer, chosen.meter_code)
        if not on:
            for other in await self.rules(customer):
                other.enabled = False
                other.updated_at = utcnow()
            await self.session.commit()
            return "Auto top-up is off."
        below = _threshold(threshold, "threshold")
        try:
            cap = parse_money(monthly_cap, chosen.currency)
        except ValueError:
            raise ValidationFailed(
                "Enter the monthly cap as an amount, e.g. 50.00.", field="monthly_cap"
            ) from None
        if cap < chosen.amount:
            raise ValidationFailed(
                f"The monthly cap must be at least the pack's price "
                f"({format_money(chosen.amount, chosen.currency, cents=True)}).",
                field="monthly_cap",
            )
        cards = await self.repo.payment_methods(customer.id)
        card = next((c for c in cards if c.is_default), None)
        if card is None or not customer.stripe_customer_id:
            raise ValidationFailed(
                "Add a card first: auto top-up charges your default payment method.",
                field="pack",
            )
        for other in await self.rules(customer):
            if other.id != rule.id and other.enabled:  # one auto top-up at a time
                other.enabled = False
                other.updated_at = utcnow()
        if not rule.enabled or rule.threshold != below:
            rule.armed = True  # a new rule starts armed: below the threshold already buys now
        rule.enabled = True
        rule.threshold = below
        rule.pack_slug = chosen.slug
        rule.monthly_cap = cap
        rule.currency = chosen.currency
        rule.failure = None
        rule.failed_at = None
        rule.updated_at = utcnow()
        await self.session.commit()
        meter = self.catalog.meter(chosen.meter_code)
        return (
            f"Auto top-up is on: when your {meter.name if meter else chosen.meter_code} "
            f"balance falls below {below:,}, we buy {chosen.name} for "
            f"{format_money(chosen.amount, chosen.currency, cents=True)} on your "
            f"{card.brand} ending {card.last4}, at most "
            f"{format_money(cap, chosen.currency, cents=True)} a month."
        )

    @rolls_back_on_error
    async def save_alert(
        self, customer: Customer, *, enabled: str, meter: str, threshold: str
    ) -> str:
        """Turn the low-balance email on (or change its threshold) or off."""
        on = _on(enabled)
        chosen = self.catalog.meter(meter or "")
        if chosen is None:
            raise ValidationFailed("Choose a meter.", field="meter")
        await write_from_here(self.session)
        if not on:
            for other in await self.rules(customer):
                other.alert_enabled = False
                other.updated_at = utcnow()
            await self.session.commit()
            return "The low-balance email is off."
        below = _threshold(threshold, "alert_threshold")
        rule = await self._rule(customer, chosen.code)
        for other in await self.rules(customer):
            if other.id != rule.id and other.alert_enabled:
                other.alert_enabled = False
                other.updated_at = utcnow()
        if not rule.alert_enabled or rule.alert_threshold != below:
            rule.alert_armed = True
        rule.alert_enabled = True
        rule.alert_threshold = below
        rule.updated_at = utcnow()
        await self.session.commit()
        return f"We will email you once each time your {chosen.name} balance falls below {below:,}."
