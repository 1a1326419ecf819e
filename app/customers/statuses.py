"""A subscription's status: Stripe's words, and the groups the product's rules use."""

from __future__ import annotations

from enum import StrEnum

# Guests (app/metering/guests.py): a visitor's customer on the `guest` plan, and the status its
# subscription takes once converted into a signed-up customer (not a Stripe word: a converted
# guest's subscription never reaches Stripe). A converted guest refuses every write (409).
GUEST_PLAN = "guest"
CONVERTED = "converted"


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    TRIALING = "trialing"
    PAST_DUE = "past_due"
    UNPAID = "unpaid"
    CANCELED = "canceled"
    INCOMPLETE = "incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired"
    PAUSED = "paused"

    # A StrEnum member equals (and hashes as) its string, so `"active" in
    # SubscriptionStatus.live()` works on the plain strings read from rows and from Stripe.

    @staticmethod
    def live() -> frozenset[SubscriptionStatus]:
        """Stripe keeps the subscription going: its plan is in force."""
        return _LIVE

    @staticmethod
    def paid() -> frozenset[SubscriptionStatus]:
        """A plan with a price counts as paid (MRR): `trialing` is not paid yet."""
        return _PAID

    @staticmethod
    def ended() -> frozenset[SubscriptionStatus]:
        """A final payment failure or the end of the subscription: back to the free plan."""
        return _ENDED

    @staticmethod
    def payment_problem() -> frozenset[SubscriptionStatus]:
        """A payment failed and the customer should act."""
        return _PAYMENT_PROBLEM


_LIVE = frozenset(
    {SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE}
)
_PAID = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE})
_ENDED = frozenset(
    {
        SubscriptionStatus.CANCELED,
        SubscriptionStatus.INCOMPLETE_EXPIRED,
        SubscriptionStatus.UNPAID,
    }
)
_PAYMENT_PROBLEM = frozenset({SubscriptionStatus.PAST_DUE, SubscriptionStatus.UNPAID})
