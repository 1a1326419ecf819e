"""Stripe's v2 meter event stream (session token, batches) and v2 meter events through the SDK,
counted like v1 meter events; rejected events reported by the thin event
`v1.billing.meter.error_report_triggered`."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import stripe

from tests.integration.stripe_emulator.conftest import WEBHOOK_SECRET, Receiver, make_emulator
from tests.integration.stripe_emulator.helpers import sum_meter, unique
from tests.integration.stripe_emulator.signed import thin_notification


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def _total(client: stripe.StripeClient, meter_id: str, customer_id: str, start: int) -> float:
    summaries = client.v1.billing.meters.event_summaries.list(
        meter_id,
        params={"customer": customer_id, "start_time": start, "end_time": start + 3600},
    )
    return float(summaries.data[0].aggregated_value)


@pytest.fixture
def v2_client(emulator: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_emulator_tests",
        base_addresses={"api": emulator, "meter_events": emulator},
        max_network_retries=0,
    )


def test_stream_counts_like_v1_and_dedupes(
    client: stripe.StripeClient, v2_client: stripe.StripeClient, emulator: str
) -> None:
    name = unique("api_calls")
    meter = sum_meter(client, unique("Calls"), name)
    customer = client.v1.customers.create(params={"email": f"{unique('m')}@example.com"})
    start = int(time.time()) - 60

    session = v2_client.v2.billing.meter_event_session.create()
    assert session.object == "v2.billing.meter_event_session"
    assert session.authentication_token and session.expires_at > session.created
    stream = stripe.StripeClient(
        session.authentication_token,
        base_addresses={"api": emulator, "meter_events": emulator},
        max_network_retries=0,
    )
    events: list[dict[str, object]] = [
        {
            "event_name": name,
            "identifier": f"{name}-{i}",
            "payload": {"stripe_customer_id": customer.id, "value": "2"},
            "timestamp": _iso(start + i),
        }
        for i in range(100)
    ]
    stream.v2.billing.meter_event_stream.create({"events": events})  # type: ignore[typeddict-item]
    # A resend of part of the batch, and the same identifier through v1: counted once.
    stream.v2.billing.meter_event_stream.create({"events": events[:10]})  # type: ignore[typeddict-item]
    client.v1.billing.meter_events.create(
        params={
            "event_name": name,
            "identifier": f"{name}-0",
            "payload": {"stripe_customer_id": customer.id, "value": "2"},
        }
    )
    assert _total(client, meter.id, customer.id, start) == 200.0

    single = v2_client.v2.billing.meter_events.create(
        {
            "event_name": name,
            "identifier": f"{name}-v2",
            "payload": {"stripe_customer_id": customer.id, "value": "5"},
        }
    )
    assert single.object == "v2.billing.meter_event" and single.identifier == f"{name}-v2"
    assert _total(client, meter.id, customer.id, start) == 205.0


def test_stream_limits_and_authentication(v2_client: stripe.StripeClient, emulator: str) -> None:
    session = v2_client.v2.billing.meter_event_session.create()
    stream = stripe.StripeClient(
        session.authentication_token,
        base_addresses={"api": emulator, "meter_events": emulator},
        max_network_retries=0,
    )
    too_many = [{"event_name": "x", "payload": {"value": "1"}} for _ in range(101)]
    with pytest.raises(stripe.InvalidRequestError):
        stream.v2.billing.meter_event_stream.create({"events": too_many})  # type: ignore[typeddict-item]

    wrong = stripe.StripeClient(
        "mes_tok_nope", base_addresses={"meter_events": emulator}, max_network_retries=0
    )
    with pytest.raises(stripe.AuthenticationError):
        wrong.v2.billing.meter_event_stream.create({"events": too_many[:1]})  # type: ignore[typeddict-item]
    # The secret key is not a session token.
    with pytest.raises(stripe.AuthenticationError):
        v2_client.v2.billing.meter_event_stream.create({"events": too_many[:1]})  # type: ignore[typeddict-item]


def test_an_expired_session_is_refused(tmp_path: Path, receiver: Receiver) -> None:
    # Its own emulator: moving the global clock would shift the shared one's other tests.
    process = make_emulator(tmp_path, receiver.url)
    process.start()
    try:
        addresses = {"api": process.url, "meter_events": process.url}
        v2_client = stripe.StripeClient("sk_test_x", base_addresses=addresses)
        session = v2_client.v2.billing.meter_event_session.create()
        stream = stripe.StripeClient(session.authentication_token, base_addresses=addresses)
        httpx.post(f"{process.url}/_emulator/advance", data={"seconds": 16 * 60})
        with pytest.raises(stripe.TemporarySessionExpiredError) as exc:
            stream.v2.billing.meter_event_stream.create(
                {"events": [{"event_name": "x", "payload": {"value": "1"}}]}
            )
        assert exc.value.code == "billing_meter_event_session_expired"
        assert exc.value.http_status == 401
    finally:
        process.stop()


def test_rejected_events_are_reported_by_a_thin_event(
    client: stripe.StripeClient, v2_client: stripe.StripeClient, receiver: Receiver, emulator: str
) -> None:
    name = unique("api_calls")
    meter = sum_meter(client, unique("Calls"), name)
    identifier = unique("bad")
    client.v1.billing.meter_events.create(
        params={
            "event_name": name,
            "identifier": identifier,
            "payload": {"stripe_customer_id": "cus_gone", "value": "3"},
        }
    )
    response = httpx.post(f"{emulator}/_emulator/meters/{meter.id}/error_report")
    assert response.status_code == 200

    body, signature = thin_notification(
        receiver, "v1.billing.meter.error_report_triggered", meter.id
    )
    notification = v2_client.parse_event_notification(body, signature, WEBHOOK_SECRET)
    assert notification.type == "v1.billing.meter.error_report_triggered"
    assert notification.related_object.id == meter.id
    assert notification.related_object.url == f"/v1/billing/meters/{meter.id}"
    assert notification.livemode is False

    event = notification.fetch_event()
    assert event.object == "v2.core.event"
    data = event.data
    assert data.reason.error_count == 1
    error_type = data.reason.error_types[0]
    assert error_type.code == "meter_event_customer_not_found"
    assert error_type.sample_errors[0].request.identifier == identifier
    assert data.validation_start <= data.validation_end
    fetched_meter = notification.fetch_related_object()
    assert fetched_meter.id == meter.id

    # Nothing left to report: the helper says so.
    assert httpx.post(f"{emulator}/_emulator/meters/{meter.id}/error_report").status_code == 400
