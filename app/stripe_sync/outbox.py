"""The Stripe outbox sender: meter events recorded with the usage, sent later by the worker.

Overage reporting uses it: where a plan prices usage beyond its included quota, the usage
write puts a Billing Meter event in the outbox (`app.metering.outbox`) in the same
transaction as the usage event, keyed by our identifier. The worker (`drain`) sends them in
bulk, oldest usage first (`MeterEventSender`): on Stripe's v2 meter event stream, up to 100
events a call and `CONCURRENCY` calls at once, on a session token it renews before it
expires and whenever Stripe says it has; where the stream is not available (Stripe answers
404 or 403) through v1 meter events, `CONCURRENCY` at a time.

A row is marked `sent` only once Stripe accepted it: a stream call is accepted whole or not
at all, so its rows are sent or failed together; a v1 call is per row. Every event carries
`identifier` = our identifier, so Stripe counts it once however often it is sent (a lost
response, a lease that ran out). Failures back off per row (2^attempts s, at most
`MAX_BACKOFF`) and give up (status `dead`) only once the message is older than `MAX_AGE`:
Stripe accepts meter events up to 35 days old but dedupes an identifier for at least 24
hours, so we stop resending well inside that window. `requeue_dead` (`billing-portal
outbox-retry`) puts dead rows back to `pending`.

Several workers may run: each claims the rows it sends (`OutboxRepository.claim`: a lease of
`LEASE` on `next_attempt_at`, taken under the write lock on SQLite and with `FOR UPDATE SKIP
LOCKED` on PostgreSQL), so two workers do not send the same rows; a worker that dies leaves
its rows to the others once the lease runs out, and the identifiers make that resend count
once.

Stripe bills a period's usage when it closes the period's invoice, about an hour after the
period ends (`GRACE`); usage that arrives later is not on that invoice. So `drain` sends
oldest first and keeps going while rows are due (not one batch per worker round), and logs
the rows it sends later than `GRACE` after their usage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.engine import write_from_here
from app.lib.clock import as_utc, utcnow
from app.metering.outbox import METER_EVENT, StripeOutboxMessage
from app.stripe.gateway import (
    METER_STREAM_MAX_EVENTS,
    MeterEvent,
    MeterSessionExpired,
    MeterStreamUnavailable,
    StripeGateway,
    StripeGatewayError,
)
from app.stripe_sync.repository import OutboxRepository

log = structlog.get_logger()

MAX_BACKOFF = timedelta(hours=1)
# Stripe dedupes a meter event's identifier for at least 24 h: resend only well within that.
MAX_AGE = timedelta(hours=20)
# Stripe finalizes a period's invoice about an hour after the period ends; later usage misses it.
GRACE = timedelta(hours=1)
# A claimed row is another worker's again after this (a worker that died mid-send).
LEASE = timedelta(minutes=5)
# Stripe calls in flight at once (stream batches, or v1 events without the stream).
CONCURRENCY = 8
# How long one `drain` keeps claiming while rows are due, before the worker's other duties.
ROUND_SECONDS = 30.0
# Without the stream, ask for a session again after this long (the account may gain it).
STREAM_RECHECK_SECONDS = 600.0
# A session token is renewed this long before Stripe's expiry.
TOKEN_MARGIN_SECONDS = 60.0

Outcome = StripeGatewayError | None  # per event: None = accepted by Stripe


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


class MeterEventSender:
    """Sends meter events to Stripe in bulk: the v2 stream while it is available, else v1.

    Holds the stream's session token between rounds (a worker keeps one sender), renewed
    `TOKEN_MARGIN_SECONDS` before it expires, measured on this process's monotonic clock from
    the session's life at Stripe, and at once when Stripe says it expired."""

    def __init__(
        self,
        gateway: StripeGateway,
        *,
        concurrency: int = CONCURRENCY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gateway = gateway
        self.concurrency = concurrency
        self.monotonic = monotonic
        self._token: str | None = None
        self._token_until = 0.0  # on `monotonic`'s clock
        self._stream_off_until = 0.0  # the stream is not tried again before
        self._token_lock = asyncio.Lock()

    @property
    def streaming(self) -> bool:
        return self.monotonic() >= self._stream_off_until

    @property
    def claim_size(self) -> int:
        """How many rows one round of concurrent calls sends."""
        per_call = METER_STREAM_MAX_EVENTS if self.streaming else 10
        return per_call * self.concurrency

    async def send(self, events: Sequence[MeterEvent]) -> list[Outcome]:
        """Send `events`; one outcome per event, in order (None: Stripe accepted it)."""
        if not events:
            return []
        limit = asyncio.Semaphore(self.concurrency)
        self._token_lock = asyncio.Lock()  # on this call's event loop
        if self.streaming:
            try:
                token = await self._session_token()
            except MeterStreamUnavailable as exc:
                self._stream_unavailable(exc)
            except StripeGatewayError as exc:
                return [exc] * len(events)
            else:
                return await self._stream(events, token, limit)
        return await self._v1_each(events, limit)

    async def _session_token(self, expired: str | None = None) -> str:
        """The session token, a new one if it is about to expire or is `expired` (once for
        all the calls that found it so)."""
        async with self._token_lock:
            if expired is not None and self._token == expired:
                self._token = None
            if self._token is None or self.monotonic() >= self._token_until:
                started = self.monotonic()
                session = await self.gateway.create_meter_event_session()
                life = (session.expires_at - session.created).total_seconds()
                self._token = session.token
                self._token_until = started + life - min(TOKEN_MARGIN_SECONDS, life / 2)
            return self._token

    def _stream_unavailable(self, exc: StripeGatewayError) -> None:
        log.warning(
            "meter event stream unavailable, using v1 meter events",
            status=exc.http_status,
            error=exc.message,
            retry_in_s=STREAM_RECHECK_SECONDS,
        )
        self._token = None
        self._stream_off_until = self.monotonic() + STREAM_RECHECK_SECONDS

    async def _stream(
        self, events: Sequence[MeterEvent], token: str, limit: asyncio.Semaphore
    ) -> list[Outcome]:
        size = METER_STREAM_MAX_EVENTS
        batches = [events[at : at + size] for at in range(0, len(events), size)]
        results = await asyncio.gather(*(self._batch(batch, token, limit) for batch in batches))
        return [outcome for outcomes in results for outcome in outcomes]

    async def _batch(
        self, batch: Sequence[MeterEvent], token: str, limit: asyncio.Semaphore
    ) -> list[Outcome]:
        """One stream call: every event of it accepted, or every one failed."""
        async with limit:
            try:
                try:
                    await self.gateway.send_meter_events(token, batch)
                except MeterSessionExpired:
                    token = await self._session_token(expired=token)
                    await self.gateway.send_meter_events(token, batch)
            except MeterStreamUnavailable as exc:
                self._stream_unavailable(exc)
            except StripeGatewayError as exc:
                return [exc] * len(batch)
            else:
                return [None] * len(batch)
        return await self._v1_each(batch, limit)  # without the stream after all

    async def _v1_each(
        self, events: Sequence[MeterEvent], limit: asyncio.Semaphore
    ) -> list[Outcome]:
        return list(await asyncio.gather(*(self._v1(event, limit) for event in events)))

    async def _v1(self, event: MeterEvent, limit: asyncio.Semaphore) -> Outcome:
        async with limit:
            try:
                await self.gateway.create_meter_event(
                    event_name=event.event_name,
                    stripe_customer_id=event.stripe_customer_id,
                    value=event.value,
                    identifier=event.identifier,
                    timestamp=event.timestamp,
                )
            except StripeGatewayError as exc:
                return exc
            return None


def _meter_event(message: StripeOutboxMessage) -> MeterEvent:
    if message.kind != METER_EVENT:
        raise ValueError(f"unknown outbox kind {message.kind!r}")
    payload = message.payload
    return MeterEvent(
        event_name=str(payload["event_name"]),
        stripe_customer_id=str(payload["stripe_customer_id"]),
        value=int(payload["value"]),
        identifier=str(payload["identifier"]),
        timestamp=int(payload["timestamp"]),
    )


def _flag_late(messages: list[StripeOutboxMessage], now: datetime) -> None:
    """Log rows sent more than `GRACE` after their usage: if their period ended in between,
    Stripe has closed its invoice and they are billed in no period."""
    late = [m for m in messages if now - as_utc(m.created_at) > GRACE]
    if late:
        oldest = min(as_utc(m.created_at) for m in late)
        log.error(
            "stripe outbox: meter events sent past Stripe's grace after a period end",
            count=len(late),
            oldest=oldest.isoformat(),
            ids=[m.id for m in late[:20]],
        )


async def drain(
    session: AsyncSession,
    stripe: StripeGateway | MeterEventSender,
    *,
    round_seconds: float | None = None,
) -> int:
    """Send due messages, oldest usage first, as long as rows are due (at most
    `round_seconds`, default `ROUND_SECONDS`); returns how many Stripe accepted. Commits each claim and each outcome.

    `stripe` is a sender to keep its session token across calls (the worker's), or a gateway
    (a sender for this call only)."""
    sender = stripe if isinstance(stripe, MeterEventSender) else MeterEventSender(stripe)
    repository = OutboxRepository(session)
    budget = ROUND_SECONDS if round_seconds is None else round_seconds
    started = time.monotonic()
    sent = 0
    while True:
        size = sender.claim_size
        await write_from_here(session)
        claimed = await repository.claim(utcnow(), size, LEASE)
        await session.commit()  # no transaction held open across the network calls
        if not claimed:
            return sent
        _flag_late(claimed, utcnow())
        events: list[MeterEvent] = []
        outcomes: dict[int, Outcome | str] = {}
        for message in claimed:
            try:
                events.append(_meter_event(message))
            except (ValueError, KeyError, TypeError) as exc:
                outcomes[message.id] = f"{type(exc).__name__}: {exc}"
        sendable = [m for m in claimed if m.id not in outcomes]
        outcomes.update(zip((m.id for m in sendable), await sender.send(events), strict=True))
        sent += await _record(session, claimed, outcomes)
        if len(claimed) < size or time.monotonic() - started >= budget:
            return sent


async def _record(
    session: AsyncSession,
    claimed: list[StripeOutboxMessage],
    outcomes: dict[int, Outcome | str],
) -> int:
    """Each claimed row sent or failed, in one commit; returns how many were sent."""
    await write_from_here(session)
    now = utcnow()
    sent = 0
    errors: dict[str, int] = {}
    for message in claimed:
        outcome = outcomes[message.id]
        if outcome is None:
            message.status, message.sent_at, message.last_error = "sent", now, None
            message.attempts += 1
            sent += 1
            continue
        error = outcome if isinstance(outcome, str) else f"{type(outcome).__name__}: {outcome}"
        record_failure(message, error, now)
        errors[error] = errors.get(error, 0) + 1
    await session.commit()
    for error, count in errors.items():
        log.warning("stripe outbox send failed", count=count, error=error[:500])
    return sent
