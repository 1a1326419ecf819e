"""The metering rules without a database: what each operation does to a batch's state, which
rows it asks to write and what it answers (app/metering/rules.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from app.catalog.loader import parse_catalog
from app.lib.errors import Conflict, InsufficientBalance, NotFound, ValidationFailed
from app.metering import rules
from app.metering.balance import CreditLot
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
)
from app.metering.state import BatchState, CustomerPlan, MeterSlot, Row

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
CATALOG = parse_catalog(
    {
        "meters": {"calls": {"name": "Calls"}},
        "plans": {
            "free": {
                "name": "Free",
                "default": True,
                "prices": {"monthly": {"amount": 0}},
                "quotas": {"calls": {"included": 10, "reset": "billing_period"}},
            },
            "scale": {
                "name": "Scale",
                "prices": {"monthly": {"amount": 1000}},
                "quotas": {"calls": {"included": 10, "reset": "billing_period", "overage": 3}},
            },
        },
    }
)
REF = CustomerRef(external_customer_id="ada")
UPGRADE = "https://portal.test/billing/upgrade"


def _plan(slug: str = "free", *, stripe: bool = False) -> CustomerPlan:
    return CustomerPlan(
        id=1,
        external_id="ada",
        subscription_external_id="sub_ada",
        plan_slug=slug,
        status="active",
        cycle=None,
        stripe_customer_id="cus_S" if stripe else None,
        stripe_subscription_id="sub_S" if stripe else None,
    )


def _state(
    *,
    used: int = 0,
    credits_used: int = 0,
    lots: list[CreditLot] | None = None,
    expired: list[Any] | None = None,
    held: int = 0,
    plan: CustomerPlan | None = None,
) -> BatchState:
    """A batch's state as the writer loads it, for customer "ada" and meter "calls"."""
    plan = plan or _plan()
    state = BatchState(NOW, UPGRADE)
    state.add_plans([plan])
    quota, period = rules.slot_period(CATALOG, plan, "calls", NOW)
    total = SimpleNamespace(id=100, used=used, credits_used=credits_used)
    rules.open_slot(state, plan, "calls", quota, period, total, lots or [], expired or [], held)
    return state


def _slot(state: BatchState) -> MeterSlot:
    return state.slots[(1, "calls")]


def _use(tx: str, amount: int, fingerprint: str | None = None) -> RecordUsage:
    return RecordUsage(REF, "calls", tx, amount, None, {}, fingerprint or f"fp-{tx}-{amount}")


def _nothing_written(state: BatchState) -> bool:
    rows = state.rows
    return not (rows.events or rows.grants or rows.reservations or rows.ledger or rows.outbox)


# Usage: included quota first, then credits, soonest expiry first -----------------------------


def test_included_quota_is_used_before_credits() -> None:
    state = _state(used=6, lots=[CreditLot(7, 5, None)])

    result = rules.apply(state, _use("a", 4))

    assert isinstance(result, EventResult)
    assert (result.amount, result.credits_amount) == (4, 0)
    assert state.rows.ledger == []
    result = rules.apply(state, _use("b", 3))
    assert isinstance(result, EventResult)
    assert result.credits_amount == 3  # the quota was used up: credits pay for all of it
    meter = _slot(state).state
    assert (meter.used, meter.credits_used, meter.credits) == (13, 3, 2)
    assert [(e["grant_id"], e["kind"], e["amount"]) for e in state.rows.ledger] == [
        (7, "consume", -3)
    ]
    assert _slot(state).grant_remaining == {7: 2}
    assert [row.transaction_id for row in state.rows.events] == ["a", "b"]
    assert state.rows.events[1].credits_amount == 3


def test_credits_are_consumed_soonest_expiry_first_and_never_expiring_last() -> None:
    lots = [
        CreditLot(1, 5, None),
        CreditLot(2, 5, NOW + timedelta(days=30)),
        CreditLot(3, 5, NOW + timedelta(days=2)),
    ]
    state = _state(used=10, lots=lots)

    rules.apply(state, _use("a", 12))

    assert [(e["grant_id"], e["amount"]) for e in state.rows.ledger] == [(3, -5), (2, -5), (1, -2)]
    assert _slot(state).grant_remaining == {3: 0, 2: 0, 1: 3}


def test_expired_credits_leave_through_the_ledger_when_loaded() -> None:
    expired = [SimpleNamespace(id=9, remaining=4)]
    state = _state(used=10, expired=expired)

    assert [(e["grant_id"], e["kind"], e["amount"]) for e in state.rows.ledger] == [
        (9, "expire", -4)
    ]
    assert _slot(state).grant_remaining == {9: 0}
    with pytest.raises(InsufficientBalance):
        rules.apply(state, _use("a", 1))


def test_credits_granted_in_the_batch_are_usable_at_once() -> None:
    state = _state(used=10)
    grant = GrantCredits(REF, "calls", 5, "api", "promo", "g1", None, "fp-g1")

    granted = rules.apply(state, grant)
    used = rules.apply(state, _use("a", 3))

    assert isinstance(granted, GrantResult) and granted.remaining == 5
    assert isinstance(used, EventResult) and used.credits_amount == 3
    # The new grant has no database id yet: its public id stands for it until the insert.
    assert _slot(state).grant_remaining == {granted.public_id: 2}
    assert [(e["grant_id"], e["kind"], e["amount"]) for e in state.rows.ledger] == [
        (granted.public_id, "grant", 5),
        (granted.public_id, "consume", -3),
    ]


# 402, and overage billed instead ----------------------------------------------------------------


def test_an_amount_that_does_not_fit_is_402_with_the_numbers_and_writes_nothing() -> None:
    state = _state(used=8, lots=[CreditLot(1, 3, None)], held=2)

    with pytest.raises(InsufficientBalance) as refused:
        rules.apply(state, _use("a", 4))

    assert refused.value.extra == {
        "meter": "calls",
        "available": 3,
        "required": 4,
        "upgrade_url": UPGRADE,
        # As the balances show it: 8 of the 10 included used (the hold is not usage).
        "quota": {"used": 8, "limit": 10, "percentage": 80.0},
    }
    assert "3 available, 4 required" in refused.value.message
    assert _nothing_written(state)
    assert _slot(state).state.used == 8
    # What fits still goes through in the same batch.
    assert isinstance(rules.apply(state, _use("b", 3)), EventResult)


def test_overage_is_billed_through_the_outbox_on_a_live_stripe_subscription() -> None:
    state = _state(used=8, lots=[CreditLot(1, 1, None)], plan=_plan("scale", stripe=True))

    result = rules.apply(state, _use("a", 5))

    assert isinstance(result, EventResult) and result.credits_amount == 1
    [message] = state.rows.outbox
    assert message["payload"]["value"] == 2  # 8 + 2 included, 1 credit, 2 billed
    assert message["payload"]["stripe_customer_id"] == "cus_S"
    assert message["idempotency_key"].startswith("calls:")
    assert _slot(state).state.billed_overage == 2


def test_overage_without_a_stripe_subscription_is_refused() -> None:
    state = _state(used=10, plan=_plan("scale", stripe=False))

    with pytest.raises(InsufficientBalance):
        rules.apply(state, _use("a", 1))
    assert state.rows.outbox == []


# Idempotency ------------------------------------------------------------------------------------


def test_a_retry_with_the_same_payload_replays_the_first_outcome() -> None:
    state = _state()
    first = rules.apply(state, _use("a", 2))

    again = rules.apply(state, _use("a", 2))

    assert isinstance(first, EventResult) and isinstance(again, EventResult)
    assert again.replayed and again.public_id == first.public_id
    assert len(state.rows.events) == 1 and _slot(state).state.used == 2


def test_a_stored_event_replays_without_new_rows() -> None:
    state = _state(used=2)
    stored = Row(
        {
            "public_id": "evt_old",
            "transaction_id": "a",
            "meter_code": "calls",
            "amount": 2,
            "credits_amount": 0,
            "timestamp": NOW - timedelta(hours=1),
            "created_at": NOW - timedelta(hours=1),
            "properties": {},
            "fingerprint": "fp-a-2",
            "external_subscription_id": "sub_ada",
        }
    )
    state.events[(1, "a")] = stored

    result = rules.apply(state, _use("a", 2))

    assert isinstance(result, EventResult)
    assert (result.public_id, result.replayed) == ("evt_old", True)
    assert _nothing_written(state)


@pytest.mark.parametrize("kind", ["event", "reservation", "grant"])
def test_the_same_transaction_id_with_a_different_payload_is_409(kind: str) -> None:
    state = _state()
    ops: dict[str, tuple[Any, Any]] = {
        "event": (_use("t", 1), _use("t", 2)),
        "reservation": (
            Reserve(REF, "calls", 1, "t", 60, "fp-1"),
            Reserve(REF, "calls", 2, "t", 60, "fp-2"),
        ),
        "grant": (
            GrantCredits(REF, "calls", 1, "api", "", "t", None, "fp-1"),
            GrantCredits(REF, "calls", 2, "api", "", "t", None, "fp-2"),
        ),
    }
    first, different = ops[kind]
    rules.apply(state, first)

    with pytest.raises(Conflict) as conflict:
        rules.apply(state, different)
    assert conflict.value.code == "idempotency_conflict"
    assert conflict.value.extra == {"transaction_id": "t"}


def test_a_reservation_cannot_reuse_a_recorded_events_transaction_id() -> None:
    state = _state()
    rules.apply(state, _use("t", 1))

    with pytest.raises(Conflict, match="already a recorded usage event"):
        rules.apply(state, Reserve(REF, "calls", 1, "t", 60, "fp"))


# Reservations -----------------------------------------------------------------------------------


def _held(state: BatchState, amount: int, public_id: str = "res_1", **extra: Any) -> Row:
    """A hold as loaded from the database (it has a row id)."""
    row = Row(
        {
            "id": 42,
            "public_id": public_id,
            "customer_id": 1,
            "meter_code": "calls",
            "amount": amount,
            "transaction_id": f"tx-{public_id}",
            "fingerprint": "fp",
            "status": "held",
            "expires_at": NOW + timedelta(minutes=5),
            "committed_amount": None,
            "usage_event_id": None,
            "created_at": NOW - timedelta(minutes=1),
            "updated_at": NOW - timedelta(minutes=1),
            **extra,
        }
    )
    state.reservations[public_id] = row
    return row


def test_a_hold_counts_against_what_is_available() -> None:
    state = _state(used=4)

    held = rules.apply(state, Reserve(REF, "calls", 5, "r", 60, "fp"))

    assert isinstance(held, ReservationResult) and held.status == "held"
    assert held.expires_at == NOW + timedelta(seconds=60)
    assert _slot(state).state.available() == 1
    [row] = state.rows.reservations
    assert (row["status"], row["amount"]) == ("held", 5)
    with pytest.raises(InsufficientBalance) as refused:
        rules.apply(state, _use("a", 2))
    assert refused.value.extra["available"] == 1


def test_committing_a_smaller_amount_uses_only_that_and_frees_the_rest() -> None:
    state = _state(used=4, held=5)
    _held(state, 5)

    result = rules.apply(state, CommitReservation("res_1", 3))

    assert isinstance(result, ReservationResult)
    assert (result.status, result.committed_amount) == ("committed", 3)
    assert result.event is not None and result.event.amount == 3
    meter = _slot(state).state
    assert (meter.used, meter.held, meter.available()) == (7, 0, 3)
    [event] = state.rows.events
    assert (event.transaction_id, event.reservation_id) == ("tx-res_1", 42)
    assert state.rows.reservation_updates["res_1"]["status"] == "committed"
    # The same commit again replays; another amount is refused.
    assert rules.apply(state, CommitReservation("res_1", 3)).replayed
    with pytest.raises(Conflict) as conflict:
        rules.apply(state, CommitReservation("res_1", 4))
    assert conflict.value.code == "reservation_committed"


def test_a_commit_larger_than_the_hold_is_422() -> None:
    state = _state(held=5)
    _held(state, 5)

    with pytest.raises(ValidationFailed):
        rules.apply(state, CommitReservation("res_1", 6))
    assert _nothing_written(state) and state.rows.reservation_updates == {}


def test_releasing_frees_the_hold_and_a_second_release_replays() -> None:
    state = _state(held=5)
    _held(state, 5)

    released = rules.apply(state, ReleaseReservation("res_1"))
    again = rules.apply(state, ReleaseReservation("res_1"))

    assert isinstance(released, ReservationResult) and released.status == "released"
    assert isinstance(again, ReservationResult) and again.replayed
    assert _slot(state).state.held == 0
    assert state.rows.events == []
    with pytest.raises(Conflict) as conflict:
        rules.apply(state, CommitReservation("res_1", None))
    assert conflict.value.code == "reservation_released"


def test_an_expired_hold_holds_nothing_and_cannot_be_committed() -> None:
    state = _state()
    _held(state, 5, expires_at=NOW - timedelta(seconds=1))

    with pytest.raises(Conflict) as conflict:
        rules.apply(state, CommitReservation("res_1", None))
    assert conflict.value.code == "reservation_expired"
    assert rules.apply(state, ReleaseReservation("res_1")).replayed


def test_unknown_customer_meter_and_reservation_are_404() -> None:
    state = _state()
    with pytest.raises(NotFound) as customer:
        rules.apply(state, RecordUsage(CustomerRef("nobody"), "calls", "t", 1, None, {}, "fp"))
    assert customer.value.code == "customer_not_found"
    with pytest.raises(NotFound) as meter:
        rules.apply(state, RecordUsage(REF, "tokens", "t", 1, None, {}, "fp"))
    assert meter.value.code == "meter_not_found"
    with pytest.raises(NotFound) as reservation:
        rules.apply(state, ReleaseReservation("res_missing"))
    assert reservation.value.code == "reservation_not_found"


def test_a_subscription_of_another_customer_is_refused() -> None:
    state = _state()
    ref = CustomerRef(external_customer_id="bob", external_subscription_id="sub_ada")

    with pytest.raises(ValidationFailed) as refused:
        rules.apply(state, RecordUsage(ref, "calls", "t", 1, None, {}, "fp"))
    assert refused.value.extra == {"field": "external_customer_id"}
    assert _nothing_written(state)


# Revoking a refunded or disputed grant's credits -------------------------------------------


def _grant_row(grant_id: int = 7, amount: int = 10, expires_at: datetime | None = None) -> Row:
    return Row(
        {
            "id": grant_id,
            "public_id": f"g{grant_id}",
            "meter_code": "calls",
            "amount": amount,
            "remaining": amount,
            "expires_at": expires_at,
        }
    )


def _revoke(target: int, kind: str = "refund") -> RevokeCredits:
    return RevokeCredits(REF, "calls", "cs_pack", target, kind)


def _revocation_state(remaining: int, *, revoked: int = 0, held: int = 0) -> BatchState:
    state = _state(used=10, lots=[CreditLot(7, remaining, None)] if remaining else [], held=held)
    state.grants[(1, "cs_pack")] = _grant_row()
    state.revoked = {7: revoked} if revoked else {}
    return state


def test_a_revocation_takes_only_unused_credits_and_never_below_zero() -> None:
    state = _revocation_state(remaining=6)  # 4 of the 10 were used

    result = rules.apply(state, _revoke(10))

    assert isinstance(result, RevokeResult)
    assert (result.changed, result.revoked, result.remaining) == (6, 6, 0)
    assert _slot(state).state.credits == 0
    assert _slot(state).grant_remaining == {7: 0}
    assert [(e["grant_id"], e["kind"], e["amount"]) for e in state.rows.ledger] == [
        (7, "refund", -6)
    ]
    again = rules.apply(state, _revoke(10))  # a replay takes nothing more
    assert isinstance(again, RevokeResult) and again.changed == 0
    assert len(state.rows.ledger) == 1


def test_a_partial_revocation_and_a_won_dispute_give_back_what_was_taken() -> None:
    state = _revocation_state(remaining=10)
    rules.apply(state, _revoke(5, "dispute"))
    assert _slot(state).state.credits == 5

    result = rules.apply(state, _revoke(0, "dispute"))

    assert isinstance(result, RevokeResult)
    assert (result.changed, result.revoked, result.remaining) == (-5, 0, 10)
    assert [(e["kind"], e["amount"]) for e in state.rows.ledger] == [
        ("dispute", -5),
        ("restore", 5),
    ]


def test_a_revocation_leaves_what_holds_count_on() -> None:
    state = _revocation_state(remaining=10, held=4)  # the quota is used up: the hold is credits

    result = rules.apply(state, _revoke(10))

    assert isinstance(result, RevokeResult)
    assert (result.changed, result.remaining) == (6, 4)


def test_credits_taken_before_are_known_from_the_ledger() -> None:
    state = _revocation_state(remaining=2, revoked=8)  # revoked 8 earlier; 2 left, unused

    result = rules.apply(state, _revoke(8))

    assert isinstance(result, RevokeResult) and result.changed == 0
    assert state.rows.ledger == []


def test_no_grant_under_the_transaction_id_is_not_found() -> None:
    state = _state(used=10)

    with pytest.raises(NotFound) as raised:
        rules.apply(state, _revoke(10))

    assert raised.value.code == "grant_not_found"


def test_a_paused_subscription_gets_the_free_plans_quotas() -> None:
    paused = CustomerPlan(1, "ada", "sub_ada", "scale", "paused", None)
    quota, _ = rules.slot_period(CATALOG, paused, "calls", NOW)
    assert quota == CATALOG.default_plan.quotas["calls"]
    assert rules.quota_plan(CATALOG, "scale", "active").slug == "scale"
    assert rules.quota_plan(CATALOG, "scale", "paused").slug == "free"
