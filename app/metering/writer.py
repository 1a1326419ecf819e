"""Group commit for metering writes.

Concurrent requests put their operation on a queue; one task per process takes
everything waiting, applies it in a single write transaction (SQLite: BEGIN
IMMEDIATE; PostgreSQL: row locks taken in a fixed order) and only then answers
each request. Operations in a batch are applied one after another against the
same in-memory state, so the no-overdraft rule holds exactly as if they had run
in separate transactions, while the database sees one commit per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.catalog.models import Catalog
from app.db.changes import BALANCES, announce
from app.db.engine import SyncWork
from app.lib.clock import as_utc, utcnow
from app.lib.errors import Conflict, DomainError, InsufficientBalance, NotFound, ValidationFailed
from app.lib.ids import uuid7_batch
from app.metering import repository as repo
from app.metering.arrivals import ARRIVALS
from app.metering.balance import CreditLot, MeterState, current_period, usage_day_start
from app.metering.cache import BalanceCache
from app.metering.ops import (
    CommitReservation,
    CustomerRef,
    EventResult,
    GrantCredits,
    GrantResult,
    Op,
    RecordUsage,
    ReleaseReservation,
    ReservationResult,
    Reserve,
    Result,
    fingerprint,
)
from app.metering.outbox import meter_event_message

log = structlog.get_logger()
MAX_BATCH = 1500
# Loop turns the writer waits at most for requests under way (see app.metering.arrivals).
_MAX_GATHER_ROUNDS = 100
_RETRIES = 3
# Tuples, built once: `A | B` in an isinstance call builds a union on every evaluation, and
# these checks run for every operation of a batch.
_BY_CUSTOMER = (RecordUsage, Reserve, GrantCredits)
_BY_RESERVATION = (CommitReservation, ReleaseReservation)


@dataclass
class _Slot:
    """One (customer, meter, period) as loaded and changed inside the batch."""

    total_id: int
    used_at_load: int
    credits_used_at_load: int
    period_start: datetime
    state: MeterState
    grant_remaining: dict[int, int] = field(default_factory=dict)


class _Batch:
    def __init__(self, conn: Connection, catalog: Catalog, now: datetime, upgrade_url: str) -> None:
        self.conn = conn
        self.catalog = catalog
        self.now = now
        self.upgrade_url = upgrade_url
        self._ids: list[str] = []
        self.plans: dict[str, repo.CustomerPlan] = {}
        self.plans_by_sub: dict[str, repo.CustomerPlan] = {}
        self.plans_by_id: dict[int, repo.CustomerPlan] = {}
        self.slots: dict[tuple[int, str], _Slot] = {}
        self.events: dict[tuple[int, str], Any] = {}
        self.reservations_by_tx: dict[tuple[int, str], Any] = {}
        self.reservations: dict[str, Any] = {}
        self.grants: dict[tuple[int, str], Any] = {}
        self.new_events: list[repo.EventRow] = []
        self.new_grants: list[dict[str, Any]] = []
        self.new_reservations: list[dict[str, Any]] = []
        self.reservation_updates: dict[str, dict[str, Any]] = {}
        self.ledger: list[dict[str, Any]] = []
        self.outbox: list[dict[str, Any]] = []

    def _new_id(self) -> str:
        if not self._ids:
            self._ids = uuid7_batch(64)
        return self._ids.pop()

    # Loading -------------------------------------------------------------------

    def load(self, ops: list[Op]) -> None:
        refs = [op.customer for op in ops if isinstance(op, _BY_CUSTOMER)]
        self.reservations = repo.reservations_by_public_id(
            self.conn,
            [op.reservation_id for op in ops if isinstance(op, _BY_RESERVATION)],
        )
        plans = repo.customer_plans(
            self.conn,
            # A subscription finds its customer (whose external id comes with the row, for
            # `_check_owner`); a customer id given with it needs no row of its own.
            external_ids=[
                r.external_customer_id
                for r in refs
                if r.external_customer_id and not r.external_subscription_id
            ],
            subscription_ids=[
                r.external_subscription_id for r in refs if r.external_subscription_id
            ],
            customer_ids=[row.customer_id for row in self.reservations.values()],
        )
        for plan in plans:
            self.plans[plan.external_id] = plan
            self.plans_by_sub[plan.subscription_external_id] = plan
            self.plans_by_id[plan.id] = plan
        event_keys, reserve_keys, grant_keys, slot_keys = [], [], [], set()
        for op in ops:
            plan = self._plan_or_none(op)
            if plan is None:
                continue
            if isinstance(op, RecordUsage):
                event_keys.append((plan.id, op.transaction_id))
                slot_keys.add((plan.id, op.meter_code))
            elif isinstance(op, Reserve):
                reserve_keys.append((plan.id, op.transaction_id))
                slot_keys.add((plan.id, op.meter_code))
            elif isinstance(op, GrantCredits):
                grant_keys.append((plan.id, op.transaction_id))
                slot_keys.add((plan.id, op.meter_code))
            else:
                row = self.reservations.get(op.reservation_id)
                if row is not None:
                    event_keys.append((plan.id, row.transaction_id))
                    slot_keys.add((plan.id, row.meter_code))
        self.events = repo.existing_events(self.conn, event_keys)
        self.reservations_by_tx = repo.existing_reservations_by_tx(self.conn, reserve_keys)
        self.grants = repo.existing_grants(self.conn, grant_keys)
        # A fixed lock order across processes, so two batches never wait on each other in a cycle.
        for customer_id, meter_code in sorted(slot_keys):
            if self.catalog.meter(meter_code) is not None:
                self._load_slot(customer_id, meter_code)

    def _plan_or_none(self, op: Op) -> repo.CustomerPlan | None:
        if isinstance(op, _BY_RESERVATION):
            row = self.reservations.get(op.reservation_id)
            return self.plans_by_id.get(row.customer_id) if row is not None else None
        return self._resolve(op.customer)

    def _resolve(self, ref: CustomerRef) -> repo.CustomerPlan | None:
        if ref.external_subscription_id:
            return self.plans_by_sub.get(ref.external_subscription_id)
        if ref.external_customer_id:
            return self.plans.get(ref.external_customer_id)
        return None

    def _load_slot(self, customer_id: int, meter_code: str) -> _Slot:
        plan = self.plans_by_id[customer_id]
        catalog_plan = self.catalog.plan(plan.plan_slug) or self.catalog.default_plan
        quota = catalog_plan.quotas[meter_code]
        period = current_period(quota, self.now, plan.cycle)
        total = repo.lock_total(
            self.conn, customer_id, meter_code, period.start, period.end, self.now
        )
        lots, expired = repo.lock_credit_lots(self.conn, customer_id, meter_code, self.now)
        slot = _Slot(
            total_id=total.id,
            used_at_load=total.used,
            credits_used_at_load=total.credits_used,
            period_start=period.start,
            state=MeterState(
                limit=quota.included,
                used=total.used,
                credits_used=total.credits_used,
                lots=lots,
                held=repo.held_amount(self.conn, customer_id, meter_code, self.now),
                # Overage is billed on the Stripe subscription; without one the quota is a hard limit.
                overage=quota.has_overage and plan.bills_through_stripe,
            ),
        )
        for row in expired:  # credits past their expiry leave the balance through the ledger
            slot.grant_remaining[row.id] = 0
            self.ledger.append(
                self._ledger(customer_id, row.id, meter_code, "expire", -row.remaining)
            )
        self.slots[(customer_id, meter_code)] = slot
        return slot

    # Applying ------------------------------------------------------------------

    def apply(self, op: Op) -> Result:
        if isinstance(op, RecordUsage):
            return self._record(op)
        if isinstance(op, Reserve):
            return self._reserve(op)
        if isinstance(op, CommitReservation):
            return self._commit(op)
        if isinstance(op, ReleaseReservation):
            return self._release(op)
        return self._grant(op)

    def _customer(self, ref: CustomerRef) -> repo.CustomerPlan:
        plan = self._resolve(ref)
        if plan is None:
            if ref.external_subscription_id:
                raise NotFound(
                    f"No subscription with external_id {ref.external_subscription_id!r}.",
                    code="subscription_not_found",
                )
            raise NotFound(
                f"No customer with external_id {ref.external_customer_id!r}.",
                code="customer_not_found",
            )
        return plan

    def _slot(self, customer_id: int, meter_code: str) -> _Slot:
        slot = self.slots.get((customer_id, meter_code))
        if slot is None:
            raise NotFound(
                f"No meter with code {meter_code!r}.", code="meter_not_found", field="code"
            )
        return slot

    def _insufficient(
        self, meter_code: str, state: MeterState, amount: int, exclude: int = 0
    ) -> InsufficientBalance:
        return InsufficientBalance(
            f"Not enough {meter_code} left: {state.available(exclude)} available, {amount} required.",
            meter=meter_code,
            available=state.available(exclude),
            required=amount,
            upgrade_url=self.upgrade_url,
        )

    def _record(self, op: RecordUsage) -> EventResult:
        plan = self._customer(op.customer)
        existing = self.events.get((plan.id, op.transaction_id))
        if existing is not None and existing.fingerprint == op.fingerprint:
            # A retry gets its first outcome, even one stored before the check below existed.
            return _event_result(existing, plan, replayed=True)
        ref = op.customer
        if ref.external_customer_id and ref.external_subscription_id:
            _check_owner(ref, plan)
        if existing is not None:
            raise _reused(existing.transaction_id)
        slot = self._slot(plan.id, op.meter_code)
        if not slot.state.can_use(op.amount):
            raise self._insufficient(op.meter_code, slot.state, op.amount)
        return self._accept(
            plan,
            slot,
            op.meter_code,
            op.transaction_id,
            op.amount,
            op.timestamp,
            op.properties,
            op.fingerprint,
            None,
        )

    def _accept(
        self,
        plan: repo.CustomerPlan,
        slot: _Slot,
        meter_code: str,
        transaction_id: str,
        amount: int,
        timestamp: datetime | None,
        properties: dict[str, Any],
        fingerprint: str,
        reservation_id: int | None,
    ) -> EventResult:
        state = slot.state
        billed_before = state.billed_overage
        taken = state.consume(amount)
        overage = state.billed_overage - billed_before
        public_id = self._new_id()
        credits_amount = 0
        if taken:
            remaining_after = {lot.grant_id: lot.remaining for lot in state.lots}
            for grant_id, take in taken:
                credits_amount += take
                slot.grant_remaining[grant_id] = remaining_after[grant_id]
                self.ledger.append(
                    self._ledger(
                        plan.id, grant_id, meter_code, "consume", -take, event_public_id=public_id
                    )
                )
        timestamp = timestamp or self.now
        row = repo.EventRow(
            public_id,
            plan.id,
            meter_code,
            transaction_id,
            amount,
            credits_amount,
            slot.period_start,
            timestamp,
            properties,
            fingerprint,
            plan.subscription_external_id,
            reservation_id,
            self.now,
        )
        self.new_events.append(row)
        self.events[(plan.id, transaction_id)] = row
        if overage:
            self.outbox.append(self._meter_event(plan, meter_code, transaction_id, overage))
        return EventResult(
            public_id=public_id,
            customer_external_id=plan.external_id,
            external_subscription_id=plan.subscription_external_id,
            meter_code=meter_code,
            transaction_id=transaction_id,
            amount=amount,
            credits_amount=credits_amount,
            timestamp=timestamp,
            created_at=self.now,
            properties=properties,
        )

    def _meter_event(
        self, plan: repo.CustomerPlan, meter_code: str, transaction_id: str, value: int
    ) -> dict[str, Any]:
        """The billed part of an event, for Stripe Billing Meters; our transaction id makes
        Stripe count it once however often it is sent."""
        assert plan.stripe_customer_id is not None
        # Stripe takes identifiers of at most 100 characters; ours are up to 255 each.
        digest = hashlib.sha256(f"{plan.external_id}\0{transaction_id}".encode()).hexdigest()
        return meter_event_message(
            identifier=f"{meter_code}:{digest[:64]}",
            stripe_customer_id=plan.stripe_customer_id,
            meter_code=meter_code,
            value=value,
            now=self.now,
        )

    def _reserve(self, op: Reserve) -> ReservationResult:
        plan = self._customer(op.customer)
        existing = self.reservations_by_tx.get((plan.id, op.transaction_id))
        if existing is not None:
            if existing.fingerprint != op.fingerprint:
                raise _reused(op.transaction_id)
            return self._reservation_result(existing, plan, replayed=True)
        if (plan.id, op.transaction_id) in self.events:
            raise _reused(op.transaction_id, "is already a recorded usage event")
        slot = self._slot(plan.id, op.meter_code)
        if not slot.state.can_use(op.amount):
            raise self._insufficient(op.meter_code, slot.state, op.amount)
        slot.state.held += op.amount
        row = {
            "public_id": self._new_id(),
            "customer_id": plan.id,
            "meter_code": op.meter_code,
            "amount": op.amount,
            "transaction_id": op.transaction_id,
            "fingerprint": op.fingerprint,
            "status": "held",
            "expires_at": self.now + timedelta(seconds=op.ttl_seconds),
            "committed_amount": None,
            "usage_event_id": None,
            "created_at": self.now,
            "updated_at": self.now,
        }
        self.new_reservations.append(row)
        self.reservations_by_tx[(plan.id, op.transaction_id)] = _Row(row)
        self.reservations[row["public_id"]] = _Row(row)
        return self._reservation_result(_Row(row), plan)

    def _reservation(self, reservation_id: str) -> tuple[Any, repo.CustomerPlan]:
        row = self.reservations.get(reservation_id)
        if row is None:
            raise NotFound(f"No reservation {reservation_id!r}.", code="reservation_not_found")
        return row, self.plans_by_id[row.customer_id]

    def _status(self, row: Any) -> str:
        if row.status == "held" and as_utc(row.expires_at) <= self.now:
            return "expired"
        return str(row.status)

    def _commit(self, op: CommitReservation) -> ReservationResult:
        row, plan = self._reservation(op.reservation_id)
        status = self._status(row)
        amount = row.amount if op.amount is None else op.amount
        if status == "committed":
            # No amount means the whole hold: a retry of a partial commit must repeat its amount.
            if amount != row.committed_amount:
                raise Conflict(
                    "This reservation was already committed with another amount.",
                    code="reservation_committed",
                )
            return self._reservation_result(row, plan, replayed=True)
        if status != "held":
            raise Conflict(
                f"This reservation is {status}; it holds nothing.", code=f"reservation_{status}"
            )
        if amount > row.amount:
            raise ValidationFailed(
                f"amount {amount} is more than the {row.amount} reserved.", field="amount"
            )
        if (plan.id, row.transaction_id) in self.events:
            raise _reused(row.transaction_id, "is already a recorded usage event")
        slot = self._slot(plan.id, row.meter_code)
        if not slot.state.can_use(amount, exclude_hold=row.amount):
            raise self._insufficient(row.meter_code, slot.state, amount, exclude=row.amount)
        slot.state.held -= row.amount
        payload = {"reservation": row.public_id, "amount": amount}
        event = self._accept(
            plan,
            slot,
            row.meter_code,
            row.transaction_id,
            amount,
            None,
            {"reservation_id": row.public_id},
            fingerprint(payload),
            row.id,
        )
        values = {"status": "committed", "committed_amount": amount, "updated_at": self.now}
        self._update_reservation(row, values)
        return self._reservation_result(self.reservations[row.public_id], plan, event=event)

    def _release(self, op: ReleaseReservation) -> ReservationResult:
        row, plan = self._reservation(op.reservation_id)
        status = self._status(row)
        if status == "committed":
            raise Conflict("This reservation was already committed.", code="reservation_committed")
        if status == "held":
            slot = self._slot(plan.id, row.meter_code)
            slot.state.held -= row.amount
            self._update_reservation(row, {"status": "released", "updated_at": self.now})
            row = self.reservations[row.public_id]
            return self._reservation_result(row, plan)
        return self._reservation_result(row, plan, replayed=True)

    def _update_reservation(self, row: Any, values: dict[str, Any]) -> None:
        merged = {**_as_dict(row), **values}
        self.reservations[row.public_id] = _Row(merged)
        pending = next((r for r in self.new_reservations if r["public_id"] == row.public_id), None)
        if pending is not None:
            pending.update(values)
        else:
            self.reservation_updates.setdefault(row.public_id, {}).update(values)

    def _grant(self, op: GrantCredits) -> GrantResult:
        plan = self._customer(op.customer)
        existing = self.grants.get((plan.id, op.transaction_id))
        if existing is not None:
            if existing.fingerprint != op.fingerprint:
                raise _reused(op.transaction_id)
            return _grant_result(existing, plan, replayed=True)
        slot = self._slot(plan.id, op.meter_code)
        if op.expires_at is not None and op.expires_at <= self.now:
            raise ValidationFailed("expires_at must be in the future.", field="expires_at")
        row = {
            "public_id": self._new_id(),
            "customer_id": plan.id,
            "meter_code": op.meter_code,
            "amount": op.amount,
            "remaining": op.amount,
            "source": op.source,
            "reason": op.reason,
            "transaction_id": op.transaction_id,
            "fingerprint": op.fingerprint,
            "expires_at": op.expires_at,
            "created_at": self.now,
        }
        self.new_grants.append(row)
        self.grants[(plan.id, op.transaction_id)] = _Row(row)
        # The lot is usable at once by later operations in this batch; its id is known after insert.
        slot.state.lots.append(CreditLot(row["public_id"], op.amount, op.expires_at))
        self.ledger.append(
            self._ledger(plan.id, row["public_id"], op.meter_code, "grant", op.amount)
        )
        return _grant_result(_Row(row), plan)

    def _ledger(
        self,
        customer_id: int,
        grant_id: int | str,
        meter_code: str,
        kind: str,
        amount: int,
        event_public_id: str | None = None,
    ) -> dict[str, Any]:
        return {
            "customer_id": customer_id,
            "grant_id": grant_id,
            "meter_code": meter_code,
            "kind": kind,
            "amount": amount,
            "usage_event_id": event_public_id,
            "created_at": self.now,
        }

    def _reservation_result(
        self,
        row: Any,
        plan: repo.CustomerPlan,
        *,
        event: EventResult | None = None,
        replayed: bool = False,
    ) -> ReservationResult:
        if event is None and row.status == "committed":
            stored = self.events.get((plan.id, row.transaction_id))
            event = _event_result(stored, plan) if stored is not None else None
        return ReservationResult(
            public_id=row.public_id,
            customer_external_id=plan.external_id,
            meter_code=row.meter_code,
            amount=row.amount,
            transaction_id=row.transaction_id,
            status=self._status(row),
            expires_at=as_utc(row.expires_at),
            created_at=as_utc(row.created_at),
            committed_amount=row.committed_amount,
            event=event,
            replayed=replayed,
        )

    # Writing -------------------------------------------------------------------

    def write(self) -> None:
        fresh = {row["public_id"]: row for row in self.new_grants}
        for slot in self.slots.values():
            for grant_id, value in slot.grant_remaining.items():
                if isinstance(grant_id, str):  # granted and partly used within this batch
                    fresh[grant_id]["remaining"] = value
        grant_ids = repo.insert_grants(self.conn, self.new_grants)
        repo.insert_events(self.conn, self.new_events)
        repo.add_to_days(self.conn, self._day_amounts())
        # Database ids are needed only where credits were consumed or a hold was committed.
        wanted = [e["usage_event_id"] for e in self.ledger if e["usage_event_id"] is not None]
        wanted += [row.public_id for row in self.new_events if row.reservation_id is not None]
        event_ids = repo.event_ids(self.conn, wanted)
        for slot in self.slots.values():
            state = slot.state
            if (state.used, state.credits_used) != (slot.used_at_load, slot.credits_used_at_load):
                repo.update_total(
                    self.conn, slot.total_id, state.used, state.credits_used, self.now
                )
            # Lots granted in this batch were inserted with their final remainder already.
            remaining = {
                grant_id: value
                for grant_id, value in slot.grant_remaining.items()
                if not isinstance(grant_id, str)
            }
            repo.set_grant_remaining(self.conn, remaining)
        for entry in self.ledger:
            if isinstance(entry["grant_id"], str):
                entry["grant_id"] = grant_ids[entry["grant_id"]]
            if entry["usage_event_id"] is not None:
                entry["usage_event_id"] = event_ids[entry["usage_event_id"]]
        repo.insert_ledger(self.conn, self.ledger)
        repo.insert_outbox(self.conn, self.outbox)
        for row in self.new_reservations:
            if row["status"] == "committed":
                row["usage_event_id"] = event_ids.get(self._event_public_id(row))
        repo.insert_reservations(self.conn, self.new_reservations)
        for public_id, values in self.reservation_updates.items():
            if values.get("status") == "committed":
                values["usage_event_id"] = event_ids.get(
                    self._event_public_id(self.reservations[public_id])
                )
            repo.update_reservation(self.conn, public_id, values)

    def _day_amounts(self) -> dict[tuple[int, str, datetime], int]:
        """The new events' amounts per (customer, meter, chart bucket)."""
        amounts: dict[tuple[int, str, datetime], int] = {}
        # Most events of a batch share their time (`now`): find each bucket once.
        buckets: dict[tuple[int, datetime], datetime] = {}
        for row in self.new_events:
            if not row.amount:
                continue
            # An event counts in the period it arrives in, whatever its timestamp says: a
            # backdated (or future-dated) one is charted at the edge of that period, so the
            # chart of a period sums to the period's usage.
            moment = min(max(row.timestamp, row.period_start), row.created_at)
            start = buckets.get((row.customer_id, moment))
            if start is None:
                cycle = self.plans_by_id[row.customer_id].cycle
                start = buckets[(row.customer_id, moment)] = usage_day_start(moment, cycle)
            key = (row.customer_id, row.meter_code, start)
            amounts[key] = amounts.get(key, 0) + row.amount
        return amounts

    def _event_public_id(self, reservation: Any) -> str | None:
        event = self.events.get((reservation["customer_id"], reservation["transaction_id"]))
        return event.public_id if event is not None else None


def _check_owner(ref: CustomerRef, plan: repo.CustomerPlan) -> None:
    """A customer id sent with a subscription id must be the subscription's customer: usage
    is never counted against a customer other than the one the caller named."""
    if ref.external_customer_id != plan.external_id:
        raise ValidationFailed(
            f"Subscription {ref.external_subscription_id!r} does not belong to customer "
            f"{ref.external_customer_id!r}: send that customer's own subscription, or only "
            "one of the two ids.",
            field="external_customer_id",
        )


def _customer_of(result: Result) -> str:
    return result.customer_external_id


def _reused(
    transaction_id: str, how: str = "was already used with a different payload"
) -> Conflict:
    return Conflict(
        f"transaction_id {transaction_id!r} {how}.",
        code="idempotency_conflict",
        transaction_id=transaction_id,
    )


class _Row:
    """Attribute access over a dict, so fresh rows and loaded rows read alike."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    def __getitem__(self, key: str) -> Any:
        return self.__dict__[key]


def _as_dict(row: Any) -> dict[str, Any]:
    if isinstance(row, _Row):
        return dict(row.__dict__)
    return dict(row._mapping)


def _event_result(row: Any, plan: repo.CustomerPlan, replayed: bool = False) -> EventResult:
    return EventResult(
        public_id=row.public_id,
        customer_external_id=plan.external_id,
        external_subscription_id=row.external_subscription_id or plan.subscription_external_id,
        meter_code=row.meter_code,
        transaction_id=row.transaction_id,
        amount=row.amount,
        credits_amount=row.credits_amount,
        timestamp=as_utc(row.timestamp),
        created_at=as_utc(row.created_at),
        properties=dict(row.properties or {}),
        replayed=replayed,
    )


def _grant_result(row: Any, plan: repo.CustomerPlan, replayed: bool = False) -> GrantResult:
    return GrantResult(
        public_id=row.public_id,
        customer_external_id=plan.external_id,
        meter_code=row.meter_code,
        amount=row.amount,
        remaining=row.remaining,
        source=row.source,
        reason=row.reason,
        transaction_id=row.transaction_id,
        expires_at=as_utc(row.expires_at) if row.expires_at else None,
        created_at=as_utc(row.created_at),
        replayed=replayed,
    )


_Outcome = tuple[Result | None, DomainError | None]


def _apply(
    conn: Connection, catalog: Catalog, ops: list[Op], upgrade_url: str, now: datetime
) -> list[_Outcome]:
    batch = _Batch(conn, catalog, now, upgrade_url)
    batch.load(ops)
    outcomes: list[_Outcome] = []
    for op in ops:
        try:
            outcomes.append((batch.apply(op), None))
        except DomainError as exc:
            outcomes.append((None, exc))
    batch.write()
    return outcomes


async def apply_batch(
    work: SyncWork | AsyncEngine,
    catalog: Catalog,
    ops: list[Op],
    upgrade_url: str,
    now: datetime | None = None,
) -> list[_Outcome]:
    """Apply `ops` in one write transaction; outcomes in the same order. Committed on return."""
    if isinstance(work, AsyncEngine):
        work = SyncWork(work)
        try:
            return await work.write(_apply, catalog, ops, upgrade_url, now or utcnow())
        finally:
            work.dispose()
    return await work.write(_apply, catalog, ops, upgrade_url, now or utcnow())


_Item = tuple[list[Op], "asyncio.Future[list[Result | BaseException]]"]


class WriteFailed(DomainError):
    """An operation of a batch request that could not be written, alone, after retries:
    nothing of it was stored, while other operations of the request were."""

    status_code = 500
    code = "internal_error"

    def __init__(self) -> None:
        super().__init__("This item could not be saved; nothing of it was recorded. Retry it.")


class UsageWriter:
    """The per-process queue in front of `apply_batch`.

    A queue item is one request's operations (one, or a batch request's many) and one future
    for all their outcomes, so a request of a hundred events costs one wake-up, not a hundred.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        catalog: Catalog,
        upgrade_url: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.work = SyncWork(engine)
        self.balances = BalanceCache()
        self.catalog = catalog
        self.upgrade_url = upgrade_url
        self.clock = clock
        # One queue and task per event loop: normally there is one loop per process, but a
        # test harness (or an embedding app) may drive the app from several.
        self._runners: dict[
            asyncio.AbstractEventLoop, tuple[asyncio.Queue[_Item], asyncio.Task[None]]
        ] = {}

    async def submit(self, op: Op) -> Result:
        (outcome,) = await self._enqueue([op])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def submit_many(self, ops: list[Op]) -> list[Result | DomainError]:
        """Several operations at once (a batch request): one queue item, so they share one
        transaction; each has its own outcome. An error that is not a domain error raises only
        when none of them was written (so a 5xx means nothing of the request was committed);
        otherwise the failed ones are `WriteFailed` outcomes."""
        if not ops:
            return []
        outcomes = await self._enqueue(ops)
        failures = [
            o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, DomainError)
        ]
        if not failures:
            return outcomes  # type: ignore[return-value]
        if not any(isinstance(o, Result) for o in outcomes):
            # Nothing of the request was written: one error for all of it (a 5xx).
            raise failures[0]
        # Some operations were written (each failing one was tried alone, in its own
        # transaction, and rolled back): the others are answered as they went, and a failed
        # one is a rejected item, never a 5xx for a request that was partly committed.
        return [
            WriteFailed() if isinstance(o, BaseException) and not isinstance(o, DomainError) else o
            for o in outcomes
        ]  # type: ignore[return-value]

    def _enqueue(self, ops: list[Op]) -> asyncio.Future[list[Result | BaseException]]:
        ARRIVALS.arrived()
        loop = asyncio.get_running_loop()
        runner = self._runners.get(loop)
        if runner is None or runner[1].done():
            for stale in [known for known in self._runners if known.is_closed()]:
                del self._runners[stale]
            queue: asyncio.Queue[_Item] = asyncio.Queue()
            runner = (queue, loop.create_task(self._run(queue), name="usage-writer"))
            self._runners[loop] = runner
        future: asyncio.Future[list[Result | BaseException]] = loop.create_future()
        runner[0].put_nowait((ops, future))  # the queue is unbounded
        return future

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for runner_loop, (_queue, task) in list(self._runners.items()):
            if runner_loop is loop:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            elif not runner_loop.is_closed():
                runner_loop.call_soon_threadsafe(task.cancel)
        self._runners.clear()
        self.work.dispose()

    async def _run(self, queue: asyncio.Queue[_Item]) -> None:
        while True:
            items = [await queue.get()]
            size = len(items[0][0])
            # Let the requests already under way reach the queue before committing: each
            # yield runs everything ready on the loop once. Under load that turns a stream of
            # small transactions into a few large ones (a transaction's fixed cost, loading
            # plans and totals, is most of the price of a small one). The writer yields while
            # usage requests are known to be on their way (`ARRIVALS`) or the queue still grows,
            # at most _MAX_GATHER_ROUNDS times; when idle it costs one loop iteration.
            rounds = 0
            while True:
                grew = False
                while size < MAX_BATCH and not queue.empty():
                    item = queue.get_nowait()
                    items.append(item)
                    size += len(item[0])
                    grew = True
                if size >= MAX_BATCH or rounds == _MAX_GATHER_ROUNDS:
                    break
                if rounds and not grew and not ARRIVALS.pending:
                    break
                rounds += 1
                await asyncio.sleep(0)
            live = [item for item in items if not item[1].cancelled()]
            if live:
                await self._process(live)

    async def _process(self, items: list[_Item]) -> None:
        outcomes = await self._outcomes([op for ops, _ in items for op in ops])
        self.balances.drop({_customer_of(o) for o in outcomes if not isinstance(o, BaseException)})
        # Other processes learn of credit grants at once; of usage, by their cache's expiry.
        grants = {(BALANCES, o.customer_external_id) for o in outcomes if type(o) is GrantResult}
        if grants:
            await announce(self.engine, grants)
        start = 0
        for ops, future in items:
            if not future.done():
                future.set_result(outcomes[start : start + len(ops)])
            start += len(ops)

    async def _outcomes(self, ops: list[Op]) -> list[Result | BaseException]:
        """Each operation's result or error, all committed on return."""
        error: BaseException = RuntimeError("metering batch failed after retries")
        for attempt in range(_RETRIES):
            try:
                applied = await apply_batch(
                    self.work, self.catalog, ops, self.upgrade_url, self.clock()
                )
            except (IntegrityError, OperationalError, DBAPIError) as exc:
                # A race with another process (unique key, deadlock, serialization): nothing was
                # committed, so the whole batch can run again and will see the other's writes.
                log.warning("metering batch retried", attempt=attempt + 1, error=str(exc)[:200])
                continue
            except Exception as exc:
                log.exception("metering batch failed", size=len(ops))
                error = exc
                break
            return [result if failure is None else failure for result, failure in applied]  # type: ignore[misc]
        if len(ops) > 1:
            # Isolate the operation that fails: each one alone, in its own transaction.
            outcomes: list[Result | BaseException] = []
            for op in ops:
                outcomes += await self._outcomes([op])
            return outcomes
        return [error]


__all__ = ["UsageWriter", "apply_batch"]
