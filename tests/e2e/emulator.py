"""For browser tests whose `serve` starts the Stripe emulator itself (on a port of the module's
own, so each such module gets its own server): its environment, and waiting until it answers."""

from __future__ import annotations

import httpx

from tests.support import wait_until


def emulator_env(port: int) -> dict[str, str]:
    """`live_server_env` for `serve` to start the emulator on `port`, retrying webhooks fast."""
    return {
        "STRIPE_EMULATOR_PORT": str(port),
        "STRIPE_EMULATOR_RETRY_SECONDS": "0.2",
        "STRIPE_EMULATOR_TICK_SECONDS": "0.2",
    }


def wait_for_emulator(url: str) -> None:
    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/_emulator/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, timeout=20, what="the Stripe emulator started by serve")
