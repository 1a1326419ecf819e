"""An event naming both a customer and a subscription is counted only when the subscription
is that customer's: never against a customer the caller did not name."""

from __future__ import annotations

import pytest

from tests.integration.metering.conftest import balance, create_customer


def both_ids(tx: str, customer: str, subscription: str) -> dict:
    return {
        "transaction_id": tx,
        "external_customer_id": customer,
        "external_subscription_id": subscription,
        "code": "ai_requests",
    }


@pytest.fixture
async def two_customers(api) -> None:
    await create_customer(api, "acme-1")
    await create_customer(api, "user_1")  # its subscription's external_id is "user_1"


async def test_a_subscription_of_another_customer_is_422_and_counts_nothing(api, two_customers):
    response = await api.post("/api/v1/events", json={"event": both_ids("t1", "acme-1", "user_1")})

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["field"] == "external_customer_id"
    assert "'user_1'" in body["message"] and "'acme-1'" in body["message"]
    assert (await balance(api, "ai_requests", "acme-1"))["used"] == 0
    assert (await balance(api, "ai_requests", "user_1"))["used"] == 0
    # Nothing was stored: the same transaction_id is free for the right ids.
    fixed = await api.post("/api/v1/events", json={"event": both_ids("t1", "user_1", "user_1")})
    assert fixed.status_code == 200, fixed.text


async def test_matching_ids_are_counted_and_retries_get_the_first_answer(api, two_customers):
    first = await api.post("/api/v1/events", json={"event": both_ids("t1", "user_1", "user_1")})
    assert first.status_code == 200, first.text
    assert first.json()["event"]["external_customer_id"] == "user_1"
    again = await api.post("/api/v1/events", json={"event": both_ids("t1", "user_1", "user_1")})
    # The subscription alone is the same request (the idempotency fingerprint is unchanged).
    alone = {"transaction_id": "t1", "external_subscription_id": "user_1", "code": "ai_requests"}
    by_subscription = await api.post("/api/v1/events", json={"event": alone})
    assert again.status_code == by_subscription.status_code == 200
    assert again.json() == by_subscription.json() == first.json()
    assert (await balance(api, "ai_requests", "user_1"))["used"] == 1


async def test_a_batch_rejects_only_the_mismatched_event(api, two_customers):
    events = [
        both_ids("b1", "acme-1", "acme-1"),
        both_ids("b2", "acme-1", "user_1"),
        {"transaction_id": "b3", "external_customer_id": "acme-1", "code": "ai_requests"},
    ]
    response = await api.post("/api/v1/events/batch", json={"events": events})

    assert response.status_code == 200, response.text
    body = response.json()
    assert [o["status"] for o in body["events"]] == ["accepted", "rejected", "accepted"]
    rejected = body["events"][1]
    assert rejected["transaction_id"] == "b2"
    assert rejected["status_code"] == 422 and rejected["error"] == "validation_error"
    assert rejected["field"] == "external_customer_id"
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert (await balance(api, "ai_requests", "acme-1"))["used"] == 2
    assert (await balance(api, "ai_requests", "user_1"))["used"] == 0


async def test_an_event_stored_before_the_check_still_replays(api, two_customers):
    """Retries are safe: an event accepted before this check existed gets its first answer.
    Such an event is stored exactly as one sent with the subscription alone (the customer id
    is not part of the idempotency fingerprint when a subscription is given)."""
    alone = {"transaction_id": "old", "external_subscription_id": "user_1", "code": "ai_requests"}
    first = await api.post("/api/v1/events", json={"event": alone})
    assert first.status_code == 200, first.text

    retry = await api.post("/api/v1/events", json={"event": both_ids("old", "acme-1", "user_1")})

    assert retry.status_code == 200, retry.text
    assert retry.json() == first.json()
    assert (await balance(api, "ai_requests", "user_1"))["used"] == 1
    assert (await balance(api, "ai_requests", "acme-1"))["used"] == 0
    # A new event with the same mismatch is refused.
    new = await api.post("/api/v1/events", json={"event": both_ids("new", "acme-1", "user_1")})
    assert new.status_code == 422


async def test_an_unknown_subscription_is_still_404(api, two_customers):
    response = await api.post("/api/v1/events", json={"event": both_ids("t", "acme-1", "nope")})
    assert response.status_code == 404
    assert response.json()["error"] == "subscription_not_found"
