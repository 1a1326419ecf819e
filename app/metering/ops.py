"""The writes the metering writer applies, and what each one returns."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def fingerprint(payload: dict[str, Any]) -> str:
    """A stable digest of what a caller asked for, to tell a retry from a conflicting reuse."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class CustomerRef:
    external_customer_id: str | None = None
    external_subscription_id: str | None = None

    def label(self) -> str:
        return self.external_customer_id or self.external_subscription_id or "?"


@dataclass(frozen=True)
class RecordUsage:
    customer: CustomerRef
    meter_code: str
    transaction_id: str
    amount: int
    timestamp: datetime | None
    properties: dict[str, Any]
    fingerprint: str


@dataclass(frozen=True)
class Reserve:
    customer: CustomerRef
    meter_code: str
    amount: int
    transaction_id: str
    ttl_seconds: int
    fingerprint: str


@dataclass(frozen=True)
class CommitReservation:
    reservation_id: str
    amount: int | None


@dataclass(frozen=True)
class ReleaseReservation:
    reservation_id: str


@dataclass(frozen=True)
class GrantCredits:
    customer: CustomerRef
    meter_code: str
    amount: int
    source: str
    reason: str
    transaction_id: str
    expires_at: datetime | None
    fingerprint: str


Op = RecordUsage | Reserve | CommitReservation | ReleaseReservation | GrantCredits


@dataclass(frozen=True)
class EventResult:
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


@dataclass(frozen=True)
class ReservationResult:
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


@dataclass(frozen=True)
class GrantResult:
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


Result = EventResult | ReservationResult | GrantResult
