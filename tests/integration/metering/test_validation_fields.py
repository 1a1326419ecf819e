"""Every 422 names the field at fault, also when Litestar's body decoding finds it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.metering.conftest import create_customer

RESERVATION = {"external_customer_id": "cus_1", "code": "ai_requests", "transaction_id": "r1"}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/reservations", {"reservation": RESERVATION}, "reservation.amount"),
        (
            "/api/v1/customers/cus_1/credits",
            {"code": "ai_requests", "amount": 3},
            "transaction_id",
        ),
        (
            "/api/v1/events",
            {"event": {"transaction_id": 5, "external_customer_id": "cus_1", "code": "x"}},
            "event.transaction_id",
        ),
        (
            "/api/v1/events",
            {"event": {"transaction_id": "t", "code": "ai_requests", "properties": [1]}},
            "event.properties",
        ),
        ("/api/v1/events/batch", {"events": [{"transaction_id": "t"}, 3]}, "events[1]"),
        ("/api/v1/customers", {"customer": {"name": "Ada"}}, "customer.external_id"),
        ("/api/v1/reservations/any/commit", [1], "body"),
    ],
)
async def test_decoding_errors_name_the_field(api, path: str, body: Any, field: str) -> None:
    await create_customer(api)
    response = await api.post(path, json=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["error"] == "validation_error"
    assert problem["field"] == field, problem
    assert problem["fields"][0]["source"] == "body"


async def test_undecodable_json_names_the_body(api) -> None:
    response = await api.post(
        "/api/v1/events", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["field"] == "body"


async def test_the_service_own_checks_keep_their_field(api) -> None:
    await create_customer(api)
    response = await api.post(
        "/api/v1/reservations", json={"reservation": {**RESERVATION, "amount": "5"}}
    )
    assert response.status_code == 422
    assert response.json() == {
        "error": "validation_error",
        "message": response.json()["message"],
        "field": "amount",
    }
