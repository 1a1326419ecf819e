"""Amounts (and ttl_seconds) are JSON integers: a string, a float or a boolean is a 422 naming
the field, never converted (Litestar converts request bodies leniently: "5" would become 5)."""

from __future__ import annotations

import pytest

from app.metering.service import MAX_AMOUNT, MAX_TTL
from tests.integration.metering.conftest import balance, create_customer

NOT_INTEGERS = ["5", 5.0, True, "five", None]


def reservation(**fields) -> dict:
    body = {"external_customer_id": "cus_1", "code": "tokens", "amount": 5, "transaction_id": "r"}
    return {"reservation": {**body, **fields}}


async def assert_422_naming(response, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["field"] == field
    assert body["message"].startswith(field)


@pytest.mark.parametrize("amount", NOT_INTEGERS)
async def test_check(api, amount):
    await create_customer(api)
    response = await api.post(
        "/api/v1/customers/cus_1/check", json={"code": "ai_requests", "amount": amount}
    )
    await assert_422_naming(response, "amount")


@pytest.mark.parametrize("amount", NOT_INTEGERS)
async def test_credits(api, amount):
    await create_customer(api)
    response = await api.post(
        "/api/v1/customers/cus_1/credits",
        json={"code": "ai_requests", "amount": amount, "transaction_id": "g"},
    )
    await assert_422_naming(response, "amount")
    assert (await balance(api, "ai_requests"))["credits"] == 0


@pytest.mark.parametrize("amount", NOT_INTEGERS)
async def test_reservation(api, amount):
    await create_customer(api)
    response = await api.post("/api/v1/reservations", json=reservation(amount=amount))
    await assert_422_naming(response, "amount")
    assert (await balance(api, "tokens"))["reserved"] == 0


@pytest.mark.parametrize("ttl", ["60", 60.0, True])
async def test_reservation_ttl(api, ttl):
    await create_customer(api)
    response = await api.post("/api/v1/reservations", json=reservation(ttl_seconds=ttl))
    await assert_422_naming(response, "ttl_seconds")
    assert (await balance(api, "tokens"))["reserved"] == 0


@pytest.mark.parametrize("amount", ["5", 5.0, True])
async def test_commit(api, amount):
    await create_customer(api)
    held = await api.post("/api/v1/reservations", json=reservation())
    assert held.status_code == 201, held.text
    reservation_id = held.json()["reservation"]["id"]
    response = await api.post(
        f"/api/v1/reservations/{reservation_id}/commit", json={"amount": amount}
    )
    await assert_422_naming(response, "amount")
    b = await balance(api, "tokens")
    assert b["used"] == 0 and b["reserved"] == 5


async def test_integers_and_defaults_still_work(api):
    await create_customer(api)
    check = await api.post("/api/v1/customers/cus_1/check", json={"code": "ai_requests"})
    assert check.status_code == 200 and check.json()["required"] == 1
    held = await api.post("/api/v1/reservations", json=reservation(ttl_seconds=60))
    assert held.status_code == 201, held.text
    reservation_id = held.json()["reservation"]["id"]
    committed = await api.post(f"/api/v1/reservations/{reservation_id}/commit", json={})
    assert committed.json()["reservation"]["committed_amount"] == 5
    granted = await api.post(
        "/api/v1/customers/cus_1/credits",
        json={"code": "ai_requests", "amount": 3, "transaction_id": "g"},
    )
    assert granted.status_code == 200 and granted.json()["credit_grant"]["amount"] == 3


async def test_openapi_still_describes_them_as_integers(client):
    """As integers in the ranges the service accepts (`_positive`, ttl_seconds)."""
    schemas = (await client.get("/schema/openapi.json")).json()["components"]["schemas"]
    amount = {"type": "integer", "minimum": 1, "maximum": MAX_AMOUNT}
    amount_or_zero = {**amount, "minimum": 0}
    assert schemas["CheckIn"]["properties"]["amount"] == {**amount_or_zero, "default": 1}
    assert schemas["CreditsIn"]["properties"]["amount"] == amount
    assert schemas["ReservationIn"]["properties"]["amount"] == amount
    assert schemas["ReservationIn"]["properties"]["ttl_seconds"] == {
        "oneOf": [{"type": "integer", "minimum": 1, "maximum": MAX_TTL}, {"type": "null"}]
    }
    assert schemas["CommitIn"]["properties"]["amount"] == {
        "oneOf": [amount_or_zero, {"type": "null"}]
    }
    assert "amount" in schemas["ReservationIn"]["required"]
