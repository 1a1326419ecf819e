"""Auto top-up's rules (app/billing/auto_top_up.py): once per crossing, and the monthly cap."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.billing.auto_top_up import Crossing, crossing, month_start, purchase_key, within_cap


@pytest.mark.parametrize(
    ("previous", "new", "threshold", "armed", "expected"),
    [
        # Falling below while armed fires once and disarms.
        (25, 19, 20, True, Crossing(fire=True, armed=False)),
        # Exactly at the threshold is not below it: nothing fires, it stays (or becomes) armed.
        (25, 20, 20, True, Crossing(fire=False, armed=True)),
        (15, 20, 20, False, Crossing(fire=False, armed=True)),
        # Still below after firing: nothing more until the balance comes back up.
        (19, 10, 20, False, Crossing(fire=False, armed=False)),
        (10, 0, 20, False, Crossing(fire=False, armed=False)),
        # Back above re-arms; the next fall fires again.
        (10, 120, 20, False, Crossing(fire=False, armed=True)),
        (120, 5, 20, True, Crossing(fire=True, armed=False)),
        # A fall seen across two looks fires even if the armed flag was not (yet) set.
        (30, 10, 20, False, Crossing(fire=True, armed=False)),
        # Turned on while already below (armed, never evaluated): fires at once.
        (None, 5, 20, True, Crossing(fire=True, armed=False)),
        (None, 50, 20, True, Crossing(fire=False, armed=True)),
        # Never evaluated and not armed: no crossing seen.
        (None, 5, 20, False, Crossing(fire=False, armed=False)),
        # A negative balance (overage) is below any positive threshold.
        (1, -3, 1, True, Crossing(fire=True, armed=False)),
    ],
)
def test_crossing(
    previous: int | None, new: int, threshold: int, armed: bool, expected: Crossing
) -> None:
    assert crossing(previous, new, threshold, armed) == expected


def test_a_sequence_of_balances_fires_once_per_crossing() -> None:
    balances = [100, 60, 19, 15, 3, 0, 103, 90, 18, 18, 17, 40, 10]
    armed, previous, fired_at = True, None, []
    for balance in balances:
        decision = crossing(previous, balance, 20, armed)
        armed, previous = decision.armed, balance
        if decision.fire:
            fired_at.append(balance)
    # Three falls below 20: at 19, at 18 (after rising to 103) and at 10 (after 40).
    assert fired_at == [19, 18, 10]


@pytest.mark.parametrize(
    ("spent", "price", "cap", "allowed"),
    [
        (0, 1000, 5000, True),
        (4000, 1000, 5000, True),  # exactly at the cap is allowed
        (4001, 1000, 5000, False),  # one minor unit over is not
        (0, 1000, 999, False),  # a cap under the price buys nothing
        (0, 0, 5000, False),  # a free "pack" is never a purchase
        (5000, 1000, 5000, False),
    ],
)
def test_within_cap(spent: int, price: int, cap: int, allowed: bool) -> None:
    assert within_cap(spent, price, cap) is allowed


def test_month_start_and_key() -> None:
    assert month_start(datetime(2026, 12, 4, 18, 3, 7, 99, tzinfo=UTC)) == datetime(
        2026, 12, 1, tzinfo=UTC
    )
    assert purchase_key("cus-1", 7, 3) == "auto-top-up:cus-1:7:3"
