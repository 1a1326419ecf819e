"""The API's wire format: Lago's envelopes (`{"event": ...}`, `{"customer": ...}`).

Unknown fields are accepted and ignored, because Lago's clients send every optional
field (as null when unset).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import KwargDefinition, PathParameter
from msgspec import Meta, Struct

from app.catalog.models import Catalog, Plan
from app.lib.errors import ValidationFailed
from app.metering.entitlements import FeatureDecision, features_of
from app.metering.ops import EventResult, GrantResult, ReservationResult
from app.metering.service import (
    MAX_AMOUNT,
    MAX_CODE,
    MAX_EXTERNAL_ID,
    MAX_REASON,
    MAX_TRANSACTION_ID,
    MAX_TTL,
    Balance,
    BalanceSheet,
)

MAX_BATCH_EVENTS = 100


# Counts (amounts, ttl_seconds) arrive as sent, and the service accepts only JSON integers
# (`_positive` in app/metering/service.py: 422 naming the field). Typed `int`, they would be
# converted first, as Litestar converts request bodies leniently: "5" and 5.0 became 5. The
# OpenAPI document still describes them as integers, in the service's ranges.
def _integer(low: int, high: int, *, nullable: bool = False) -> dict[str, Any]:
    """The OpenAPI description of a JSON integer in [low, high] (or null)."""
    number = Schema(type=OpenAPIType.INTEGER, minimum=low, maximum=high)
    if nullable:
        return {"one_of": [number, Schema(type=OpenAPIType.NULL)]}
    return {"type": OpenAPIType.INTEGER, "minimum": low, "maximum": high}


Amount = Annotated[Any, KwargDefinition(schema_extra=_integer(1, MAX_AMOUNT))]
AmountOrZero = Annotated[Any, KwargDefinition(schema_extra=_integer(0, MAX_AMOUNT))]
CommitAmount = Annotated[Any, KwargDefinition(schema_extra=_integer(0, MAX_AMOUNT, nullable=True))]
TtlSeconds = Annotated[Any, KwargDefinition(schema_extra=_integer(1, MAX_TTL, nullable=True))]

# Text is limited to its column's length here, where the body is decoded (a longer value is a
# 422 naming its dotted path, `events[3].transaction_id`, and never reaches the database); a
# NUL character anywhere in a body is refused where it is decoded (app.web.api_request).
TransactionId = Annotated[str, Meta(max_length=MAX_TRANSACTION_ID)]
RequiredTransactionId = Annotated[str, Meta(min_length=1, max_length=MAX_TRANSACTION_ID)]
ExternalId = Annotated[str, Meta(max_length=MAX_EXTERNAL_ID)]
RequiredExternalId = Annotated[str, Meta(min_length=1, max_length=MAX_EXTERNAL_ID)]
MeterCode = Annotated[str, Meta(max_length=MAX_CODE)]
RequiredMeterCode = Annotated[str, Meta(min_length=1, max_length=MAX_CODE)]
# Path parameters: a customer's external id, a reservation's public id (a UUID).
ExternalIdPath = Annotated[str, PathParameter(max_length=MAX_EXTERNAL_ID)]
ReservationIdPath = Annotated[str, PathParameter(max_length=36)]
# A timestamp string is unix seconds or ISO 8601; nothing longer is either.
TimestampText = Annotated[str, Meta(max_length=64)]


class EventIn(Struct, gc=False):
    transaction_id: TransactionId | None = None
    code: MeterCode | None = None
    external_subscription_id: ExternalId | None = None
    external_customer_id: ExternalId | None = None
    timestamp: int | float | TimestampText | None = None
    properties: dict[str, Any] | None = None


class EventEnvelope(Struct):
    event: EventIn


class EventBatch(Struct):
    events: Annotated[list[EventIn], Meta(min_length=1, max_length=MAX_BATCH_EVENTS)]


class CheckIn(Struct):
    """A meter check (`code`, `amount`) or a feature check (`feature`): one of the two."""

    code: RequiredMeterCode | None = None
    amount: AmountOrZero = 1
    feature: RequiredMeterCode | None = None


class ReservationIn(Struct):
    external_customer_id: RequiredExternalId
    code: RequiredMeterCode
    amount: Amount
    transaction_id: RequiredTransactionId
    ttl_seconds: TtlSeconds = None


class ReservationEnvelope(Struct):
    reservation: ReservationIn


class CommitIn(Struct):
    amount: CommitAmount = None


class CreditsIn(Struct):
    code: RequiredMeterCode
    amount: Amount
    transaction_id: RequiredTransactionId
    reason: Annotated[str, Meta(max_length=MAX_REASON)] = ""
    expires_at: datetime | None = None


def parse_timestamp(value: int | float | str | None) -> datetime | None:
    """Unix seconds (int, float or numeric string, as Lago sends) or ISO 8601 with a zone."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(float(value), UTC)
        if isinstance(value, str):
            try:
                return datetime.fromtimestamp(float(value), UTC)
            except ValueError:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
                if parsed.tzinfo is None:
                    raise ValidationFailed(
                        "timestamp needs a timezone.", field="timestamp"
                    ) from None
                return parsed.astimezone(UTC)
    except (OverflowError, OSError, ValueError):
        pass
    raise ValidationFailed(
        "timestamp must be unix seconds or an ISO 8601 time with a timezone.", field="timestamp"
    )


def _iso(value: datetime | None) -> str | None:
    return _iso_utc(value) if value else None


@functools.lru_cache(maxsize=4096)
def _iso_utc(value: datetime) -> str:
    # Cached: the events of one write batch share their times (`now`), so a batch request
    # formats a handful of times instead of two per event.
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class EventOut(Struct, gc=False):
    """An accepted event, in Lago's shape (their ids are ours; what we do not track is null)."""

    lago_id: str
    transaction_id: str
    lago_customer_id: None
    lago_subscription_id: None
    external_customer_id: str | None
    external_subscription_id: str | None
    code: str
    timestamp: str | None
    properties: dict[str, Any] | None
    amount: int
    credits_amount: int
    precise_total_amount_cents: None
    created_at: str | None


class EventResponse(Struct, gc=False):
    event: EventOut


class BatchResponse(Struct, gc=False):
    """Per event, in request order: `{"transaction_id", "status": "accepted", "event"}` or
    `{"transaction_id", "status": "rejected", "error", "message", "status_code", ...}`."""

    events: list[dict[str, Any]]
    accepted: int
    rejected: int


def event_out(result: EventResult) -> EventOut:
    return EventOut(
        lago_id=result.public_id,
        transaction_id=result.transaction_id,
        lago_customer_id=None,
        lago_subscription_id=None,
        external_customer_id=result.customer_external_id,
        external_subscription_id=result.external_subscription_id,
        code=result.meter_code,
        timestamp=_iso(result.timestamp),
        properties=result.properties,
        amount=result.amount,
        credits_amount=result.credits_amount,
        precise_total_amount_cents=None,
        created_at=_iso(result.created_at),
    )


class ReservationOut(Struct, gc=False):
    id: str
    external_customer_id: str
    code: str
    amount: int
    transaction_id: str
    status: str  # held, committed, released or expired
    expires_at: str
    created_at: str
    committed_amount: int | None
    event: EventOut | None


class ReservationResponse(Struct, gc=False):
    reservation: ReservationOut


class GrantOut(Struct, gc=False):
    id: str
    external_customer_id: str
    code: str
    amount: int
    remaining: int
    source: str
    reason: str
    transaction_id: str
    expires_at: str | None
    created_at: str


class CreditGrantResponse(Struct, gc=False):
    credit_grant: GrantOut


def reservation_out(result: ReservationResult) -> ReservationOut:
    return ReservationOut(
        id=result.public_id,
        external_customer_id=result.customer_external_id,
        code=result.meter_code,
        amount=result.amount,
        transaction_id=result.transaction_id,
        status=result.status,
        expires_at=_iso_utc(result.expires_at),
        created_at=_iso_utc(result.created_at),
        committed_amount=result.committed_amount,
        event=event_out(result.event) if result.event else None,
    )


def grant_out(result: GrantResult) -> GrantOut:
    return GrantOut(
        id=result.public_id,
        external_customer_id=result.customer_external_id,
        code=result.meter_code,
        amount=result.amount,
        remaining=result.remaining,
        source=result.source,
        reason=result.reason,
        transaction_id=result.transaction_id,
        expires_at=_iso(result.expires_at),
        created_at=_iso_utc(result.created_at),
    )


class BalanceOut(Struct, gc=False):
    code: str
    name: str
    unit: str
    limit: int | None
    used: int
    credits: int
    credits_used: int
    reserved: int
    available: int | None
    percentage: float | None
    period_start: str | None
    period_end: str | None
    reset: str
    overage_unit_amount: int | None


class BalancesOut(Struct, gc=False):
    external_customer_id: str
    balances: list[BalanceOut]


class CheckResponse(Struct, gc=False):
    allowed: bool
    required: int
    balance: BalanceOut


class PlanRef(Struct, gc=False):
    code: str
    name: str


class FeatureCheckResponse(Struct, gc=False):
    """A feature check: `allowed`, the feature, the plan in force and, when refused, where
    to upgrade and the cheapest public plan with the feature (null when none has it)."""

    allowed: bool
    feature: str
    plan: str
    upgrade_url: str | None
    cheapest_plan: PlanRef | None


class EntitlementsOut(Struct, gc=False):
    """What a customer may do now: every declared feature on or off under the plan in force
    (`plan`: the subscription's, the free plan while it is paused), and every meter's
    balance as `GET .../balances` shows it."""

    external_customer_id: str
    plan: str
    features: dict[str, bool]
    balances: list[BalanceOut]


def balance_out(balance: Balance) -> BalanceOut:
    return BalanceOut(
        code=balance.code,
        name=balance.name,
        unit=balance.unit,
        limit=balance.limit,
        used=balance.used,
        credits=balance.credits,
        credits_used=balance.credits_used,
        reserved=balance.held,
        available=balance.available,
        percentage=balance.percentage,
        period_start=balance.period_start.isoformat() if balance.period_start else None,
        period_end=balance.period_end.isoformat() if balance.period_end else None,
        reset=balance.reset,
        overage_unit_amount=balance.overage_unit_amount,
    )


encode_json = msgspec.json.Encoder().encode


def feature_check_out(decision: FeatureDecision, upgrade_url: str) -> FeatureCheckResponse:
    cheapest = decision.cheapest_plan
    return FeatureCheckResponse(
        allowed=decision.allowed,
        feature=decision.feature.code,
        plan=decision.plan.slug,
        upgrade_url=None if decision.allowed else upgrade_url,
        cheapest_plan=PlanRef(cheapest.slug, cheapest.name) if cheapest else None,
    )


def entitlements_json(sheet: BalanceSheet, plan: Plan, catalog: Catalog) -> bytes:
    """`GET .../entitlements`, encoded once per sheet like `balances_json` (the plan in force
    is the sheet's, and the catalog does not change while the process runs)."""
    if sheet.encoded_entitlements is None:
        sheet.encoded_entitlements = encode_json(
            EntitlementsOut(
                sheet.external_id,
                plan.slug,
                features_of(catalog, plan),
                [balance_out(b) for b in sheet.balances],
            )
        )
    return sheet.encoded_entitlements


def balances_json(sheet: BalanceSheet) -> bytes:
    """`GET .../balances`, encoded once per sheet (a cached sheet serves many reads)."""
    if sheet.encoded is None:
        sheet.encoded = encode_json(
            BalancesOut(sheet.external_id, [balance_out(b) for b in sheet.balances])
        )
    return sheet.encoded
