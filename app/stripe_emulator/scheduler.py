"""Time passing on the emulator's global clock: renew subscriptions as periods end."""

from __future__ import annotations

import asyncio
import logging

from app.stripe_emulator import subscriptions
from app.stripe_emulator.core import Emulator

log = logging.getLogger("stripe_emulator.scheduler")


def tick(emu: Emulator) -> None:
    """Process every subscription not on a test clock up to the global clock's now."""
    with emu.store.transaction():
        subscriptions.process_due(emu, None, emu.global_now())


def advance(emu: Emulator, seconds: int) -> int:
    with emu.store.transaction():
        now = emu.advance_global(seconds)
        subscriptions.process_due(emu, None, now)
    return now


async def run(emu: Emulator) -> None:
    while True:
        try:
            tick(emu)
        except Exception:  # keep the loop alive; the next tick retries
            log.exception("subscription tick failed")
        await asyncio.sleep(emu.options.tick_seconds)
