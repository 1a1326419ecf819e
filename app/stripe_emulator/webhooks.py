"""Signing events like Stripe and delivering them to the portal, with retries."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from typing import Any, cast

import httpx

from app.stripe_emulator import thin_events
from app.stripe_emulator.core import Emulator, render

log = logging.getLogger("stripe_emulator.webhooks")

MAX_BACKOFF_FACTOR = 12


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header: `t=...,v1=` HMAC-SHA256 of "{t}.{payload}"."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def payload_of(event: dict[str, Any]) -> bytes:
    return json.dumps(render(event), indent=2).encode()


def backoff(retry_seconds: float, attempts: int) -> float:
    """Seconds before the next try after `attempts` failures: doubling, capped."""
    return cast(float, retry_seconds * min(2 ** max(attempts - 1, 0), MAX_BACKOFF_FACTOR))


class Deliverer:
    """Background loop: POST due events to the webhook URL; failures are retried later."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self._wake = asyncio.Event()
        emu.on_event = self._wake.set

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            while True:
                try:
                    await self.deliver_due(client)
                except Exception:  # keep the loop alive whatever one delivery does
                    log.exception("webhook delivery loop failed")
                await self._sleep_until_next()

    async def _sleep_until_next(self) -> None:
        next_at = self.emu.store.next_delivery_at()
        wait = self.emu.options.tick_seconds
        if next_at is not None:
            wait = min(wait, max(next_at - time.time(), 0.01))
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def deliver_due(self, client: httpx.AsyncClient) -> None:
        store = self.emu.store
        for delivery_id, event_id, attempts in store.due_deliveries(time.time()):
            event = store.get(event_id)
            if event is None:
                with store.transaction():
                    store.mark_delivered(delivery_id, time.time(), "event missing")
                continue
            thin = event["object"] == "v2.core.event"
            body = thin_events.payload_of(event) if thin else payload_of(event)
            url = self.emu.options.thin_webhook_url if thin else self.emu.options.webhook_url
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Stripe-Signature": sign(body, self.emu.options.webhook_secret),
            }
            try:
                response = await client.post(url, content=body, headers=headers)
                ok, status = 200 <= response.status_code < 300, str(response.status_code)
            except httpx.HTTPError as exc:
                ok, status = False, type(exc).__name__
            with store.transaction():
                now = time.time()
                if ok:
                    store.mark_delivered(delivery_id, now, status)
                    current = store.get(event_id)
                    if current and "pending_webhooks" in current:
                        current["pending_webhooks"] = max(0, current["pending_webhooks"] - 1)
                        store.put(current)
                else:
                    retry_at = now + backoff(self.emu.options.retry_seconds, attempts + 1)
                    store.mark_failed(delivery_id, retry_at, status)
                    log.info("webhook %s failed (%s), retrying later", event_id, status)
