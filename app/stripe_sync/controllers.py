"""`POST /webhooks/stripe`: the raw body and its signature first, then the event ledger.

Sessionless and CSRF-exempt (everything under `/webhooks/` is). A missing, forged or stale
signature answers 400 and stores nothing, and so does a signed body that is not an event the
ledger can store (app.stripe_sync.events; 413 when it nests too deeply). Once the event is stored the answer is 200, even
when processing it failed: the failure is on the ledger row, retried by the worker and
replayable by an admin (see `app.stripe_sync.service`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Controller, MediaType, Request, Response, post
from litestar.di import NamedDependency

from app.stripe.gateway import InvalidSignature
from app.stripe_sync.events import MalformedEvent
from app.stripe_sync.service import Receipt, StripeEventService

MAX_BODY = 1024 * 1024


class StripeWebhookController(Controller):
    path = "/webhooks/stripe"
    include_in_schema = False
    opt = {"public": True}

    @post("/", opt={"public": True}, media_type=MediaType.JSON, status_code=200)
    async def receive(
        self,
        request: Request[Any, Any, Any],
        stripe_event_service: NamedDependency[StripeEventService],
    ) -> Response[dict[str, Any]]:
        return await _receive(request, stripe_event_service.receive)

    @post("/thin", opt={"public": True}, media_type=MediaType.JSON, status_code=200)
    async def receive_thin(
        self,
        request: Request[Any, Any, Any],
        stripe_event_service: NamedDependency[StripeEventService],
    ) -> Response[dict[str, Any]]:
        """Thin (v2) event notifications, an event destination of their own at Stripe (e.g.
        `v1.billing.meter.error_report_triggered`); the same checks and answers."""
        return await _receive(request, stripe_event_service.receive_thin)


async def _receive(
    request: Request[Any, Any, Any],
    receive: Callable[[bytes, str | None], Awaitable[Receipt]],
) -> Response[dict[str, Any]]:
    payload = await request.body()  # the exact bytes Stripe signed, before any parsing
    if len(payload) > MAX_BODY:
        return Response({"error": "payload_too_large"}, status_code=413)
    try:
        receipt = await receive(payload, request.headers.get("stripe-signature"))
    except InvalidSignature as exc:
        return Response({"error": "invalid_signature", "message": str(exc)[:200]}, status_code=400)
    except MalformedEvent as exc:  # signed, but nothing the ledger can store
        code = "payload_too_large" if exc.status_code == 413 else "malformed_event"
        return Response({"error": code, "message": str(exc)[:200]}, status_code=exc.status_code)
    return Response(
        {
            "received": True,
            "event": receipt.event_id,
            "status": receipt.status,
            "duplicate": receipt.duplicate,
        },
        status_code=200,
    )
