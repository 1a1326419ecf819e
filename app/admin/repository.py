"""All SQL of the admin pages: aggregates for the overview, searches and paginated lists.

Every list is bounded (LIMIT/OFFSET on an indexed order) and every search term is a
prefix match on an indexed expression; the indexes are declared in `app/admin/models.py`
and listed in `docs/admin.md`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    bindparam,
    exists,
    false,
    func,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute, aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from app.accounts.models import User
from app.admin.models import AuditLog
from app.billing.models import Invoice
from app.customers.models import Customer, Subscription
from app.db.engine import UNICODE_LOWER
from app.metering.models import UsageMeterDay
from app.metering.outbox import StripeOutboxMessage
from app.stripe_sync.models import StripeEvent

Column = ColumnElement[Any] | InstrumentedAttribute[Any]
# A filter keeps the select's own row type.
AnySelect = TypeVar("AnySelect", bound=Select[*tuple[Any, ...]])
# (plan slug, interval, status, how many subscriptions)
SubscriptionCount = tuple[str, str, str, int]
# A customer whose payment failed, their subscription, and their latest unpaid invoice.
PaymentProblem = tuple[Customer, Subscription, Invoice | None]


@dataclass(frozen=True)
class CustomerRow:
    id: int
    external_id: str
    email: str | None
    name: str | None
    plan_slug: str
    interval: str
    status: str
    cancel_at_period_end: bool
    stripe_customer_id: str | None
    created_at: datetime

    def cursor(self, sort: str) -> tuple[str, int]:
        """This row's sort key, for the next page's `CustomerQuery.after`."""
        if sort == "email":
            return ((self.email or "").lower(), self.id)
        return (self.created_at.isoformat(), self.id)


@dataclass(frozen=True)
class CustomerQuery:
    q: str = ""
    plan: str = ""
    status: str = ""
    sort: str = "newest"  # newest | oldest | email
    # Keyset paging: the sort key of the last row shown (`CustomerRow.cursor`), rows after it.
    after: tuple[str, int] | None = None


SORTS = ("newest", "oldest", "email")
# Counts stop here: "1,000+" costs the same at 10,000 or 10 million customers.
COUNT_CAP = 1_000


@dataclass(frozen=True)
class AuditEntryRow:
    """An audit entry and what its ids name today (app/admin/service.py makes it readable)."""

    entry: AuditLog
    customer_email: str | None  # the customer it acted on (target_type "customer")
    customer_name: str | None
    customer_deleted_at: datetime | None
    actor_now: str | None  # the acting user's email today; None: a system entry or deleted


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _prefix(column: Column, prefix: str) -> ColumnElement[bool]:
    """`column` starts with `prefix`, as an index range scan plus an exact LIKE check."""
    return and_(
        column >= prefix,
        column < _upper(prefix),
        column.like(_escape_like(prefix) + "%", escape="\\"),
    )


class unicode_lower(FunctionElement[str]):
    """`lower()` of every letter: `lower()` on PostgreSQL, the function registered on each
    connection on SQLite (whose own `lower()` leaves `É` as it is)."""

    type = String()
    inherit_cache = True


@compiles(unicode_lower)
def _lower(element: unicode_lower, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(unicode_lower, "sqlite")
def _sqlite_lower(element: unicode_lower, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{UNICODE_LOWER}({compiler.process(element.clauses, **kw)})"


@dataclass(frozen=True)
class _SearchShape:
    """What a customer search's statement depends on, its values aside."""

    term: bool
    ascii: bool
    plan: bool
    status: bool
    sort: str
    after: bool
    walk: bool
    counting: bool

    @classmethod
    def of(
        cls, params: CustomerQuery, *, walk: bool = False, counting: bool = False
    ) -> _SearchShape:
        term = params.q.strip()
        return cls(
            term=bool(term),
            ascii=term.isascii(),
            plan=bool(params.plan),
            status=bool(params.status),
            sort="" if counting else params.sort,
            after=params.after is not None and not counting,
            walk=walk,
            counting=counting,
        )


# Built once per shape (a few dozen at most).
_SEARCHES: dict[_SearchShape, Select[Any]] = {}


def _upper(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _bound_prefix(column: Any, name: str) -> ColumnElement[bool]:
    """`_prefix` with its bounds and pattern bound: `{name}_lo`, `{name}_hi`, `{name}_like`."""
    return and_(
        column >= bindparam(f"{name}_lo", type_=String()),
        column < bindparam(f"{name}_hi", type_=String()),
        column.like(bindparam(f"{name}_like", type_=String()), escape="\\"),
    )


def _search_values(params: CustomerQuery, limit: int) -> dict[str, Any]:
    values: dict[str, Any] = {"limit": limit, "plan": params.plan, "status": params.status}
    term = params.q.strip()
    if term:
        lowered = term.lower()
        values.update(
            lo_lo=lowered,
            lo_hi=_upper(lowered),
            lo_like=_escape_like(lowered) + "%",
            x_lo=term,
            x_hi=_upper(term),
            x_like=_escape_like(term) + "%",
        )
    if params.after is not None:
        key, values["after_id"] = params.after
        values["after_key"] = key if params.sort == "email" else datetime.fromisoformat(key)
    return values


def _utc_month(session: AsyncSession, column: Any) -> Any:
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM")
    return func.strftime("%Y-%m", column)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


class AdminRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Overview ----------------------------------------------------------------------------

    async def subscription_counts(self) -> list[SubscriptionCount]:
        """(plan_slug, interval, status, count) over every subscription: one GROUP BY."""
        query = select(
            Subscription.plan_slug,
            Subscription.interval,
            Subscription.status,
            func.count(),
        ).group_by(Subscription.plan_slug, Subscription.interval, Subscription.status)
        return [(p, i, s, int(n)) for p, i, s, n in (await self.session.execute(query)).all()]

    async def churned_between(
        self, start: datetime, end: datetime, free_slugs: list[str], live_statuses: list[str]
    ) -> int:
        """Subscriptions that ended in [start, end): `canceled_at` in the window and no longer
        on a paid plan (back on a free plan, or in an ended status)."""
        query = (
            select(func.count())
            .select_from(Subscription)
            .where(
                Subscription.canceled_at >= start,
                Subscription.canceled_at < end,
                or_(
                    Subscription.plan_slug.in_(free_slugs),
                    Subscription.status.not_in(live_statuses),
                ),
            )
        )
        return int(await self.session.scalar(query) or 0)

    async def paid_since_before(
        self, moment: datetime, paid_slugs: list[str], paid_statuses: list[str]
    ) -> int:
        """Paid subscriptions now whose paid life began before `moment`: the Stripe ledger's
        `customer.subscription.created` for the subscription, or the row's `created_at` when
        the ledger has no such event (a plan set without Stripe)."""
        created = select(StripeEvent.id).where(
            StripeEvent.type == "customer.subscription.created",
            StripeEvent.object_id == Subscription.stripe_subscription_id,
        )
        created_before = created.where(StripeEvent.stripe_created < int(moment.timestamp()))
        query = (
            select(func.count())
            .select_from(Subscription)
            .where(
                Subscription.plan_slug.in_(paid_slugs),
                Subscription.status.in_(paid_statuses),
                or_(
                    exists(created_before),
                    and_(~exists(created), Subscription.created_at < moment),
                ),
            )
        )
        return int(await self.session.scalar(query) or 0)

    async def revenue_by_month(self, since: datetime) -> dict[tuple[str, str], int]:
        """Sum of paid invoices' `amount_paid` by (YYYY-MM of the invoice date, currency)."""
        month = _utc_month(self.session, Invoice.created_at)
        query = (
            select(month, Invoice.currency, func.sum(Invoice.amount_paid))
            .where(Invoice.status == "paid", Invoice.created_at >= since)
            .group_by(month, Invoice.currency)
        )
        rows = (await self.session.execute(query)).all()
        return {(str(m), str(c)): int(total or 0) for m, c, total in rows}

    async def usage_by_day(self, since: date) -> dict[tuple[str, date], int]:
        """Usage of every customer per (meter, UTC day) since `since` (the day of the daily
        roll-ups' buckets), from the per-meter roll-ups: a few rows a day whatever the number
        of customers or events."""
        query = (
            select(UsageMeterDay.meter_code, UsageMeterDay.day, func.sum(UsageMeterDay.amount))
            .where(UsageMeterDay.day >= since)
            .group_by(UsageMeterDay.meter_code, UsageMeterDay.day)
        )
        rows = (await self.session.execute(query)).all()
        return {(str(code), _as_date(day)): int(total or 0) for code, day, total in rows}

    async def payment_problems(self, statuses: list[str], limit: int = 20) -> list[PaymentProblem]:
        """Customers whose subscription is past due or unpaid, with their latest open invoice."""
        inner = aliased(Invoice)
        latest_open = (
            select(func.max(inner.id))
            .where(
                inner.customer_id == Customer.id,
                inner.status.in_(("open", "uncollectible")),
            )
            .correlate(Customer)
            .scalar_subquery()
        )
        query = (
            select(Customer, Subscription, Invoice)
            .join(Subscription, Subscription.customer_id == Customer.id)
            .outerjoin(Invoice, Invoice.id == latest_open)
            .where(Subscription.status.in_(statuses))
            .order_by(Subscription.updated_at.desc(), Subscription.id.desc())
            .limit(limit)
        )
        return [(c, s, i) for c, s, i in (await self.session.execute(query)).all()]

    async def rejected_meter_events(self, limit: int = 20) -> list[StripeOutboxMessage]:
        """Meter events Stripe accepted, then rejected (a `v1.billing.meter.error_report_triggered`
        thin event flagged them): newest first."""
        query = (
            select(StripeOutboxMessage)
            .where(StripeOutboxMessage.status == "rejected")
            .order_by(StripeOutboxMessage.id.desc())
            .limit(limit)
        )
        return list(await self.session.scalars(query))

    # Customers -----------------------------------------------------------------------------

    def _dialect(self) -> str:
        return self.session.bind.dialect.name if self.session.bind is not None else ""

    def _customer_filter(
        self, query: AnySelect, shape: _SearchShape, *, search_indexes: bool = True
    ) -> AnySelect:
        """The search's conditions, on bind parameters (`_search_values`)."""
        if shape.term:
            # An ASCII term is matched on `lower(column)`, which the expression indexes serve
            # on both databases. A non-ASCII term needs `unicode_lower`, which on SQLite no
            # index serves (an index on a function that only this app registers would break
            # writes from any other SQLite client), so such a search scans the customers there.
            lower = func.lower if shape.ascii else unicode_lower
            matches = or_(
                _bound_prefix(lower(Customer.email), "lo"),
                _bound_prefix(lower(Customer.name), "lo"),
                _bound_prefix(Customer.external_id, "x"),
            )
            if not search_indexes:
                # Wrapped, the terms serve no index: SQLite walks the ORDER BY's instead.
                matches = func.coalesce(matches, false()) == true()
            query = query.where(matches)
        if shape.plan:
            query = query.where(Subscription.plan_slug == bindparam("plan"))
        if shape.status:
            query = query.where(Subscription.status == bindparam("status"))
        return query

    async def count_customers(self, params: CustomerQuery, cap: int = COUNT_CAP) -> int:
        """How many customers match, counted up to `cap + 1` at most (read: "more than cap")."""
        shape = _SearchShape.of(params, counting=True)
        statement = _SEARCHES.get(shape)
        if statement is None:
            query = select(Customer.id)
            if shape.plan or shape.status:
                query = query.join(Subscription, Subscription.customer_id == Customer.id)
            matching = self._customer_filter(query, shape).limit(bindparam("limit")).subquery()
            statement = _SEARCHES[shape] = select(func.count()).select_from(matching)
        values = _search_values(params, cap + 1)
        return int(await self.session.scalar(statement, values) or 0)

    async def customers(
        self, params: CustomerQuery, *, limit: int, many: bool = False
    ) -> list[CustomerRow]:
        """A page of customers in the query's order, after `params.after` (keyset paging: as
        cheap on the hundredth page as on the first). `many`: the search matches more than
        `COUNT_CAP` customers, so on SQLite the signup-date index is walked and matches are
        picked from it (25 are found within the first few dozen rows) rather than every match
        found through the search indexes and sorted. Each shape of search is built once, its
        values bound (building and keying a statement cost more than running it)."""
        walk = many and params.sort != "email" and self._dialect() == "sqlite"
        shape = _SearchShape.of(params, walk=walk)
        statement = _SEARCHES.get(shape)
        if statement is None:
            statement = _SEARCHES[shape] = self._customer_page(shape)
        rows = (await self.session.execute(statement, _search_values(params, limit))).all()
        return [CustomerRow(**row._mapping) for row in rows]

    def _customer_page(self, shape: _SearchShape) -> Select[Any]:
        query = select(
            Customer.id,
            Customer.external_id,
            Customer.email,
            Customer.name,
            Subscription.plan_slug,
            Subscription.interval,
            Subscription.status,
            Subscription.cancel_at_period_end,
            Customer.stripe_customer_id,
            Customer.created_at,
        ).join(Subscription, Subscription.customer_id == Customer.id)
        query = self._customer_filter(query, shape, search_indexes=not shape.walk)
        if shape.sort == "email":
            email = func.coalesce(func.lower(Customer.email), "")
            if shape.after:
                cursor = tuple_(bindparam("after_key", type_=String()), bindparam("after_id"))
                query = query.where(tuple_(email, Customer.id) > cursor)
            query = query.order_by(email.asc(), Customer.id.asc())
        else:
            newest = shape.sort != "oldest"
            if shape.after:
                moment = bindparam("after_key", type_=Customer.__table__.c.created_at.type)
                key, cursor = (
                    tuple_(Customer.created_at, Customer.id),
                    tuple_(moment, bindparam("after_id")),
                )
                query = query.where(key < cursor if newest else key > cursor)
            if newest:
                query = query.order_by(Customer.created_at.desc(), Customer.id.desc())
            else:
                query = query.order_by(Customer.created_at.asc(), Customer.id.asc())
        return cast("Select[Any]", query.limit(bindparam("limit")))

    # Invoices ----------------------------------------------------------------------------

    async def invoices(
        self, status: str, *, offset: int, limit: int
    ) -> list[tuple[Invoice, Customer]]:
        query = select(Invoice, Customer).join(Customer, Customer.id == Invoice.customer_id)
        if status:
            query = query.where(Invoice.status == status)
        query = (
            query.order_by(Invoice.created_at.desc(), Invoice.id.desc()).offset(offset).limit(limit)
        )
        return [(i, c) for i, c in (await self.session.execute(query)).all()]

    async def invoice_totals(self, status: str) -> list[tuple[str, int, int, int]]:
        """(currency, count, sum of total, sum of amount_paid) for the filter."""
        query = select(
            Invoice.currency,
            func.count(),
            func.coalesce(func.sum(Invoice.total), 0),
            func.coalesce(func.sum(Invoice.amount_paid), 0),
        ).group_by(Invoice.currency)
        if status:
            query = query.where(Invoice.status == status)
        rows = (await self.session.execute(query.order_by(Invoice.currency))).all()
        return [(str(c), int(n), int(t), int(p)) for c, n, t, p in rows]

    # Stripe events -------------------------------------------------------------------------

    def _event_filter(self, query: AnySelect, status: str, type_prefix: str) -> AnySelect:
        if status:
            query = query.where(StripeEvent.status == status)
        if type_prefix:
            query = query.where(_prefix(StripeEvent.type, type_prefix))
        return query

    async def count_events(self, status: str, type_prefix: str) -> int:
        query = self._event_filter(
            select(func.count()).select_from(StripeEvent), status, type_prefix
        )
        return int(await self.session.scalar(query) or 0)

    async def events(
        self, status: str, type_prefix: str, *, offset: int, limit: int
    ) -> list[StripeEvent]:
        query = self._event_filter(select(StripeEvent), status, type_prefix)
        query = (
            query.order_by(StripeEvent.received_at.desc(), StripeEvent.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return list(await self.session.scalars(query))

    async def event(self, stripe_event_id: str) -> StripeEvent | None:
        return await self.session.scalar(
            select(StripeEvent).where(StripeEvent.stripe_event_id == stripe_event_id)
        )

    async def customer_events(self, stripe_customer_id: str, limit: int = 50) -> list[StripeEvent]:
        query = (
            select(StripeEvent)
            .where(StripeEvent.stripe_customer_id == stripe_customer_id)
            .order_by(StripeEvent.stripe_created.desc(), StripeEvent.id.desc())
            .limit(limit)
        )
        return list(await self.session.scalars(query))

    # Audit log (insert and read only: there is deliberately no update or delete here) --------

    def add_audit(self, entry: AuditLog) -> None:
        self.session.add(entry)

    async def audit_by_request_id(self, request_id: str) -> AuditLog | None:
        return await self.session.scalar(select(AuditLog).where(AuditLog.request_id == request_id))

    def _audit_filter(self, query: Select[Any], q: str, action: str) -> Select[Any]:
        term = q.strip()
        if term:
            like = "%" + _escape_like(term.lower()) + "%"
            query = query.where(
                or_(
                    unicode_lower(AuditLog.actor_email).like(like, escape="\\"),
                    unicode_lower(AuditLog.target_id).like(like, escape="\\"),
                    unicode_lower(AuditLog.reason).like(like, escape="\\"),
                    unicode_lower(AuditLog.action).like(like, escape="\\"),
                    # The customer acted on, by the email the page shows for it.
                    unicode_lower(Customer.email).like(like, escape="\\"),
                )
            )
        if action:
            query = query.where(AuditLog.action == action)
        return query

    @staticmethod
    def _with_target_customer(query: Select[Any]) -> Select[Any]:
        """Joined to the customer an entry acted on (customers.external_id is unique: at most
        one row each)."""
        return query.outerjoin(
            Customer,
            and_(AuditLog.target_type == "customer", Customer.external_id == AuditLog.target_id),
        )

    async def count_audit(self, q: str, action: str) -> int:
        query = select(func.count()).select_from(AuditLog)
        if q.strip():
            query = self._with_target_customer(query)
        return int(await self.session.scalar(self._audit_filter(query, q, action)) or 0)

    async def audit(self, q: str, action: str, *, offset: int, limit: int) -> list[AuditEntryRow]:
        """A page of entries, each with the people it names as they are now: the customer acted
        on (its email; None when gone or deleted) and whether the acting user still exists."""
        columns = cast(
            "Select[Any]",
            select(
                AuditLog, Customer.email, Customer.name, Customer.deleted_at, User.email
            ).select_from(AuditLog),
        )
        query = self._with_target_customer(columns).outerjoin(
            User, User.id == AuditLog.actor_user_id
        )
        query = self._audit_filter(query, q, action)
        query = query.order_by(AuditLog.id.desc()).offset(offset).limit(limit)
        return [
            AuditEntryRow(entry, email, name, deleted_at, actor_email)
            for entry, email, name, deleted_at, actor_email in await self.session.execute(query)
        ]

    async def invoice_numbers(self, stripe_invoice_ids: set[str]) -> dict[str, str]:
        """Stripe invoice id → its number, for the ids given that have one."""
        if not stripe_invoice_ids:
            return {}
        query = select(Invoice.stripe_invoice_id, Invoice.number).where(
            Invoice.stripe_invoice_id.in_(stripe_invoice_ids), Invoice.number.is_not(None)
        )
        return {row.stripe_invoice_id: row.number for row in await self.session.execute(query)}

    async def audit_for(self, target_type: str, target_id: str, limit: int = 100) -> list[AuditLog]:
        query = (
            select(AuditLog)
            .where(AuditLog.target_type == target_type, AuditLog.target_id == target_id)
            .order_by(AuditLog.id.desc())
            .limit(limit)
        )
        return list(await self.session.scalars(query))

    async def last_audit(
        self, actor_user_id: int, action: str, target_type: str, target_id: str
    ) -> AuditLog | None:
        query = (
            select(AuditLog)
            .where(
                AuditLog.target_type == target_type,
                AuditLog.target_id == target_id,
                AuditLog.action == action,
                AuditLog.actor_user_id == actor_user_id,
            )
            .order_by(AuditLog.id.desc())
            .limit(1)
        )
        return await self.session.scalar(query)
