"""Metering rules: what an event costs, balances, checks, reservations and credit grants.

Every write goes through the process's UsageWriter (one transaction per batch of
concurrent writes); reads use running totals, so their cost does not grow with events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from msgspec import Struct
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Catalog, Feature, Meter, Plan
from app.customers.models import Customer, Subscription
from app.lib.clock import as_utc, utcnow
from app.lib.errors import DomainError, InsufficientBalance, NotFound, ValidationFailed
from app.lib.json_limits import MAX_DEPTH, deeper_than
from app.metering import entitlements as feature_rules
from app.metering import repository as repo
from app.metering.balance import (
    BillingCycle,
    allows,
    available_amount,
    current_period,
    percentage,
)
from app.metering.models import CreditGrant, CreditLedgerEntry, UsageEvent
from app.metering.ops import (
    CommitReservation,
    CustomerRef,
    EventResult,
    GrantCredits,
    GrantResult,
    RecordUsage,
    ReleaseReservation,
    ReservationResult,
    Reserve,
    RevokeCredits,
    RevokeResult,
    fingerprint,
)
from app.metering.rules import insufficient_balance, quota_plan
from app.metering.writer import UsageWriter

# Column lengths (app/metering/models.py, app/customers/models.py).
MAX_TRANSACTION_ID = 255
MAX_EXTERNAL_ID = 255
MAX_CODE = 64
MAX_REASON = 500
MAX_AMOUNT = 10**15
DEFAULT_TTL = 300
MAX_TTL = 86_400
CREDIT_SOURCES = {"purchase", "admin", "promotion", "api"}


@dataclass(frozen=True)
class Balance:
    code: str
    name: str
    unit: str
    limit: int | None
    used: int
    credits: int
    credits_used: int
    held: int
    available: int | None
    percentage: float | None
    period_start: datetime | None
    period_end: datetime | None
    reset: str
    # Minor units per unit beyond included + credits when the plan bills overage (no hard stop).
    overage_unit_amount: int | None = None

    @property
    def unlimited(self) -> bool:
        return self.limit is None

    @property
    def bills_overage(self) -> bool:
        """Usage beyond `available` is accepted and billed (the writer's `MeterState.overage`)."""
        return self.overage_unit_amount is not None

    @property
    def included_used(self) -> int:
        return self.used - self.credits_used

    @property
    def level(self) -> str:
        """neutral below 75 %, warning above 75 %, danger above 90 %."""
        if self.used_above(90):
            return "danger"
        if self.used_above(75):
            return "warning"
        return "neutral"

    def used_above(self, percent: int, *, inclusive: bool = False) -> bool:
        """Whether the included quota used is above (or, `inclusive`, at least) `percent` %.
        Exact, on the integers: `percentage` is rounded for display and would put 75.004 %
        at 75 or 99.996 % at 100."""
        if self.limit is None:
            return False
        if self.limit == 0:
            return True  # nothing is included: the quota is used up from the start
        used, bound = self.included_used * 100, percent * self.limit
        return used >= bound if inclusive else used > bound

    @property
    def exhausted(self) -> bool:
        """Used up, and further use is refused (not merely billed as overage)."""
        return self.available is not None and self.available <= 0 and not self.overage_unit_amount

    @property
    def prompt_upgrade(self) -> bool:
        return self.used_above(80, inclusive=True)


class BalanceSheet:
    """A customer's balances as the API reads them and the per-process read cache holds them.

    `encoded` is the API's JSON for the sheet, set by the first request that sends it, so a
    sheet served from the cache is encoded once rather than on every read. A sheet never
    changes: a write makes the cache drop it, and the next read builds a new one."""

    __slots__ = ("balances", "encoded", "encoded_entitlements", "external_id", "plan_slug", "terms")

    def __init__(
        self,
        external_id: str,
        balances: list[Balance],
        plan_slug: str = "",
        terms: tuple[Any, ...] = (),
    ) -> None:
        self.external_id = external_id
        self.balances = balances
        self.plan_slug = plan_slug  # the subscription's plan (the live-usage poll's version)
        self.terms = terms  # what of the subscription the balances were read with (`_terms`)
        self.encoded: bytes | None = None
        self.encoded_entitlements: bytes | None = None  # `GET .../entitlements`, likewise

    @property
    def status(self) -> str:
        """The subscription's status the balances were read with."""
        return str(self.terms[1]) if self.terms else ""


class EventInput(Struct, frozen=True, gc=False):
    transaction_id: str
    code: str
    external_customer_id: str | None = None
    external_subscription_id: str | None = None
    timestamp: datetime | None = None
    properties: dict[str, Any] | None = None


def _transaction_id(value: str | None, field: str = "transaction_id") -> str:
    value = (value or "").strip() if isinstance(value, str) else ""
    if not value:
        raise ValidationFailed(f"{field} is required.", field=field)
    if len(value) > MAX_TRANSACTION_ID:
        raise ValidationFailed(
            f"{field} must be at most {MAX_TRANSACTION_ID} characters.", field=field
        )
    return value


def _positive(value: Any, field: str, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(f"{field} must be an integer.", field=field)
    if value < (0 if allow_zero else 1) or value > MAX_AMOUNT:
        low = "0" if allow_zero else "1"
        raise ValidationFailed(f"{field} must be between {low} and {MAX_AMOUNT}.", field=field)
    return value


class UsageApi:
    """The metering writes and balance reads, through the process's writer: no database
    session, so one instance serves every API request."""

    def __init__(self, catalog: Catalog, writer: UsageWriter, upgrade_url: str) -> None:
        self.catalog = catalog
        self.writer = writer
        self.upgrade_url = upgrade_url

    def meter(self, code: str) -> Meter:
        meter = self.catalog.meter(code) if isinstance(code, str) else None
        if meter is None:
            raise NotFound(f"No meter with code {code!r}.", code="meter_not_found", field="code")
        return meter

    # Usage events ---------------------------------------------------------------

    def event_op(self, data: EventInput) -> RecordUsage:
        transaction_id = _transaction_id(data.transaction_id)
        meter = self.meter(data.code)
        if not (data.external_customer_id or data.external_subscription_id):
            raise ValidationFailed(
                "external_customer_id or external_subscription_id is required.",
                field="external_customer_id",
            )
        properties = data.properties or {}
        if not isinstance(properties, dict):
            raise ValidationFailed("properties must be an object.", field="properties")
        if deeper_than(properties):  # hashed, stored and sent back: recursion has its limits
            raise ValidationFailed(
                f"properties must not nest more than {MAX_DEPTH} levels.", field="properties"
            )
        if meter.aggregation == "sum":
            assert meter.field_name is not None
            amount = properties.get(meter.field_name)
            if type(amount) is not int or not 0 <= amount <= MAX_AMOUNT:
                amount = _positive(amount, f"properties.{meter.field_name}", allow_zero=True)
        else:
            amount = 1
        # Both ids may be given: the writer then checks that the subscription is the customer's.
        ref = CustomerRef(
            external_customer_id=data.external_customer_id or None,
            external_subscription_id=data.external_subscription_id or None,
        )
        payload = {
            "code": meter.code,
            "customer": ref.label(),
            "properties": properties,
            "timestamp": data.timestamp.isoformat() if data.timestamp else None,
        }
        return RecordUsage(
            customer=ref,
            meter_code=meter.code,
            transaction_id=transaction_id,
            amount=amount,
            timestamp=data.timestamp,
            properties=properties,
            fingerprint=fingerprint(payload),
        )

    async def record(self, data: EventInput) -> EventResult:
        result = await self.writer.submit(self.event_op(data))
        assert isinstance(result, EventResult)
        return result

    async def record_many(
        self, items: list[EventInput | DomainError]
    ) -> list[EventResult | DomainError]:
        """Each event has its own outcome; a bad one (or one that arrived as an error, such as
        an unreadable timestamp) does not lose the good ones."""
        outcomes: list[EventResult | DomainError | None] = []
        ops: list[RecordUsage] = []
        for item in items:
            if isinstance(item, DomainError):
                outcomes.append(item)
                continue
            try:
                ops.append(self.event_op(item))
                outcomes.append(None)
            except DomainError as exc:
                outcomes.append(exc)
        results = iter(await self.writer.submit_many(ops))
        return [
            outcome if outcome is not None else next(results)  # type: ignore[misc]
            for outcome in outcomes
        ]

    # Reservations ---------------------------------------------------------------

    async def reserve(
        self,
        external_customer_id: str,
        code: str,
        amount: Any,
        transaction_id: str,
        ttl_seconds: Any = None,
    ) -> ReservationResult:
        tx = _transaction_id(transaction_id)
        meter = self.meter(code)
        amount = _positive(amount, "amount")
        ttl = DEFAULT_TTL if ttl_seconds is None else ttl_seconds
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL:
            raise ValidationFailed(
                f"ttl_seconds must be an integer between 1 and {MAX_TTL}.", field="ttl_seconds"
            )
        if not external_customer_id:
            raise ValidationFailed(
                "external_customer_id is required.", field="external_customer_id"
            )
        op = Reserve(
            customer=CustomerRef(external_customer_id=external_customer_id),
            meter_code=meter.code,
            amount=amount,
            transaction_id=tx,
            ttl_seconds=ttl,
            fingerprint=fingerprint(
                {"code": meter.code, "amount": amount, "customer": external_customer_id}
            ),
        )
        result = await self.writer.submit(op)
        assert isinstance(result, ReservationResult)
        return result

    async def commit(self, reservation_id: str, amount: Any = None) -> ReservationResult:
        if amount is not None:
            amount = _positive(amount, "amount", allow_zero=True)
        result = await self.writer.submit(CommitReservation(reservation_id, amount))
        assert isinstance(result, ReservationResult)
        return result

    async def release(self, reservation_id: str) -> ReservationResult:
        result = await self.writer.submit(ReleaseReservation(reservation_id))
        assert isinstance(result, ReservationResult)
        return result

    # Credits --------------------------------------------------------------------

    async def grant_credits(
        self,
        external_customer_id: str,
        code: str,
        amount: Any,
        reason: str,
        transaction_id: str,
        expires_at: datetime | None = None,
        source: str = "api",
    ) -> GrantResult:
        tx = _transaction_id(transaction_id)
        meter = self.meter(code)
        amount = _positive(amount, "amount")
        reason = (reason or "").strip()
        if len(reason) > MAX_REASON:
            raise ValidationFailed(
                f"reason must be at most {MAX_REASON} characters.", field="reason"
            )
        if source not in CREDIT_SOURCES:
            raise ValidationFailed(
                f"source must be one of {sorted(CREDIT_SOURCES)}.", field="source"
            )
        if expires_at is not None and expires_at.tzinfo is None:
            raise ValidationFailed("expires_at needs a timezone (UTC).", field="expires_at")
        op = GrantCredits(
            customer=CustomerRef(external_customer_id=external_customer_id),
            meter_code=meter.code,
            amount=amount,
            source=source,
            reason=reason,
            transaction_id=tx,
            expires_at=expires_at,
            fingerprint=fingerprint(
                {
                    "code": meter.code,
                    "amount": amount,
                    "reason": reason,
                    "expires_at": expires_at.isoformat() if expires_at else None,
                    "source": source,
                }
            ),
        )
        result = await self.writer.submit(op)
        assert isinstance(result, GrantResult)
        return result

    async def revoke_credits(
        self,
        external_customer_id: str,
        code: str,
        *,
        grant_transaction_id: str,
        revoked: int,
        kind: str,
    ) -> RevokeResult:
        """Bring what is revoked of the grant made under `grant_transaction_id` to `revoked`
        (its unused credits only; a lower target gives back what was taken): a refunded or
        disputed credit pack. A target rather than a delta, so replays converge."""
        if kind not in ("refund", "dispute"):
            raise ValidationFailed("kind must be refund or dispute.", field="kind")
        op = RevokeCredits(
            customer=CustomerRef(external_customer_id=external_customer_id),
            meter_code=self.meter(code).code,
            grant_transaction_id=_transaction_id(grant_transaction_id),
            revoked=max(0, int(revoked)),
            kind=kind,
        )
        result = await self.writer.submit(op)
        assert isinstance(result, RevokeResult)
        return result

    # Reads ----------------------------------------------------------------------

    async def balances_for(self, customer: Customer, now: datetime | None = None) -> list[Balance]:
        """Always read from the database: pages must show a plan change at once."""
        found = await self.writer.work.read(
            read_balances, self.catalog, now or utcnow(), None, customer.id
        )
        if found is None:
            raise NotFound("This customer has no subscription.", code="subscription_not_found")
        if now is None:  # read as of now: as `balances` would have read it
            self.writer.balances.put(found[0], BalanceSheet(*found))
        return found[1]

    def cached_balances_for(
        self, customer: Customer, subscription: Subscription
    ) -> list[Balance] | None:
        """The writer's cached balances of this customer (see `balances`), if fresh and read
        with the subscription's terms as the caller has just read them (plan, status, period,
        Stripe ids): a plan change shows at once, as with `balances_for`."""
        sheet: BalanceSheet | None = self.writer.balances.get(customer.external_id)
        if sheet is None:
            return None
        cycle = None
        start, end = subscription.current_period_start, subscription.current_period_end
        if start is not None and end is not None:
            cycle = BillingCycle(
                start=as_utc(start), end=as_utc(end), interval=subscription.interval
            )
        terms = _terms(
            subscription.plan_slug,
            subscription.status,
            cycle,
            customer.stripe_customer_id,
            subscription.stripe_subscription_id,
        )
        return sheet.balances if sheet.terms == terms else None

    async def balances(self, external_id: str) -> BalanceSheet:
        """The customer's balances for the API (a hot path): one round trip, no ORM, served
        from the writer's per-process cache when fresh (app/metering/cache.py: exact after
        this process's own writes, at most a second behind anything else)."""
        cached = self.writer.balances.get(external_id)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        sheet = await self.writer.balances.load(external_id, lambda: self._read_sheet(external_id))
        if sheet is None:
            raise NotFound(
                f"No customer with external_id {external_id!r}.", code="customer_not_found"
            )
        return sheet  # type: ignore[no-any-return]

    async def _read_sheet(self, external_id: str) -> BalanceSheet | None:
        found = await self.writer.work.read(
            read_balances, self.catalog, utcnow(), external_id, None
        )
        return BalanceSheet(*found) if found is not None else None

    async def check(self, external_id: str, code: str, amount: Any) -> tuple[bool, Balance]:
        meter = self.meter(code)
        amount = _positive(amount, "amount", allow_zero=True)
        sheet = await self.balances(external_id)
        balance = next(b for b in sheet.balances if b.code == meter.code)
        # What a write would decide (the writer's rule): overage is billed, not refused.
        return allows(amount, balance.available, overage=balance.bills_overage), balance

    def insufficient(self, balance: Balance, amount: int) -> InsufficientBalance:
        """The `402` a write of `amount` would get, from a balance read (an enforced check)."""
        return insufficient_balance(
            balance.code,
            balance.available,
            amount,
            self.upgrade_url,
            used=balance.used,
            credits_used=balance.credits_used,
            limit=balance.limit,
        )

    # Features -------------------------------------------------------------------

    def feature(self, code: str) -> Feature:
        feature = self.catalog.feature(code) if isinstance(code, str) else None
        if feature is None:
            raise NotFound(
                f"No feature with code {code!r}.", code="feature_not_found", field="feature"
            )
        return feature

    def plan_in_force(self, sheet: BalanceSheet) -> Plan:
        return feature_rules.plan_in_force(self.catalog, sheet.plan_slug, sheet.status)

    async def entitlements(self, external_id: str) -> tuple[BalanceSheet, Plan]:
        """The customer's balances (the balance read of `balances`, cache and all) and the
        plan in force, whose features they have."""
        sheet = await self.balances(external_id)
        return sheet, self.plan_in_force(sheet)

    async def check_feature(self, external_id: str, code: str) -> feature_rules.FeatureDecision:
        feature = self.feature(code)
        sheet = await self.balances(external_id)
        return feature_rules.decide(self.catalog, self.plan_in_force(sheet), feature)


class MeteringService(UsageApi):
    """`UsageApi` with the page reads that need the request's session (recent events, the
    credit ledger)."""

    def __init__(
        self, session: AsyncSession, catalog: Catalog, writer: UsageWriter, upgrade_url: str
    ) -> None:
        super().__init__(catalog, writer, upgrade_url)
        self.session = session

    async def recent_events(self, customer_id: int, limit: int = 20) -> list[UsageEvent]:
        return await repo.recent_events(self.session, customer_id, limit)

    async def credit_ledger(
        self, customer_id: int, limit: int = 50
    ) -> list[tuple[CreditLedgerEntry, CreditGrant]]:
        return await repo.credit_ledger(self.session, customer_id, limit)


def read_balances(
    conn: Connection,
    catalog: Catalog,
    now: datetime,
    external_id: str | None,
    customer_id: int | None,
) -> tuple[str, list[Balance], str, tuple[Any, ...]] | None:
    """(external id, balances of every meter from the running totals, plan slug, the
    subscription's terms they were read with); the cost does not depend on the number of
    stored events."""
    plan_info = repo.customer_plan(conn, external_id=external_id, customer_id=customer_id)
    if plan_info is None:
        return None
    plan = quota_plan(catalog, plan_info.plan_slug, plan_info.status)
    periods = {
        code: current_period(quota, now, plan_info.cycle) for code, quota in plan.quotas.items()
    }
    totals = repo.totals_for(conn, plan_info.id, [(code, p.start) for code, p in periods.items()])
    credits = repo.credits_by_meter(conn, plan_info.id, now)
    holds = repo.holds_by_meter(conn, plan_info.id, now)
    balances = []
    for code, meter in catalog.meters.items():
        quota = plan.quotas[code]
        period = periods[code]
        row = totals.get((code, period.start))
        used = row.used if row else 0
        credits_used = row.credits_used if row else 0
        credit = credits.get(code, 0)
        held = holds.get(code, 0)
        available = available_amount(quota.included, used, credits_used, credit, held)
        balances.append(
            Balance(
                code=code,
                name=meter.name,
                unit=meter.unit,
                limit=quota.included,
                used=used,
                credits=credit,
                credits_used=credits_used,
                held=held,
                available=available,
                percentage=percentage(used, credits_used, quota.included),
                period_start=period.start if period.end is not None else None,
                period_end=period.end,
                reset=quota.reset,
                overage_unit_amount=quota.overage_unit_amount
                if plan_info.bills_through_stripe
                else None,
            )
        )
    terms = _terms(
        plan_info.plan_slug,
        plan_info.status,
        plan_info.cycle,
        plan_info.stripe_customer_id,
        plan_info.stripe_subscription_id,
    )
    return plan_info.external_id, balances, plan_info.plan_slug, terms


def _terms(
    plan_slug: str,
    status: str,
    cycle: BillingCycle | None,
    stripe_customer_id: str | None,
    stripe_subscription_id: str | None,
) -> tuple[Any, ...]:
    """What of a customer's subscription their balances depend on (`read_balances`)."""
    return (plan_slug, status, cycle, stripe_customer_id, stripe_subscription_id)
