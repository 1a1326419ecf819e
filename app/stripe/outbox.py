"""The Stripe outbox: calls to Stripe recorded in our transaction, sent later by the worker.

Overage reporting uses it: where a plan prices usage beyond its included quota, the usage
write enqueues a Billing Meter event (`enqueue_meter_event`) in the same transaction as the
usage event, keyed by our transaction id. The worker (`drain`) sends it with
`identifier = <transaction id>`, so Stripe counts it once even when a response is lost and it
is sent again; failures back off exponentially (2^attempts s, at most `MAX_BACKOFF`) and give
up (status `dead`) only once the message is older than `MAX_AGE`: Stripe accepts meter events
up to 35 days old but dedupes an identifier for at least 24 hours, so we stop resending well
inside that window. `requeue_dead` (`billing-portal outbox-retry`) puts dead rows back to
`pending`. Nothing is lost (the row is committed with the usage) and nothing is sent twice
(Stripe dedupes on the identifier; we stop once it answered).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.lib.clock import as_utc, utcnow
from app.stripe.gateway import StripeGateway, StripeGatewayError
from app.stripe.models import StripeOutboxMessage

log = structlog.get_logger()

METER_EVENT = "meter_event"
MAX_BACKOFF = timedelta(hours=1)
# Stripe dedupes a meter event's identifier for at least 24 h: resend only well within that.
MAX_AGE = timedelta(hours=20)


def meter_event_name(meter_code: str) -> str:
    return f"bp_{meter_code}"


def backoff(attempts: int) -> timedelta:
    """The wait after `attempts` failures: 2^attempts seconds, at most an hour."""
    return min(timedelta(seconds=2 ** min(attempts, 32)), MAX_BACKOFF)


def record_failure(message: StripeOutboxMessage, error: str, now: datetime) -> None:
    """One more failed send: back off, or give up once the message is older than `MAX_AGE`."""
    message.attempts += 1
    message.last_error = error[:4000]
    if now - as_utc(message.created_at) >= MAX_AGE:
        message.status = "dead"
    message.next_attempt_at = now + backoff(message.attempts)


async def requeue_dead(session: AsyncSession) -> int:
    """Put every dead message back to `pending`, due now; returns how many. Commits.

    A message older than `MAX_AGE` gets one more attempt (and is dead again if it fails)."""
    result = await session.execute(
        update(StripeOutboxMessage)
        .where(StripeOutboxMessage.status == "dead")
        .values(status="pending", next_attempt_at=utcnow())
    )
    await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def meter_event_message(
    *, identifier: str, stripe_customer_id: str, meter_code: str, value: int, now: datetime
) -> dict[str, Any]:
    """The outbox row for a Billing Meter event. `identifier` is ours (meter, customer and
    transaction id), so Stripe counts the event once however often it is sent."""
    return {
        "kind": METER_EVENT,
        "idempotency_key": identifier,
        "payload": {
            "event_name": meter_event_name(meter_code),
            "stripe_customer_id": stripe_customer_id,
            "value": value,
            "identifier": identifier,
            "timestamp": int(now.timestamp()),
        },
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


async def enqueue_meter_event(
    session: AsyncSession,
    *,
    identifier: str,
    stripe_customer_id: str,
    meter_code: str,
    value: int,
    timestamp: datetime,
) -> None:
    """Add a meter event to the outbox in the caller's transaction (a repeat is a no-op)."""
    values = meter_event_message(
        identifier=identifier,
        stripe_customer_id=stripe_customer_id,
        meter_code=meter_code,
        value=value,
        now=timestamp,
    )
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(StripeOutboxMessage).values(**values)
    await session.execute(statement.on_conflict_do_nothing(index_elements=["idempotency_key"]))


async def _send(gateway: StripeGateway, message: StripeOutboxMessage) -> None:
    if message.kind != METER_EVENT:
        raise ValueError(f"unknown outbox kind {message.kind!r}")
    payload = message.payload
    await gateway.create_meter_event(
        event_name=str(payload["event_name"]),
        stripe_customer_id=str(payload["stripe_customer_id"]),
        value=int(payload["value"]),
        identifier=str(payload["identifier"]),
        timestamp=int(payload["timestamp"]),
    )


async def drain(session: AsyncSession, gateway: StripeGateway, limit: int = 100) -> int:
    """Send due messages; returns how many were sent. Commits after each message."""
    now = utcnow()
    due = list(
        await session.scalars(
            select(StripeOutboxMessage)
            .where(
                StripeOutboxMessage.status == "pending",
                StripeOutboxMessage.next_attempt_at <= now,
            )
            .order_by(StripeOutboxMessage.id)
            .limit(limit)
        )
    )
    await session.commit()  # no transaction held open across the network calls
    sent = 0
    for message in due:
        try:
            await _send(gateway, message)
        except (StripeGatewayError, ValueError, KeyError) as exc:
            record_failure(message, f"{type(exc).__name__}: {exc}", utcnow())
            log.warning("stripe outbox send failed", id=message.id, error=message.last_error)
        else:
            message.status, message.sent_at, message.last_error = "sent", utcnow(), None
            message.attempts += 1
            sent += 1
        await session.commit()
    return sent
