"""How much of a credit pack a charge's refunds and disputes take back."""

from __future__ import annotations

from app.billing.credit_reversals import revoked_share
from app.stripe.objects import Charge


def _charge(amount_refunded: int = 0) -> Charge:
    return {"id": "ch_1", "amount": 1000, "amount_refunded": amount_refunded}


def test_nothing_refunded_or_disputed_takes_nothing() -> None:
    assert revoked_share(100, _charge(), []) == (0, "refund")


def test_a_refund_takes_its_share_rounded_up() -> None:
    assert revoked_share(100, _charge(1000), []) == (100, "refund")
    assert revoked_share(100, _charge(333), []) == (34, "refund")


def test_an_open_or_lost_dispute_takes_its_amount_and_a_won_one_nothing() -> None:
    for status in ("needs_response", "under_review", "lost", "warning_needs_response"):
        assert revoked_share(100, _charge(), [{"status": status, "amount": 1000}]) == (
            100,
            "dispute",
        )
    for status in ("won", "warning_closed"):
        assert revoked_share(100, _charge(), [{"status": status, "amount": 1000}]) == (
            0,
            "refund",
        )


def test_refund_and_dispute_together_never_take_more_than_the_pack() -> None:
    disputes = [{"status": "needs_response", "amount": 800}]
    assert revoked_share(100, _charge(500), disputes) == (100, "dispute")
