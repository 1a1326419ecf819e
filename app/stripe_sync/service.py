"""The Stripe event ledger: store every webhook event once, process it, record the outcome.

`receive()` is what `POST /webhooks/stripe` calls:

1. verify the signature on the raw body (300 s tolerance) — a bad one raises
   `InvalidSignature` and nothing is stored;
2. insert a `stripe_events` row (unique on the event id) and **commit**; a duplicate
   delivery finds the row instead: already processed (or ignored) → a no-op;
3. process it in the same request (handlers are a few Stripe reads and row updates) and
   commit the outcome: `processed`, `ignored` (a type we do not handle, or an object that is
   not ours), or `failed` with `attempts` and `last_error`.

The webhook answers 2xx whenever step 2 committed — also when processing failed — because
the event is safe in our ledger: the worker retries failed events with backoff
(`retry_failed`), a redelivery of a failed event processes it again, and an admin can
`replay(event_id)` any event. Stripe's own retries are for events we never stored.

This service owns its transactions (commit per step), unlike most services: the event row
must be durable before, and independent of, the handler's work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.mirror import StripeMirror
from app.db.engine import write_from_here
from app.lib.clock import utcnow
from app.lib.errors import NotFound
from app.notifications.service import NotificationService
from app.stripe.gateway import StripeGateway
from app.stripe_sync.events import parse_event
from app.stripe_sync.handlers import HANDLERS, EventContext
from app.stripe_sync.models import StripeEvent
from app.stripe_sync.repository import StripeEventRepository

log = structlog.get_logger()

MAX_AUTO_ATTEMPTS = 8
# An event another request is processing right now is left alone for this long.
IN_FLIGHT = timedelta(seconds=60)
DB_RETRIES = 3


@dataclass(frozen=True)
class Receipt:
    event_id: str
    status: str
    duplicate: bool


def _customer_of(obj: dict[str, Any], event_type: str) -> str | None:
    if event_type.startswith("customer.") and not event_type.startswith("customer.subscription"):
        value = obj.get("id")
    else:
        value = obj.get("customer")
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else None


class StripeEventService:
    def __init__(
        self,
        session: AsyncSession,
        gateway: StripeGateway,
        mirror: StripeMirror,
        notifications: NotificationService,
    ) -> None:
        self.session = session
        self.gateway = gateway
        self.mirror = mirror
        self.notifications = notifications
        self.repo = StripeEventRepository(session)

    async def receive(self, payload: bytes, signature: str | None) -> Receipt:
        """Verify, store and process one delivery. Raises InvalidSignature (a bad signature)
        or MalformedEvent (signed, but not an event the ledger can store)."""
        self.gateway.verify_signature(payload, signature)
        return await self._receive(parse_event(payload))

    async def receive_thin(self, payload: bytes, signature: str | None) -> Receipt:
        """A thin (v2) event notification (`POST /webhooks/stripe/thin`): verified like a
        webhook, its data fetched from Stripe, then stored and processed as any event, under
        the v2 event's id and type, with the related object's id and the fetched data as its
        object (what the handler and the admin's event page read). Raises InvalidSignature,
        MalformedEvent, or StripeGatewayError when Stripe cannot give the data (nothing is
        stored, so Stripe sends it again)."""
        thin = await self.gateway.parse_thin_event(payload, signature)
        event = {
            "id": thin.id,
            "object": "event",
            "type": thin.type,
            "created": thin.created,
            "livemode": False,
            "data": {"object": {**thin.data, "id": thin.related_object_id}},
        }
        return await self._receive(parse_event(json.dumps(event).encode()))

    async def _receive(self, event: dict[str, Any]) -> Receipt:
        row = await self._store(event)
        if row is None:
            existing = await self._get(event["id"])
            if existing.status in ("processed", "ignored") or (
                existing.status == "received" and utcnow() - existing.received_at < IN_FLIGHT
            ):
                return Receipt(existing.stripe_event_id, existing.status, duplicate=True)
            row = existing  # stored earlier but failed (or abandoned): try again now
        await self.process(row)
        return Receipt(row.stripe_event_id, row.status, duplicate=False)

    async def _store(self, event: dict[str, Any]) -> StripeEvent | None:
        # The shape and sizes were checked on arrival (app.stripe_sync.events.parse_event).
        obj = (event.get("data") or {}).get("object") or {}
        event_type = str(event.get("type") or "")
        row = StripeEvent(
            stripe_event_id=str(event["id"]),
            type=event_type[:100],
            object_id=str(obj.get("id"))[:255] if obj.get("id") else None,
            stripe_customer_id=(_customer_of(obj, event_type) or "")[:255] or None,
            api_version=event.get("api_version"),
            stripe_created=int(event.get("created") or 0),
            livemode=bool(event.get("livemode")),
            payload=event,
            status="received",
            attempts=0,
        )
        await write_from_here(self.session)
        self.session.add(row)
        try:
            await self.session.commit()
        except IntegrityError:
            await self.session.rollback()
            return None
        return row

    async def _get(self, stripe_event_id: str) -> StripeEvent:
        row = await self.repo.by_event_id(stripe_event_id)
        if row is None:
            raise NotFound(f"No Stripe event {stripe_event_id!r}.", code="event_not_found")
        return row

    async def process(self, row: StripeEvent) -> StripeEvent:
        """Run the handler for a stored event and commit its outcome; never raises for it."""
        handler = HANDLERS.get(row.type)
        event_id = row.stripe_event_id
        if handler is None:
            row.status, row.attempts, row.processed_at = (
                "ignored",
                (row.attempts or 0) + 1,
                utcnow(),
            )
            row.last_error = None
            await self.session.commit()
            return row
        payload = row.payload
        error: Exception | None = None
        for attempt in range(DB_RETRIES):
            try:
                outcome = await handler(
                    EventContext(self.gateway, self.mirror, self.notifications, payload)
                )
                row = await self._get(event_id)
                row.status = "ignored" if outcome.startswith("ignored") else "processed"
                row.attempts = (row.attempts or 0) + 1
                row.processed_at, row.last_error = utcnow(), None
                await self.session.commit()
                return row
            except DBAPIError as exc:
                # A concurrent writer (SQLite's stale snapshot, a unique race): handlers are
                # idempotent, so run it again on fresh data.
                await self.session.rollback()
                error = exc
                if attempt + 1 < DB_RETRIES:
                    continue
            except Exception as exc:
                await self.session.rollback()
                error = exc
            break
        await write_from_here(self.session)
        row = await self._get(event_id)
        row.status, row.attempts = "failed", (row.attempts or 0) + 1
        row.last_error = f"{type(error).__name__}: {error}"[:4000]
        await self.session.commit()
        log.warning("stripe event failed", event_id=event_id, type=row.type, error=row.last_error)
        return row

    async def replay(self, stripe_event_id: str) -> StripeEvent:
        """Process a stored event again, whatever its status (handlers are idempotent)."""
        return await self.process(await self._get(stripe_event_id))

    async def retry_failed(self, limit: int = 20) -> int:
        """Retry failed (and abandoned) events whose backoff has passed; returns how many ran."""
        now = utcnow()
        candidates = await self.repo.due_for_retry(now, IN_FLIGHT, MAX_AUTO_ATTEMPTS, limit)
        ran = 0
        for row in candidates:
            # 2, 4, 8 ... seconds after the event arrived, by attempt, capped at an hour.
            delay = timedelta(seconds=min(2 ** max(row.attempts, 1), 3600))
            if row.status == "failed" and now - row.received_at < delay:
                continue
            await self.process(row)
            ran += 1
        return ran
