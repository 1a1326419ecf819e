"""The writes the metering writer applies, and what each one returns."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import msgspec
from msgspec import Struct, field

_canonical = msgspec.json.Encoder(order="sorted")


def fingerprint(payload: dict[str, Any]) -> str:
    """A stable digest of what a caller asked for, to tell a retry from a conflicting reuse:
    compact JSON with sorted keys, hashed."""
    return hashlib.sha256(_canonical.encode(payload)).hexdigest()


# The operations and results are built for every event on the hot path: frozen msgspec
# structs cost a fraction of frozen dataclasses to create, and gc=False keeps the cyclic
# collector from scanning them (they hold plain values and JSON, so never form a cycle):
# a batch request keeps thousands alive at a time.


class CustomerRef(Struct, frozen=True, gc=False):
    """Who an operation is for. The subscription, when given, finds the customer; a customer
    id given with it must then be that subscription's customer (the writer checks)."""

    external_customer_id: str | None = None
    external_subscription_id: str | None = None

    def label(self) -> str:
        """The id that finds the customer (part of an event's idempotency fingerprint)."""
        return self.external_subscription_id or self.external_customer_id or "?"


class RecordUsage(Struct, frozen=True, gc=False):
    customer: CustomerRef
    meter_code: str
    transaction_id: str
    amount: int
    timestamp: datetime | None
    properties: dict[str, Any]
    fingerprint: str


class Reserve(Struct, frozen=True, gc=False):
    customer: CustomerRef
    meter_code: str
    amount: int
    transaction_id: str
    ttl_seconds: int
    fingerprint: str


class CommitReservation(Struct, frozen=True, gc=False):
    reservation_id: str
    amount: int | None


class ReleaseReservation(Struct, frozen=True, gc=False):
    reservation_id: str


class GrantCredits(Struct, frozen=True, gc=False):
    customer: CustomerRef
    meter_code: str
    amount: int
    source: str
    reason: str
    transaction_id: str
    expires_at: datetime | None
    fingerprint: str


class RevokeCredits(Struct, frozen=True, gc=False):
    """Bring what is revoked of one grant (a refunded or disputed credit pack) to `revoked`.
    Only credits still unused (and not held) are taken, never below zero; a lower `revoked`
    than before gives back what was taken (a dispute won). A target, not a delta, so a
    replay or an out-of-order delivery converges on the same remainder."""

    customer: CustomerRef
    meter_code: str
    grant_transaction_id: str
    revoked: int
    kind: str  # the ledger entry's kind when credits are taken: refund | dispute


Op = RecordUsage | Reserve | CommitReservation | ReleaseReservation | GrantCredits | RevokeCredits

# The operations that name their customer, and those that name a reservation. Tuples, built
# once: `A | B` in an isinstance call builds a union on every evaluation, and these checks
# run for every operation of a batch.
BY_CUSTOMER = (RecordUsage, Reserve, GrantCredits, RevokeCredits)
BY_RESERVATION = (CommitReservation, ReleaseReservation)


class EventResult(Struct, frozen=True, gc=False):
    public_id: str
    customer_external_id: str
    external_subscription_id: str
    meter_code: str
    transaction_id: str
    amount: int
    credits_amount: int
    timestamp: datetime
    created_at: datetime
    properties: dict[str, Any] = field(default_factory=dict)
    replayed: bool = False


class ReservationResult(Struct, frozen=True, gc=False):
    public_id: str
    customer_external_id: str
    meter_code: str
    amount: int
    transaction_id: str
    status: str  # held | committed | released | expired
    expires_at: datetime
    created_at: datetime
    committed_amount: int | None = None
    event: EventResult | None = None
    replayed: bool = False


class GrantResult(Struct, frozen=True, gc=False):
    public_id: str
    customer_external_id: str
    meter_code: str
    amount: int
    remaining: int
    source: str
    reason: str
    transaction_id: str
    expires_at: datetime | None
    created_at: datetime
    replayed: bool = False


# Ledger kinds that take credits back from a grant (or give them back): their sum per grant,
# negated, is what is revoked of it now.
REVOCATION_KINDS = ("refund", "dispute", "restore")


class RevokeResult(Struct, frozen=True, gc=False):
    customer_external_id: str
    meter_code: str
    grant_transaction_id: str
    changed: int  # credits taken by this operation (negative: given back)
    revoked: int  # revoked of the grant now
    remaining: int  # left of the grant now


Result = EventResult | ReservationResult | GrantResult | RevokeResult
