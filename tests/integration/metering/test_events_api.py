"""The usage API: idempotency, errors, balances, checks, credits and reservations."""

from __future__ import annotations

import pytest

from tests.integration.metering.conftest import balance, create_customer, event


async def test_customer_upsert_and_read(api):
    created = await create_customer(api, "cus_1")
    assert created["external_id"] == "cus_1" and created["plan"] == "free"
    again = await api.post(
        "/api/v1/customers", json={"customer": {"external_id": "cus_1", "name": "Grace"}}
    )
    assert again.json()["customer"]["lago_id"] == created["lago_id"]
    read = await api.get("/api/v1/customers/cus_1")
    assert read.json()["customer"]["name"] == "Grace"
    assert read.json()["customer"]["subscription"]["external_id"] == "cus_1"


async def test_unknown_plan_is_422(api):
    response = await api.post(
        "/api/v1/customers", json={"customer": {"external_id": "c", "plan": "gold"}}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "unknown_plan"


async def test_same_event_three_times_counts_once(api):
    await create_customer(api)
    responses = [await api.post("/api/v1/events", json=event("tx-1")) for _ in range(3)]
    assert {r.status_code for r in responses} == {200}
    bodies = [r.json() for r in responses]
    assert bodies[0] == bodies[1] == bodies[2]
    assert bodies[0]["event"]["transaction_id"] == "tx-1"
    assert (await balance(api, "ai_requests"))["used"] == 1


async def test_changed_payload_under_same_id_is_409(api):
    await create_customer(api)
    assert (
        await api.post("/api/v1/events", json=event("tx-1", "tokens", tokens=10))
    ).status_code == 200
    response = await api.post("/api/v1/events", json=event("tx-1", "tokens", tokens=11))
    assert response.status_code == 409
    assert response.json()["error"] == "idempotency_conflict"
    assert (await balance(api, "tokens"))["used"] == 10


async def test_sum_meter_uses_the_field(api):
    await create_customer(api)
    await api.post("/api/v1/events", json=event("t1", "tokens", tokens=1500))
    await api.post("/api/v1/events", json=event("t2", "tokens", tokens=500))
    b = await balance(api, "tokens")
    assert b["used"] == 2000 and b["limit"] == 100_000 and b["available"] == 98_000
    assert b["percentage"] == 2.0


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (event("t", customer="nobody"), 404, "customer_not_found"),
        (event("t", code="nope"), 404, "meter_not_found"),
        (event("", code="ai_requests"), 422, "validation_error"),
        (event("t", "tokens"), 422, "validation_error"),
        (event("t", "tokens", tokens=-1), 422, "validation_error"),
        (event("t", "tokens", tokens="12"), 422, "validation_error"),
        ({"event": {"transaction_id": "t", "code": "ai_requests"}}, 422, "validation_error"),
        ({"nothing": 1}, 422, "validation_error"),
        ({"event": {**event("t")["event"], "timestamp": "yesterday"}}, 422, "validation_error"),
    ],
)
async def test_bad_events_get_clear_errors_and_write_nothing(api, body, status, error):
    await create_customer(api)
    response = await api.post("/api/v1/events", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.json()["message"]
    assert (await balance(api, "ai_requests"))["used"] == 0
    assert (await balance(api, "tokens"))["used"] == 0


async def test_malformed_json_is_422(api):
    response = await api.post(
        "/api/v1/events", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"


@pytest.mark.parametrize("body", [b"null", b"[]", b"1"])
async def test_a_body_that_is_not_an_object_is_named_as_the_body(api, body):
    response = await api.post(
        "/api/v1/events", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["message"].startswith("Invalid body: Expected `object`"), problem
    assert problem["fields"][0]["key"] == "body"


async def test_api_requires_a_valid_key(api):
    for headers in ({"Authorization": "Bearer wrong"}, {"Authorization": ""}):
        response = await api.get("/api/v1/customers/cus_1", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"


async def test_quota_exhausted_is_402_with_the_numbers(api):
    await create_customer(api)
    for i in range(20):
        assert (await api.post("/api/v1/events", json=event(f"t{i}"))).status_code == 200
    response = await api.post("/api/v1/events", json=event("t-over"))
    assert response.status_code == 402
    body = response.json()
    assert body["error"] == "insufficient_balance"
    assert body["meter"] == "ai_requests"
    assert body["available"] == 0 and body["required"] == 1
    assert body["upgrade_url"].endswith("/billing/upgrade")
    # The rejected event is not stored: after buying credits the same id can go through.
    await api.post(
        "/api/v1/customers/cus_1/credits",
        json={"code": "ai_requests", "amount": 5, "transaction_id": "grant-1", "reason": "sorry"},
    )
    assert (await api.post("/api/v1/events", json=event("t-over"))).status_code == 200
    b = await balance(api, "ai_requests")
    assert b["used"] == 21 and b["credits_used"] == 1 and b["credits"] == 4 and b["available"] == 4


async def test_batch_keeps_good_events_when_one_is_bad(api):
    await create_customer(api)
    events = [event("b1")["event"], event("b2", code="nope")["event"], event("b3")["event"]]
    response = await api.post("/api/v1/events/batch", json={"events": events})
    assert response.status_code == 200
    outcomes = response.json()["events"]
    assert [o["status"] for o in outcomes] == ["accepted", "rejected", "accepted"]
    assert outcomes[1]["error"] == "meter_not_found"
    assert (await balance(api, "ai_requests"))["used"] == 2


async def test_batch_limits(api):
    await create_customer(api)
    too_many = [event(f"x{i}")["event"] for i in range(101)]
    assert (await api.post("/api/v1/events/batch", json={"events": too_many})).status_code == 422
    assert (await api.post("/api/v1/events/batch", json={"events": []})).status_code == 422


async def test_check_consumes_nothing(api):
    await create_customer(api)
    response = await api.post(
        "/api/v1/customers/cus_1/check", json={"code": "ai_requests", "amount": 20}
    )
    assert response.json()["allowed"] is True
    response = await api.post(
        "/api/v1/customers/cus_1/check", json={"code": "ai_requests", "amount": 21}
    )
    assert response.json()["allowed"] is False
    assert response.json()["balance"]["available"] == 20
    assert (await balance(api, "ai_requests"))["used"] == 0


async def test_unlimited_meter(api):
    await create_customer(api, plan="business")
    for i in range(3):
        await api.post("/api/v1/events", json=event(f"u{i}"))
    b = await balance(api, "ai_requests")
    assert b["limit"] is None and b["available"] is None and b["percentage"] is None
    assert b["used"] == 3


async def test_credit_grant_is_idempotent(api):
    await create_customer(api)
    body = {"code": "ai_requests", "amount": 50, "transaction_id": "g1", "reason": "promo"}
    first = await api.post("/api/v1/customers/cus_1/credits", json=body)
    second = await api.post("/api/v1/customers/cus_1/credits", json=body)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    conflict = await api.post("/api/v1/customers/cus_1/credits", json={**body, "amount": 51})
    assert conflict.status_code == 409
    assert (await balance(api, "ai_requests"))["credits"] == 50


async def test_reservation_commit_smaller_amount(api):
    await create_customer(api)
    response = await api.post(
        "/api/v1/reservations",
        json={
            "reservation": {
                "external_customer_id": "cus_1",
                "code": "tokens",
                "amount": 60_000,
                "transaction_id": "job-1",
            }
        },
    )
    assert response.status_code == 201, response.text
    reservation = response.json()["reservation"]
    assert reservation["status"] == "held"
    b = await balance(api, "tokens")
    assert b["available"] == 40_000 and b["reserved"] == 60_000
    # Another reservation that does not fit is refused.
    refused = await api.post(
        "/api/v1/reservations",
        json={
            "reservation": {
                "external_customer_id": "cus_1",
                "code": "tokens",
                "amount": 40_001,
                "transaction_id": "job-2",
            }
        },
    )
    assert refused.status_code == 402
    committed = await api.post(
        f"/api/v1/reservations/{reservation['id']}/commit", json={"amount": 45_000}
    )
    assert committed.status_code == 200, committed.text
    assert committed.json()["reservation"]["status"] == "committed"
    assert committed.json()["reservation"]["event"]["transaction_id"] == "job-1"
    b = await balance(api, "tokens")
    assert b["used"] == 45_000 and b["reserved"] == 0 and b["available"] == 55_000
    again = await api.post(
        f"/api/v1/reservations/{reservation['id']}/commit", json={"amount": 45_000}
    )
    assert again.status_code == 200
    # No amount means the whole hold (60,000): not what was committed, so not a retry.
    for whole in ({}, None):
        other = await api.post(f"/api/v1/reservations/{reservation['id']}/commit", json=whole)
        assert other.status_code == 409, other.text
        assert other.json()["error"] == "reservation_committed"
    assert (await api.post(f"/api/v1/reservations/{reservation['id']}/release")).status_code == 409
    assert (await balance(api, "tokens"))["used"] == 45_000


async def test_reservation_commit_more_than_reserved_is_422(api):
    await create_customer(api)
    r = (
        await api.post(
            "/api/v1/reservations",
            json={
                "reservation": {
                    "external_customer_id": "cus_1",
                    "code": "tokens",
                    "amount": 10,
                    "transaction_id": "j",
                }
            },
        )
    ).json()["reservation"]
    response = await api.post(f"/api/v1/reservations/{r['id']}/commit", json={"amount": 11})
    assert response.status_code == 422


async def test_reservation_release_frees_the_hold(api):
    await create_customer(api)
    r = (
        await api.post(
            "/api/v1/reservations",
            json={
                "reservation": {
                    "external_customer_id": "cus_1",
                    "code": "ai_requests",
                    "amount": 20,
                    "transaction_id": "j",
                }
            },
        )
    ).json()["reservation"]
    assert (await api.post("/api/v1/events", json=event("blocked"))).status_code == 402
    released = await api.post(f"/api/v1/reservations/{r['id']}/release")
    assert released.json()["reservation"]["status"] == "released"
    assert (await api.post("/api/v1/events", json=event("blocked"))).status_code == 200
    missing = await api.post("/api/v1/reservations/nope/commit")
    assert missing.status_code == 404


async def test_openapi_describes_the_api(client):
    schema = (await client.get("/schema/openapi.json")).json()
    for path in [
        "/api/v1/events",
        "/api/v1/events/batch",
        "/api/v1/customers",
        "/api/v1/customers/{external_id}/balances",
        "/api/v1/customers/{external_id}/check",
        "/api/v1/reservations",
        "/api/v1/reservations/{reservation_id}/commit",
        "/api/v1/customers/{external_id}/credits",
    ]:
        assert path in schema["paths"], path
    # The hot paths send pre-encoded JSON; their bodies are still described.
    documented = {
        ("/api/v1/events", "post"): "EventResponse",
        ("/api/v1/events/batch", "post"): "BatchResponse",
        ("/api/v1/customers/{external_id}/balances", "get"): "BalancesOut",
    }
    for (path, method), name in documented.items():
        body = schema["paths"][path][method]["responses"]["200"]["content"]["application/json"]
        assert body["schema"] == {"$ref": f"#/components/schemas/{name}"}, path
    balance = schema["components"]["schemas"]["BalanceOut"]["properties"]
    assert {"limit", "used", "credits", "available", "percentage", "period_end"} <= set(balance)


async def test_write_requests_are_counted_on_their_way_to_the_writer(api, monkeypatch):
    """Each usage write is expected by the writer (app.metering.arrivals) until it arrives or
    fails; reads are not, and nothing stays counted."""
    from app.metering.arrivals import ARRIVALS

    counted: list[int] = []
    expect = ARRIVALS.expect

    def spy():
        counted.append(1)
        return expect()

    monkeypatch.setattr(ARRIVALS, "expect", spy)
    await create_customer(api)
    assert (await api.post("/api/v1/events", json=event("a"))).status_code == 200
    assert (await api.post("/api/v1/events", json={"event": {"code": "x"}})).status_code == 422
    batch = {"events": [event("b")["event"]]}
    assert (await api.post("/api/v1/events/batch", json=batch)).status_code == 200
    reservation = {
        "reservation": {
            "external_customer_id": "cus_1",
            "code": "ai_requests",
            "amount": 1,
            "transaction_id": "r",
        }
    }
    held = await api.post("/api/v1/reservations", json=reservation)
    assert held.status_code == 201
    reservation_id = held.json()["reservation"]["id"]
    assert (await api.post(f"/api/v1/reservations/{reservation_id}/release")).status_code == 200
    assert (await api.post("/api/v1/reservations/nope/commit")).status_code == 404
    credits = {"code": "ai_requests", "amount": 5, "transaction_id": "g", "reason": "test"}
    assert (await api.post("/api/v1/customers/cus_1/credits", json=credits)).status_code == 200
    assert len(counted) == 7
    await balance(api, "ai_requests")
    check = await api.post("/api/v1/customers/cus_1/check", json={"code": "ai_requests"})
    assert check.status_code == 200
    assert len(counted) == 7
    assert ARRIVALS.pending == 0
