"""For browser tests whose `serve` starts the Stripe emulator itself (on a port of the module's
own, so each such module gets its own server): its environment, and waiting until it answers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

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


def serve_with_emulator(port: int) -> tuple[Any, Any, Any]:
    """The module fixtures of a browser-test module whose `serve` starts the emulator on
    `port`: `live_server_env, live_server_args, emulator_ready = serve_with_emulator(PORT)`."""

    @pytest.fixture(scope="module")
    def live_server_env() -> dict[str, str]:
        return emulator_env(port)

    @pytest.fixture(scope="module")
    def live_server_args() -> tuple[str, ...]:
        return ()  # let `serve` start the emulator

    @pytest.fixture(scope="module", autouse=True)
    def emulator_ready(live_server: Any) -> None:
        wait_for_emulator(f"http://127.0.0.1:{port}")

    return live_server_env, live_server_args, emulator_ready
