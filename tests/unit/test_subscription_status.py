"""The one vocabulary of subscription statuses, and its groups, on plain strings too."""

from __future__ import annotations

from app.customers.statuses import SubscriptionStatus


def test_the_groups() -> None:
    assert SubscriptionStatus.live() == {"trialing", "active", "past_due"}
    assert SubscriptionStatus.paid() == {"active", "past_due"}
    assert SubscriptionStatus.ended() == {"canceled", "incomplete_expired", "unpaid"}
    assert SubscriptionStatus.payment_problem() == {"past_due", "unpaid"}


def test_plain_strings_from_rows_and_stripe_match() -> None:
    assert "active" in SubscriptionStatus.live()
    assert "trialing" not in SubscriptionStatus.paid()
    assert None not in SubscriptionStatus.live()
    assert SubscriptionStatus("past_due") == "past_due"
    assert sorted(SubscriptionStatus.live()) == ["active", "past_due", "trialing"]


def test_every_stripe_status_is_named() -> None:
    assert {s.value for s in SubscriptionStatus} == {
        "active",
        "trialing",
        "past_due",
        "unpaid",
        "canceled",
        "incomplete",
        "incomplete_expired",
        "paused",
    }
