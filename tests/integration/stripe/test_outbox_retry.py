"""The outbox keeps retrying a meter event (at most an hour apart) until it is ~20 hours old,
well inside Stripe's 24 h identifier dedupe window; dead rows can be requeued."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.metering.outbox import StripeOutboxMessage
from app.stripe.gateway import StripeGatewayError
from app.stripe_sync import outbox
from app.stripe_sync.outbox import MAX_AGE, backoff, drain, requeue_dead
from app.stripe_sync.repository import OutboxRepository

T0 = datetime(2030, 1, 1, tzinfo=UTC)


class DownGateway:
    """Stripe unreachable: every call fails (the meter event session first)."""

    def __init__(self) -> None:
        self.calls = 0

    async def create_meter_event_session(self) -> Any:
        self.calls += 1
        raise StripeGatewayError("Stripe could not be reached.")

    async def create_meter_event(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        raise StripeGatewayError("Stripe could not be reached.")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_backoff_doubles_up_to_an_hour() -> None:
    assert backoff(1) == timedelta(seconds=2)
    assert backoff(11) == timedelta(seconds=2048)
    assert backoff(12) == timedelta(hours=1)
    assert backoff(1000) == timedelta(hours=1)


async def _message(session: AsyncSession) -> StripeOutboxMessage:
    await session.rollback()
    session.expire_all()
    row = await session.scalar(select(StripeOutboxMessage))
    assert row is not None
    return row


async def test_failures_retry_for_twenty_hours_then_dead_then_requeued(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(T0)
    monkeypatch.setattr(outbox, "utcnow", clock)
    await OutboxRepository(session).add_meter_event(
        identifier="api_calls:cus-x:tx-1",
        stripe_customer_id="cus_x",
        meter_code="api_calls",
        value=1,
        timestamp=T0,
    )
    await session.commit()
    gateway = DownGateway()

    waits: list[timedelta] = []
    while (message := await _message(session)).status == "pending":
        due = message.next_attempt_at.replace(tzinfo=UTC)
        waits.append(due - clock.now)
        clock.now = max(clock.now, due)
        assert await drain(session, gateway) == 0
        assert clock.now - T0 < MAX_AGE + timedelta(hours=2), "never gave up"

    assert message.status == "dead"
    assert message.attempts == gateway.calls
    # Still retried after the old 10 attempts (~17 minutes) ...
    assert message.attempts > 10
    # ... at most an hour apart, and given up only once the message is 20 hours old.
    assert max(waits) == timedelta(hours=1)
    assert MAX_AGE <= clock.now - T0 < MAX_AGE + timedelta(hours=1)

    # Not retried while dead; requeued, it is due at once.
    clock.now += timedelta(hours=2)
    assert await drain(session, gateway) == 0
    assert gateway.calls == message.attempts
    assert await requeue_dead(session) == 1
    message = await _message(session)
    assert message.status == "pending"
    calls = gateway.calls
    await drain(session, gateway)
    assert gateway.calls == calls + 1
