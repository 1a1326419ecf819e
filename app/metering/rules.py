"""The metering rules: what each write does to the meter state, free of I/O.

`apply(state, op)` applies one operation to a batch's state (app.metering.state.BatchState)
exactly as if it had its own transaction: a retry with the same payload gets the stored
outcome, a different payload under the same transaction id is `409`, an amount that does not
fit is `402` with the numbers. Usage takes the included quota first, then credits (soonest
expiry first, never-expiring last), then billed overage where the plan has it
(app.metering.balance). The rows to write are added to `state.rows`; the result is returned,
or a `DomainError` raised.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from app.catalog.models import Catalog, Plan, Quota
from app.customers.statuses import SubscriptionStatus
from app.lib.clock import as_utc
from app.lib.errors import (
    Conflict,
    DomainError,
    InsufficientBalance,
    NotFound,
    ValidationFailed,
)
from app.metering.balance import CreditLot, MeterState, Period, current_period, percentage
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
    RevokeCredits,
    RevokeResult,
    fingerprint,
)
from app.metering.outbox import meter_event_message
from app.metering.state import BatchState, CustomerPlan, EventRow, MeterSlot, Row

# Loading -----------------------------------------------------------------------


def slot_period(
    catalog: Catalog, plan: CustomerPlan, meter_code: str, now: datetime
) -> tuple[Quota, Period]:
    """The customer's quota of a meter and its current period."""
    quota = quota_plan(catalog, plan.plan_slug, plan.status).quotas[meter_code]
    return quota, current_period(quota, now, plan.cycle)


def quota_plan(catalog: Catalog, plan_slug: str, status: str) -> Plan:
    """The plan whose quotas are in force: the subscription's, except while it is paused
    (Stripe bills nothing then), when the free plan's limits apply until it resumes."""
    if status == SubscriptionStatus.PAUSED:
        return catalog.default_plan
    return catalog.plan(plan_slug) or catalog.default_plan


def open_slot(
    state: BatchState,
    plan: CustomerPlan,
    meter_code: str,
    quota: Quota,
    period: Period,
    total: Any,
    lots: list[CreditLot],
    expired: list[Any],
    held: int,
) -> MeterSlot:
    """The slot of a (customer, meter) from its locked running total, unexpired credit lots and
    holds. Credits past their expiry that still show a remainder leave through the ledger."""
    slot = MeterSlot(
        total_id=total.id,
        used_at_load=total.used,
        credits_used_at_load=total.credits_used,
        period_start=period.start,
        version=getattr(total, "version", None),
        lots_holds=getattr(total, "lots_holds_version", None),
        state=MeterState(
            limit=quota.included,
            used=total.used,
            credits_used=total.credits_used,
            lots=lots,
            held=held,
            # Overage is billed on the Stripe subscription; without one the quota is a hard limit.
            overage=quota.has_overage and plan.bills_through_stripe,
        ),
    )
    for row in expired:
        slot.grant_remaining[row.id] = 0
        state.rows.ledger.append(
            _ledger(state, plan.id, row.id, meter_code, "expire", -row.remaining)
        )
    state.slots[(plan.id, meter_code)] = slot
    return slot


# Applying -------------------------------------------------------------------------


def apply(state: BatchState, op: Op) -> Result:
    """Apply `op` to `state`: its rows go to `state.rows`; a refusal raises a DomainError
    and changes nothing."""
    if isinstance(op, RecordUsage):
        return record(state, op)
    if isinstance(op, Reserve):
        return reserve(state, op)
    if isinstance(op, CommitReservation):
        return commit(state, op)
    if isinstance(op, ReleaseReservation):
        return release(state, op)
    if isinstance(op, RevokeCredits):
        return revoke(state, op)
    return grant(state, op)


Outcome = tuple[Result | None, DomainError | None]


def apply_all(state: BatchState, ops: Sequence[Op]) -> list[Outcome]:
    """`apply` each operation in turn: its result, or the error that refused it."""
    outcomes: list[Outcome] = []
    for op in ops:
        try:
            outcomes.append((apply(state, op), None))
        except DomainError as exc:
            outcomes.append((None, exc))
    return outcomes


def refused_events(
    state: BatchState, ops: Sequence[Op], outcomes: Sequence[Outcome]
) -> list[tuple[int, str]]:
    """(customer id, transaction id) of the usage events refused, of known customers: for a
    batch that did not look up stored events, the ones to look for. A stored event is answered
    as stored, before any check that could refuse it, so a refusal stands only for an event
    that was not stored."""
    return [
        (plan.id, op.transaction_id)
        for op, (_, error) in zip(ops, outcomes, strict=True)
        if error is not None
        and isinstance(op, RecordUsage)
        and (plan := state.plan_for(op)) is not None
    ]


def _customer(state: BatchState, ref: CustomerRef) -> CustomerPlan:
    plan = state.resolve(ref)
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


def _slot(state: BatchState, customer_id: int, meter_code: str) -> MeterSlot:
    slot = state.slots.get((customer_id, meter_code))
    if slot is None:
        raise NotFound(f"No meter with code {meter_code!r}.", code="meter_not_found", field="code")
    if state.converted and customer_id in state.converted:
        raise guest_converted(state.converted[customer_id])
    return slot


def guest_converted(external_id: str, target: str | None = None) -> Conflict:
    """A guest converted into a signed-up customer takes no more writes: its usage and credits
    moved to that customer (app.metering.guests), who is the one to send them to."""
    into = f" into {target!r}" if target else ""
    return Conflict(
        f"The guest {external_id!r} was converted{into}: its usage and credits moved to the "
        "signed-up customer. Send usage with that customer's external_id.",
        code="guest_converted",
    )


def customer_deleted(external_id: str) -> Conflict:
    """The customer's user deleted the account: its row stays for the invoices, and takes
    no new usage (what the customer API's upsert answers too)."""
    return Conflict(
        f"The customer {external_id!r} was deleted by its user: it takes no more usage. "
        "A new customer needs a new external_id.",
        code="customer_deleted",
    )


def _insufficient(
    state: BatchState, meter_code: str, meter: MeterState, amount: int, exclude: int = 0
) -> InsufficientBalance:
    return insufficient_balance(
        meter_code,
        meter.available(exclude),
        amount,
        state.upgrade_url,
        used=meter.used,
        credits_used=meter.credits_used,
        limit=meter.limit,
    )


def insufficient_balance(
    meter_code: str,
    available: int | None,
    required: int,
    upgrade_url: str,
    *,
    used: int,
    credits_used: int,
    limit: int | None,
) -> InsufficientBalance:
    """The `402`: the meter, what is available and required, where to upgrade, and the quota
    as the balances show it (`used` in the period, credits' share included; `limit` the
    included quota; `percentage` of it used, 0-100, as `GET .../balances` computes it)."""
    return InsufficientBalance(
        f"Not enough {meter_code} left: {available} available, {required} required.",
        meter=meter_code,
        available=available,
        required=required,
        upgrade_url=upgrade_url,
        quota={
            "used": used,
            "limit": limit,
            "percentage": percentage(used, credits_used, limit),
        },
    )


def record(state: BatchState, op: RecordUsage) -> EventResult:
    plan = _customer(state, op.customer)
    existing = state.events.get((plan.id, op.transaction_id))
    if existing is not None and existing.fingerprint == op.fingerprint:
        # A retry gets its first outcome, even one stored before the check below existed.
        return event_result(existing, plan, replayed=True)
    ref = op.customer
    if ref.external_customer_id and ref.external_subscription_id:
        check_owner(ref, plan)
    if existing is not None:
        raise reused(existing.transaction_id)
    if plan.deleted:
        raise customer_deleted(plan.external_id)
    slot = _slot(state, plan.id, op.meter_code)
    if not slot.state.can_use(op.amount):
        raise _insufficient(state, op.meter_code, slot.state, op.amount)
    return _accept(
        state,
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
    state: BatchState,
    plan: CustomerPlan,
    slot: MeterSlot,
    meter_code: str,
    transaction_id: str,
    amount: int,
    timestamp: datetime | None,
    properties: dict[str, Any],
    fingerprint: str,
    reservation_id: int | None,
) -> EventResult:
    meter = slot.state
    billed_before = meter.billed_overage
    taken = meter.consume(amount)
    overage = meter.billed_overage - billed_before
    public_id = state.new_id()
    now = state.now
    credits_amount = 0
    if taken:
        remaining_after = {lot.grant_id: lot.remaining for lot in meter.lots}
        for grant_id, take in taken:
            credits_amount += take
            slot.grant_remaining[grant_id] = remaining_after[grant_id]
            state.rows.ledger.append(
                _ledger(state, plan.id, grant_id, meter_code, "consume", -take, public_id)
            )
    timestamp = timestamp or now
    row = EventRow(
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
        now,
    )
    state.rows.events.append(row)
    state.events[(plan.id, transaction_id)] = row
    if overage:
        state.rows.outbox.append(_meter_event(state, plan, meter_code, transaction_id, overage))
    return EventResult(
        public_id=public_id,
        customer_external_id=plan.external_id,
        external_subscription_id=plan.subscription_external_id,
        meter_code=meter_code,
        transaction_id=transaction_id,
        amount=amount,
        credits_amount=credits_amount,
        timestamp=timestamp,
        created_at=now,
        properties=properties,
    )


def _meter_event(
    state: BatchState, plan: CustomerPlan, meter_code: str, transaction_id: str, value: int
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
        now=state.now,
    )


def reserve(state: BatchState, op: Reserve) -> ReservationResult:
    plan = _customer(state, op.customer)
    existing = state.reservations_by_tx.get((plan.id, op.transaction_id))
    if existing is not None:
        if existing.fingerprint != op.fingerprint:
            raise reused(op.transaction_id)
        return _reservation_result(state, existing, plan, replayed=True)
    if (plan.id, op.transaction_id) in state.events:
        raise reused(op.transaction_id, "is already a recorded usage event")
    if plan.deleted:
        raise customer_deleted(plan.external_id)
    slot = _slot(state, plan.id, op.meter_code)
    if not slot.state.can_use(op.amount):
        raise _insufficient(state, op.meter_code, slot.state, op.amount)
    slot.state.held += op.amount
    now = state.now
    row: dict[str, Any] = {
        "public_id": state.new_id(),
        "customer_id": plan.id,
        "meter_code": op.meter_code,
        "amount": op.amount,
        "transaction_id": op.transaction_id,
        "fingerprint": op.fingerprint,
        "status": "held",
        "expires_at": now + timedelta(seconds=op.ttl_seconds),
        "committed_amount": None,
        "usage_event_id": None,
        "created_at": now,
        "updated_at": now,
    }
    state.rows.reservations.append(row)
    state.reservations_by_tx[(plan.id, op.transaction_id)] = Row(row)
    state.reservations[row["public_id"]] = Row(row)
    return _reservation_result(state, Row(row), plan)


def _reservation(state: BatchState, reservation_id: str) -> tuple[Any, CustomerPlan]:
    row = state.reservations.get(reservation_id)
    if row is None:
        raise NotFound(f"No reservation {reservation_id!r}.", code="reservation_not_found")
    return row, state.plans_by_id[row.customer_id]


def status_of(state: BatchState, row: Any) -> str:
    """A reservation's status; a hold past its expiry is `expired` (and holds nothing)."""
    if row.status == "held" and as_utc(row.expires_at) <= state.now:
        return "expired"
    return str(row.status)


def commit(state: BatchState, op: CommitReservation) -> ReservationResult:
    row, plan = _reservation(state, op.reservation_id)
    status = status_of(state, row)
    amount = row.amount if op.amount is None else op.amount
    if status == "committed":
        # No amount means the whole hold: a retry of a partial commit must repeat its amount.
        if amount != row.committed_amount:
            raise Conflict(
                "This reservation was already committed with another amount.",
                code="reservation_committed",
            )
        return _reservation_result(state, row, plan, replayed=True)
    if status != "held":
        raise Conflict(
            f"This reservation is {status}; it holds nothing.", code=f"reservation_{status}"
        )
    if amount > row.amount:
        raise ValidationFailed(
            f"amount {amount} is more than the {row.amount} reserved.", field="amount"
        )
    if (plan.id, row.transaction_id) in state.events:
        raise reused(row.transaction_id, "is already a recorded usage event")
    slot = _slot(state, plan.id, row.meter_code)
    if not slot.state.can_use(amount, exclude_hold=row.amount):
        raise _insufficient(state, row.meter_code, slot.state, amount, exclude=row.amount)
    slot.state.held -= row.amount
    payload = {"reservation": row.public_id, "amount": amount}
    event = _accept(
        state,
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
    values = {"status": "committed", "committed_amount": amount, "updated_at": state.now}
    _update_reservation(state, row, values)
    return _reservation_result(state, state.reservations[row.public_id], plan, event=event)


def release(state: BatchState, op: ReleaseReservation) -> ReservationResult:
    row, plan = _reservation(state, op.reservation_id)
    status = status_of(state, row)
    if status == "committed":
        raise Conflict("This reservation was already committed.", code="reservation_committed")
    if status == "held":
        slot = _slot(state, plan.id, row.meter_code)
        slot.state.held -= row.amount
        _update_reservation(state, row, {"status": "released", "updated_at": state.now})
        row = state.reservations[row.public_id]
        return _reservation_result(state, row, plan)
    return _reservation_result(state, row, plan, replayed=True)


def _update_reservation(state: BatchState, row: Any, values: dict[str, Any]) -> None:
    merged = {**(row.as_dict() if isinstance(row, Row) else dict(row._mapping)), **values}
    state.reservations[row.public_id] = Row(merged)
    rows = state.rows
    pending = next((r for r in rows.reservations if r["public_id"] == row.public_id), None)
    if pending is not None:
        pending.update(values)
    else:
        rows.reservation_updates.setdefault(row.public_id, {}).update(values)


def grant(state: BatchState, op: GrantCredits) -> GrantResult:
    plan = _customer(state, op.customer)
    existing = state.grants.get((plan.id, op.transaction_id))
    if existing is not None:
        if existing.fingerprint != op.fingerprint:
            raise reused(op.transaction_id)
        return grant_result(existing, plan, replayed=True)
    slot = _slot(state, plan.id, op.meter_code)
    if op.expires_at is not None and op.expires_at <= state.now:
        raise ValidationFailed("expires_at must be in the future.", field="expires_at")
    row: dict[str, Any] = {
        "public_id": state.new_id(),
        "customer_id": plan.id,
        "meter_code": op.meter_code,
        "amount": op.amount,
        "remaining": op.amount,
        "source": op.source,
        "reason": op.reason,
        "transaction_id": op.transaction_id,
        "fingerprint": op.fingerprint,
        "expires_at": op.expires_at,
        "created_at": state.now,
    }
    state.rows.grants.append(row)
    state.grants[(plan.id, op.transaction_id)] = Row(row)
    # The lot is usable at once by later operations in this batch; its id is known after insert.
    slot.state.lots.append(CreditLot(row["public_id"], op.amount, op.expires_at))
    state.rows.ledger.append(
        _ledger(state, plan.id, row["public_id"], op.meter_code, "grant", op.amount)
    )
    return grant_result(Row(row), plan)


def revoke(state: BatchState, op: RevokeCredits) -> RevokeResult:
    plan = _customer(state, op.customer)
    grant_row = state.grants.get((plan.id, op.grant_transaction_id))
    if grant_row is None:
        raise NotFound(
            f"No credits were granted under {op.grant_transaction_id!r}.", code="grant_not_found"
        )
    # A grant made in this batch has no database id yet: its lot is keyed by its public id.
    grant_id: Any = getattr(grant_row, "id", None) or grant_row.public_id
    slot = _slot(state, plan.id, grant_row.meter_code)
    meter = slot.state
    before = state.revoked.get(grant_id, 0)
    target = max(0, min(op.revoked, grant_row.amount))
    lot = next((lot for lot in meter.lots if lot.grant_id == grant_id), None)
    remaining = lot.remaining if lot is not None else 0
    change = 0
    kind = op.kind
    if target > before:
        # Unused credits only: what is left of the grant, and never what holds count on.
        free = meter.available()
        change = min(target - before, remaining, remaining if free is None else free)
    elif target < before:
        expires_at = as_utc(grant_row.expires_at) if grant_row.expires_at else None
        if expires_at is None or expires_at > state.now:
            change, kind = target - before, "restore"
    if change:
        left = remaining - change
        others = [lot for lot in meter.lots if lot.grant_id != grant_id]
        expires = as_utc(grant_row.expires_at) if grant_row.expires_at else None
        meter.lots = [*others, CreditLot(grant_id, left, expires)] if left else others
        slot.grant_remaining[grant_id] = left
        state.revoked[grant_id] = before + change
        state.rows.ledger.append(
            _ledger(state, plan.id, grant_id, grant_row.meter_code, kind, -change)
        )
        remaining = left
    return RevokeResult(
        customer_external_id=plan.external_id,
        meter_code=grant_row.meter_code,
        grant_transaction_id=op.grant_transaction_id,
        changed=change,
        revoked=state.revoked.get(grant_id, before),
        remaining=remaining,
    )


def _ledger(
    state: BatchState,
    customer_id: int,
    grant_id: int | str,
    meter_code: str,
    kind: str,
    amount: int,
    event_public_id: str | None = None,
) -> dict[str, Any]:
    return ledger_row(customer_id, grant_id, meter_code, kind, amount, state.now, event_public_id)


def ledger_row(
    customer_id: int,
    grant_id: int | str,
    meter_code: str,
    kind: str,
    amount: int,
    now: datetime,
    event_public_id: str | None = None,
) -> dict[str, Any]:
    """A credit ledger entry to insert (a grant or event made in the batch: by public id)."""
    return {
        "customer_id": customer_id,
        "grant_id": grant_id,
        "meter_code": meter_code,
        "kind": kind,
        "amount": amount,
        "usage_event_id": event_public_id,
        "created_at": now,
    }


def check_owner(ref: CustomerRef, plan: CustomerPlan) -> None:
    """A customer id sent with a subscription id must be the subscription's customer: usage
    is never counted against a customer other than the one the caller named."""
    if ref.external_customer_id != plan.external_id:
        raise ValidationFailed(
            f"Subscription {ref.external_subscription_id!r} does not belong to customer "
            f"{ref.external_customer_id!r}: send that customer's own subscription, or only "
            "one of the two ids.",
            field="external_customer_id",
        )


def reused(transaction_id: str, how: str = "was already used with a different payload") -> Conflict:
    return Conflict(
        f"transaction_id {transaction_id!r} {how}.",
        code="idempotency_conflict",
        transaction_id=transaction_id,
    )


# Results --------------------------------------------------------------------------


def event_result(row: Any, plan: CustomerPlan, replayed: bool = False) -> EventResult:
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


def grant_result(row: Any, plan: CustomerPlan, replayed: bool = False) -> GrantResult:
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


def _reservation_result(
    state: BatchState,
    row: Any,
    plan: CustomerPlan,
    *,
    event: EventResult | None = None,
    replayed: bool = False,
) -> ReservationResult:
    if event is None and row.status == "committed":
        stored = state.events.get((plan.id, row.transaction_id))
        event = event_result(stored, plan) if stored is not None else None
    return ReservationResult(
        public_id=row.public_id,
        customer_external_id=plan.external_id,
        meter_code=row.meter_code,
        amount=row.amount,
        transaction_id=row.transaction_id,
        status=status_of(state, row),
        expires_at=as_utc(row.expires_at),
        created_at=as_utc(row.created_at),
        committed_amount=row.committed_amount,
        event=event,
        replayed=replayed,
    )
