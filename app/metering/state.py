"""What the metering writer knows inside one write transaction, and the rows it will write.

Plain data, no I/O: the writer loads it (app.metering.batch_repository), the rules change it
(app.metering.rules) and the writer persists what the rules produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from app.lib.ids import uuid7_batch
from app.metering.balance import BillingCycle, MeterState
from app.metering.ops import BY_RESERVATION, CustomerRef, Op

# Statuses in which Stripe keeps invoicing the subscription (as billing's LIVE_STATUSES).
_BILLABLE_STATUSES = frozenset({"trialing", "active", "past_due"})


@dataclass(frozen=True)
class CustomerPlan:
    """A customer with its subscription, as the writer and the balance reads need it."""

    id: int
    external_id: str
    subscription_external_id: str
    plan_slug: str
    status: str
    cycle: BillingCycle | None
    stripe_customer_id: str | None = None
    stripe_subscription_id: str | None = None
    # Its user deleted the account (app.privacy): the row stays for the books, usage stops.
    deleted: bool = False

    @property
    def bills_through_stripe(self) -> bool:
        """A live Stripe subscription carries the plan's metered prices, so overage can be
        billed; a plan set directly (complimentary, or by the API) cannot."""
        return (
            self.stripe_customer_id is not None
            and self.stripe_subscription_id is not None
            and self.status in _BILLABLE_STATUSES
        )


class EventRow(NamedTuple):
    """A usage event to insert: every column but `id`, in the table's insert order. A tuple, so
    SQLite's driver takes it almost as it is, with attribute access for the batch's lookups."""

    public_id: str
    customer_id: int
    meter_code: str
    transaction_id: str
    amount: int
    credits_amount: int
    period_start: datetime
    timestamp: datetime
    properties: dict[str, Any]
    fingerprint: str
    external_subscription_id: str | None
    reservation_id: int | None
    created_at: datetime


class Row:
    """Attribute access over a dict, so rows made in the batch and loaded rows read alike."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    def __getitem__(self, key: str) -> Any:
        return self.__dict__[key]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class MeterSlot:
    """One (customer, meter, period) as loaded and changed inside the batch."""

    total_id: int
    used_at_load: int
    credits_used_at_load: int
    period_start: datetime
    state: MeterState
    # Grant id -> its remainder now, for the grants the batch changed. A grant made in this
    # batch has no database id yet: it is keyed by its public id (a str).
    grant_remaining: dict[int | str, int] = field(default_factory=dict)
    # Read without a lock (PostgreSQL, app.metering.unlocked): the running total's row
    # version (xmin) and its `lots_holds_version`; None when locked.
    version: str | None = None
    lots_holds: int | None = None


@dataclass
class PendingRows:
    """The rows a batch's operations produced, written together before the commit. Ledger
    entries and committed reservations name grants and events by public id (str) until the
    database ids are known."""

    events: list[EventRow] = field(default_factory=list)
    grants: list[dict[str, Any]] = field(default_factory=list)
    reservations: list[dict[str, Any]] = field(default_factory=list)
    reservation_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)


class BatchState:
    """The meter state one batch of operations is applied to: the customers, slots and
    idempotency records loaded for it, as the operations applied so far left them, and the
    rows they produced (`rows`)."""

    def __init__(self, now: datetime, upgrade_url: str) -> None:
        self.now = now
        self.upgrade_url = upgrade_url
        self._ids: list[str] = []
        self.plans: dict[str, CustomerPlan] = {}  # by customer external id
        self.plans_by_sub: dict[str, CustomerPlan] = {}
        self.plans_by_id: dict[int, CustomerPlan] = {}
        self.slots: dict[tuple[int, str], MeterSlot] = {}
        # Events, reservations and grants by (customer id, transaction id); reservations also
        # by public id. Loaded rows (SQLAlchemy rows), or rows made in this batch.
        self.events: dict[tuple[int, str], Any] = {}
        self.reservations_by_tx: dict[tuple[int, str], Any] = {}
        self.reservations: dict[str, Any] = {}
        self.grants: dict[tuple[int, str], Any] = {}
        # Grant id -> credits revoked of it so far (refunds and disputes less what was restored).
        self.revoked: dict[int | str, int] = {}
        # Converted guests named by the batch (customer id -> external id): writes refused.
        self.converted: dict[int, str] = {}
        self.rows = PendingRows()

    def add_plans(self, plans: list[CustomerPlan]) -> None:
        for plan in plans:
            self.plans[plan.external_id] = plan
            self.plans_by_sub[plan.subscription_external_id] = plan
            self.plans_by_id[plan.id] = plan

    def resolve(self, ref: CustomerRef) -> CustomerPlan | None:
        """The customer a reference names: by subscription when one is given."""
        if ref.external_subscription_id:
            return self.plans_by_sub.get(ref.external_subscription_id)
        if ref.external_customer_id:
            return self.plans.get(ref.external_customer_id)
        return None

    def plan_for(self, op: Op) -> CustomerPlan | None:
        """The customer `op` is for (through its reservation for a commit or release)."""
        if isinstance(op, BY_RESERVATION):
            row = self.reservations.get(op.reservation_id)
            return self.plans_by_id.get(row.customer_id) if row is not None else None
        return self.resolve(op.customer)

    def new_id(self) -> str:
        """A public id (UUIDv7) for a row made in this batch."""
        if not self._ids:
            self._ids = uuid7_batch(64)
        return self._ids.pop()
