"""The outbox sender on the v2 meter event stream, against its own emulator process (the
session-expiry test moves its clock): batches of 100 and one drain for a whole backlog,
oldest usage first; the session token renewed before it expires and when Stripe says it
expired; v1 with bounded concurrency when the stream is not there; a failed batch retried
alone; two workers never sending the same rows; rows past Stripe's grace window logged.

The emulator stores meter events in a way that slows with their number (a few thousand in
all is the budget of this module)."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from structlog.testing import capture_logs

from app.db.engine import create_session_factory, write_from_here
from app.lib.clock import utcnow
from app.metering.outbox import StripeOutboxMessage, meter_event_message
from app.stripe.gateway import (
    MeterEvent,
    MeterEventSession,
    MeterSessionExpired,
    MeterStreamUnavailable,
    StripeGateway,
    StripeGatewayError,
)
from app.stripe_sync import outbox
from app.stripe_sync.outbox import (
    LEASE,
    STREAM_RECHECK_SECONDS,
    MeterEventSender,
    backoff,
    drain,
)
from app.stripe_sync.repository import OutboxRepository
from app.stripe_sync.worker import StripeWorker
from tests.integration.notifications.conftest import eventually
from tests.integration.stripe.conftest import Emulator, running_emulator

VALUE = 2


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with running_emulator(tmp_path_factory.mktemp("stripe-stream-emulator")) as emulator:
        yield emulator


@dataclass
class Clock:
    """A monotonic clock the test moves (the sender's token life and stream recheck)."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Recording:
    """The real gateway, with every meter-event call recorded and faults on demand."""

    gateway: StripeGateway
    stream_missing: bool = False  # the session answers "unavailable"
    stream_gone: bool = False  # session fine, stream calls answer "unavailable"
    fail_batches: set[int] = field(default_factory=set)  # stream calls (0-based) that fail
    fail_v1: set[str] = field(default_factory=set)  # identifiers v1 refuses
    sessions: int = 0
    expired: int = 0
    batches: list[list[str]] = field(default_factory=list)
    v1: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    async def create_meter_event_session(self) -> MeterEventSession:
        self.sessions += 1
        if self.stream_missing:
            raise MeterStreamUnavailable("Unrecognized request URL.", http_status=404)
        return await self.gateway.create_meter_event_session()

    async def send_meter_events(self, token: str, events: Sequence[MeterEvent]) -> None:
        call = len(self.batches)
        self.batches.append([event.identifier for event in events])
        if self.stream_gone:
            raise MeterStreamUnavailable("Unrecognized request URL.", http_status=404)
        if call in self.fail_batches:
            raise StripeGatewayError("Stripe could not complete the request.", http_status=500)
        try:
            await self.gateway.send_meter_events(token, events)
        except MeterSessionExpired:
            self.expired += 1
            raise

    async def create_meter_event(self, **event: Any) -> dict[str, Any]:
        self.v1.append(event["identifier"])
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if event["identifier"] in self.fail_v1:
                raise StripeGatewayError("Stripe could not complete the request.")
            return await self.gateway.create_meter_event(**event)
        finally:
            self.in_flight -= 1

    @property
    def streamed(self) -> list[str]:
        return [identifier for batch in self.batches for identifier in batch]


def sender(recording: Recording, clock: Clock | None = None, **kw: Any) -> MeterEventSender:
    return MeterEventSender(recording, monotonic=clock or Clock(), **kw)  # type: ignore[arg-type]


@pytest.fixture
async def customer(gateway: StripeGateway) -> str:
    if "bp_api_calls" not in {m["event_name"] for m in await gateway.list_meters()}:
        await gateway.create_meter(
            display_name="API calls", event_name="bp_api_calls", formula="sum", key="t-m-calls"
        )
    created = await gateway.create_customer(
        email=None, name=None, metadata={}, key=f"t-stream-{utcnow().timestamp()}"
    )
    return str(created["id"])


def usage(emulator: Emulator, stripe_customer_id: str) -> float:
    headers = {"Authorization": "Bearer sk_test_emulator"}
    meters = httpx.get(f"{emulator.url}/v1/billing/meters", headers=headers).json()["data"]
    [meter] = [m for m in meters if m["event_name"] == "bp_api_calls"]
    summaries = httpx.get(
        f"{emulator.url}/v1/billing/meters/{meter['id']}/event_summaries",
        params={"customer": stripe_customer_id, "start_time": 0, "end_time": 2**40},
        headers=headers,
    ).json()
    return float(summaries["data"][0]["aggregated_value"])


async def enqueue(
    session: AsyncSession, stripe_customer_id: str, count: int, prefix: str, at: datetime
) -> list[str]:
    """`count` due rows, each a second older than the one before (ids and usage times run in
    opposite orders); their identifiers, oldest usage first."""
    rows = [
        meter_event_message(
            identifier=f"{prefix}-{n}",
            stripe_customer_id=stripe_customer_id,
            meter_code="api_calls",
            value=VALUE,
            now=at - timedelta(seconds=n),
        )
        for n in range(count)
    ]
    await session.execute(insert(StripeOutboxMessage), rows)
    await session.commit()
    return [f"{prefix}-{n}" for n in reversed(range(count))]


async def rows(session: AsyncSession) -> dict[str, StripeOutboxMessage]:
    await session.rollback()
    session.expire_all()
    found = await session.scalars(select(StripeOutboxMessage))
    return {message.idempotency_key: message for message in found}


async def test_a_backlog_goes_out_in_batches_of_100_oldest_first_in_one_drain(
    session: AsyncSession, gateway: StripeGateway, emulator: Emulator, customer: str
) -> None:
    identifiers = await enqueue(session, customer, 450, "backlog", utcnow())
    recording = Recording(gateway)
    # Two calls at a time: a claim is 200 rows, so this drain claims three times.
    assert await drain(session, sender(recording, concurrency=2)) == 450
    assert [len(batch) for batch in recording.batches] == [100, 100, 100, 100, 50]
    assert recording.streamed == identifiers  # by usage time, not by id
    assert recording.sessions == 1 and recording.v1 == []
    stored = await rows(session)
    assert {m.status for m in stored.values()} == {"sent"}
    assert {m.attempts for m in stored.values()} == {1}
    assert usage(emulator, customer) == 450 * VALUE

    # Sent again (responses lost after Stripe stored them): counted once.
    await session.execute(
        update(StripeOutboxMessage).values(status="pending", next_attempt_at=utcnow())
    )
    await session.commit()
    assert await drain(session, gateway) == 450
    assert usage(emulator, customer) == 450 * VALUE


async def test_the_session_token_is_renewed_before_it_expires_and_when_stripe_says_so(
    session: AsyncSession, gateway: StripeGateway, emulator: Emulator, customer: str
) -> None:
    recording, clock = Recording(gateway), Clock()
    meter_sender = sender(recording, clock)
    await enqueue(session, customer, 10, "token-a", utcnow())
    assert await drain(session, meter_sender) == 10
    assert recording.sessions == 1

    clock.now += 13 * 60  # 13 of its 15 minutes: still good
    await enqueue(session, customer, 10, "token-b", utcnow())
    assert await drain(session, meter_sender) == 10
    assert recording.sessions == 1

    clock.now += 90  # within a minute of its expiry: renewed before use, never refused
    await enqueue(session, customer, 10, "token-c", utcnow())
    assert await drain(session, meter_sender) == 10
    assert (recording.sessions, recording.expired) == (2, 0)

    # Stripe's clock runs ahead of ours: it calls the token expired; renewed, sent at once.
    emulator.advance(days=16 / (24 * 60))
    await enqueue(session, customer, 10, "token-d", utcnow())
    assert await drain(session, meter_sender) == 10
    assert (recording.sessions, recording.expired) == (3, 1)
    assert recording.batches[-2] == recording.batches[-1]  # the same batch, once more
    assert usage(emulator, customer) == 40 * VALUE

    # A token Stripe does not know is an expired session too (the SDK's 401).
    with pytest.raises(MeterSessionExpired):
        await gateway.send_meter_events("mes_tok_unknown", [_event(customer, "x")])


def _event(customer: str, identifier: str) -> MeterEvent:
    return MeterEvent("bp_api_calls", customer, VALUE, identifier, int(utcnow().timestamp()))


async def test_without_the_stream_v1_events_go_eight_at_a_time(
    session: AsyncSession, gateway: StripeGateway, emulator: Emulator, customer: str
) -> None:
    recording, clock = Recording(gateway, stream_missing=True), Clock()
    meter_sender = sender(recording, clock)
    identifiers = await enqueue(session, customer, 40, "v1", utcnow())
    assert await drain(session, meter_sender) == 40
    assert sorted(recording.v1) == sorted(identifiers) and recording.batches == []
    assert 1 < recording.max_in_flight <= 8
    assert usage(emulator, customer) == 40 * VALUE

    # Not asked again at every round ...
    await enqueue(session, customer, 5, "v1-again", utcnow())
    assert await drain(session, meter_sender) == 5
    assert recording.sessions == 1
    # ... but after a while: the account has the stream now.
    recording.stream_missing = False
    clock.now += STREAM_RECHECK_SECONDS
    await enqueue(session, customer, 5, "v1-then-stream", utcnow())
    assert await drain(session, meter_sender) == 5
    assert recording.sessions == 2 and len(recording.batches) == 1
    assert len(recording.v1) == 45

    # The stream going away between the session and a call: that batch goes through v1.
    gone = Recording(gateway, stream_gone=True)
    await enqueue(session, customer, 5, "gone", utcnow())
    assert await drain(session, sender(gone)) == 5
    assert len(gone.batches) == 1 and sorted(gone.v1) == sorted(gone.batches[0])
    assert usage(emulator, customer) == 55 * VALUE


@pytest.fixture
def not_found() -> Iterator[str]:
    """An address where every request is answered 404, as Stripe answers an unknown path."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b'{"error": {"type": "invalid_request_error", "message": "Not found."}}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


async def test_a_404_from_the_v2_endpoints_means_the_stream_is_unavailable(
    not_found: str,
) -> None:
    gateway = StripeGateway("sk_test_x", "whsec_x", api_base=not_found, max_network_retries=0)
    with pytest.raises(MeterStreamUnavailable) as exc:
        await gateway.create_meter_event_session()
    assert exc.value.http_status == 404
    with pytest.raises(MeterStreamUnavailable):
        await gateway.send_meter_events("mes_tok_x", [_event("cus_x", "x")])


async def test_a_failed_batch_is_retried_alone_with_backoff(
    session: AsyncSession,
    gateway: StripeGateway,
    emulator: Emulator,
    customer: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await enqueue(session, customer, 250, "partial", utcnow())
    recording = Recording(gateway, fail_batches={1})
    assert await drain(session, sender(recording)) == 150
    failed = set(recording.batches[1])
    stored = await rows(session)
    pending = {key for key, m in stored.items() if m.status == "pending"}
    assert pending == failed and len(failed) == 100
    for key in failed:
        message = stored[key]
        assert message.attempts == 1 and "could not complete" in (message.last_error or "")
        assert message.next_attempt_at is not None
    assert usage(emulator, customer) == 150 * VALUE

    # Not due before its backoff; then that batch alone goes again.
    assert await drain(session, sender(recording)) == 0
    later = utcnow() + backoff(1)
    monkeypatch.setattr(outbox, "utcnow", lambda: later)
    assert await drain(session, sender(recording)) == 100
    assert set(recording.batches[-1]) == failed
    assert usage(emulator, customer) == 250 * VALUE

    # Through v1, a refused event fails alone.
    v1 = Recording(gateway, stream_missing=True, fail_v1={"partial-v1-3"})
    await enqueue(session, customer, 10, "partial-v1", later)
    assert await drain(session, sender(v1)) == 9
    stored = await rows(session)
    assert [k for k, m in stored.items() if m.status == "pending"] == ["partial-v1-3"]


async def test_two_workers_never_send_the_same_rows(
    engine: AsyncEngine, session: AsyncSession, gateway: StripeGateway, customer: str
) -> None:
    identifiers = await enqueue(session, customer, 300, "workers", utcnow())
    first, second = Recording(gateway), Recording(gateway)
    factory = create_session_factory(engine)

    async def worker(recording: Recording) -> int:
        async with factory() as own:
            return await drain(own, sender(recording, concurrency=1))

    sent = await asyncio.gather(worker(first), worker(second))
    assert sum(sent) == 300
    both = first.streamed + second.streamed
    assert sorted(both) == sorted(identifiers)  # each row sent once, by one of them


async def test_a_claim_is_leased_until_it_is_sent_or_runs_out(
    session: AsyncSession, customer: str
) -> None:
    now = utcnow()
    await enqueue(session, customer, 5, "lease", now)
    repository = OutboxRepository(session)

    async def claim(at: datetime) -> list[str]:
        await write_from_here(session)
        claimed = await repository.claim(at, 10, LEASE)
        await session.commit()
        return [m.idempotency_key for m in claimed]

    assert len(await claim(now)) == 5
    assert await claim(now + LEASE - timedelta(seconds=1)) == []  # another worker's, for now
    assert len(await claim(now + LEASE)) == 5  # that worker died: due again


async def test_rows_sent_past_the_grace_window_are_logged(
    session: AsyncSession, gateway: StripeGateway, customer: str
) -> None:
    await enqueue(session, customer, 3, "late", utcnow() - timedelta(hours=2))
    await enqueue(session, customer, 3, "on-time", utcnow())
    with capture_logs() as logs:
        assert await drain(session, gateway) == 6
    [late] = [entry for entry in logs if "grace" in entry["event"]]
    assert late["log_level"] == "error" and late["count"] == 3


async def test_the_worker_keeps_draining_while_there_is_a_backlog(
    engine: AsyncEngine,
    session: AsyncSession,
    gateway: StripeGateway,
    customer: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each drain sends one claim (no round time), and the worker's pause is an hour: the
    backlog still goes out, round after round without the pause."""
    monkeypatch.setattr(outbox, "ROUND_SECONDS", 0.0)
    await enqueue(session, customer, 300, "rounds", utcnow())
    worker = StripeWorker(engine, gateway, events=_no_events, interval=3600)
    recording = Recording(gateway)
    worker.sender = sender(recording, concurrency=1)  # 100 rows a claim
    worker.start()
    try:

        async def all_sent() -> bool:
            stored = await rows(session)
            return all(m.status == "sent" for m in stored.values())

        await eventually(all_sent, timeout=30, what="the backlog sent")
    finally:
        await worker.stop()
    assert len(recording.batches) == 3


class _NoEvents:
    async def retry_failed(self) -> int:
        return 0


def _no_events(_: AsyncSession) -> Any:
    return _NoEvents()
