"""The Stripe outbox sender: meter events recorded with the usage, sent later by the worker.

Overage reporting uses it: where a plan prices usage beyond its included quota, the usage
write puts a Billing Meter event in the outbox (`app.metering.outbox`) in the same
transaction as the usage event, keyed by our transaction id. The worker (`drain`) sends it
with `identifier = <transaction id>`, so Stripe counts it once even when a response is lost
and it is sent again; failures back off exponentially (2^attempts s, at most `MAX_BACKOFF`)
and give up (status `dead`) only once the message is older than `MAX_AGE`: Stripe accepts
meter events up to 35 days old but dedupes an identifier for at least 24 hours, so we stop
resending well inside that window. `requeue_dead` (`billing-portal outbox-retry`) puts dead
rows back to `pending`. Nothing is lost (the row is committed with the usage) and nothing is
sent twice (Stripe dedupes on the identifier; we stop once it answered).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.engine import write_from_here
from app.lib.clock import as_utc, utcnow
from app.metering.outbox import METER_EVENT, StripeOutboxMessage
from app.stripe.gateway import StripeGateway, StripeGatewayError
from app.stripe_sync.repository import OutboxRepository

log = structlog.get_logger()

MAX_BACKOFF = timedelta(hours=1)
# Stripe dedupes a meter event's identifier for at least 24 h: resend only well within that.
MAX_AGE = timedelta(hours=20)


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
    count = await OutboxRepository(session).requeue_dead(utcnow())
    await session.commit()
    return count


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
    due = await OutboxRepository(session).due(utcnow(), limit)
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
        await write_from_here(session)
        await session.commit()
    return sent
