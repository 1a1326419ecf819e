"""`billing-portal stripe-check` against a fresh emulator: what a new account lacks is
reported and the command exits 1; once the catalog is synced, the portal settings saved and
the webhook endpoint made (through the API), it reports OK and exits 0."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import stripe
from click.testing import CliRunner, Result

from app.cli import main
from app.stripe_sync.stripe_check import required_events
from tests.integration.stripe_emulator.conftest import EmulatorProcess, make_emulator

PUBLIC_URL = "http://127.0.0.1:9"  # nothing listens: the emulator's deliveries just fail
WEBHOOK_URL = f"{PUBLIC_URL}/webhooks/stripe"
_SCRUBBED = ("DATABASE_URL", "STRIPE_SECRET_KEY", "STRIPE_API_BASE", "PUBLIC_URL", "REDIS_URL")


@pytest.fixture(scope="module")
def fresh_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    process = make_emulator(tmp_path_factory.mktemp("stripe-check-emulator"), PUBLIC_URL)
    process.start()
    yield process
    process.stop()


def _run(emulator: EmulatorProcess, var_dir: Path, *args: str) -> Result:
    env: dict[str, str | None] = {name: None for name in _SCRUBBED if name in os.environ}
    env.update(
        VAR_DIR=str(var_dir),
        STRIPE_API_BASE=emulator.url,
        PUBLIC_URL=PUBLIC_URL,
        STRIPE_WEBHOOK_SECRET="whsec_stripe_check_test",
        LOG_LEVEL="WARNING",
    )
    result = CliRunner(env=env).invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_a_fresh_account_lacks_the_go_live_settings_until_they_are_made(
    fresh_emulator: EmulatorProcess, tmp_path: Path
) -> None:
    before = _run(fresh_emulator, tmp_path, "stripe-check")
    assert before.exit_code == 1, before.output
    missing = [line for line in before.output.splitlines() if line.startswith("MISSING")]
    assert any(line.startswith("MISSING portal: no default configuration") for line in missing)
    assert any(
        line.startswith(f"MISSING webhooks: no endpoint for {WEBHOOK_URL}") for line in missing
    )
    assert any(
        line.startswith("MISSING catalog: no billing meter bp_api_calls") for line in missing
    )
    assert any(
        line.startswith("MISSING catalog: no price for plan_pro_monthly") for line in missing
    )
    assert "OK      account: business name 'Emulator test business'" in before.output
    assert "OK      payment methods: on: card" in before.output
    assert "WARNING key: no STRIPE_SECRET_KEY" in before.output
    assert before.output.splitlines()[-1].startswith(f"{len(missing)} missing")

    assert _run(fresh_emulator, tmp_path, "sync-catalog").exit_code == 0
    client = stripe.StripeClient(
        "sk_test_emulator", base_addresses={"api": fresh_emulator.url}, max_network_retries=0
    )
    # A portal that switches plans is refused, as is an endpoint missing an event.
    config = client.v1.billing_portal.configurations.create(
        params={
            "features": {
                "customer_update": {"enabled": False},
                "invoice_history": {"enabled": True},
                "payment_method_update": {"enabled": True},
                "subscription_cancel": {"enabled": True, "mode": "at_period_end"},
                "subscription_update": {"enabled": True},
            }
        }
    )
    # The Dashboard's "Save" of the portal settings: the configuration sessions use.
    httpx.post(
        f"{fresh_emulator.url}/_emulator/billing_portal/configurations/{config.id}/default"
    ).raise_for_status()
    events = sorted(required_events())
    endpoint = client.v1.webhook_endpoints.create(
        params={
            "url": WEBHOOK_URL,
            "enabled_events": events[1:],  # type: ignore[typeddict-item]
            "api_version": stripe.api_version,  # type: ignore[typeddict-item]
        }
    )
    wrong = _run(fresh_emulator, tmp_path, "stripe-check")
    assert wrong.exit_code == 1
    assert "MISSING portal: customers can switch plans there" in wrong.output
    assert f"MISSING webhooks: {endpoint.id} does not send: {events[0]}" in wrong.output
    assert "catalog" not in "".join(
        line for line in wrong.output.splitlines() if line.startswith("MISSING")
    )

    client.v1.billing_portal.configurations.update(
        config.id, params={"features": {"subscription_update": {"enabled": False}}}
    )
    client.v1.webhook_endpoints.update(endpoint.id, params={"enabled_events": events})  # type: ignore[typeddict-item]
    after = _run(fresh_emulator, tmp_path, "stripe-check")
    assert after.exit_code == 0, after.output
    assert "MISSING" not in after.output
    assert f"OK      portal: default configuration {config.id}" in after.output
    assert "OK      portal: switching plans is off" in after.output
    assert f"OK      webhooks: {endpoint.id} sends to {WEBHOOK_URL}" in after.output
    assert f"OK      webhooks: API version {stripe.api_version}, the SDK's" in after.output
    assert "OK      catalog:" in after.output
    assert after.output.splitlines()[-1].startswith("Nothing missing")
