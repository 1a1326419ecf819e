"""Text the database cannot store is a 422 naming the field, on SQLite and PostgreSQL alike:
a NUL character (U+0000) anywhere in a body or a path, or a string longer than its column.
Nothing of such a request is stored (PostgreSQL refused a NUL only after the other events of
a batch were written)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.customers.models import Customer
from app.metering.models import CreditGrant, Reservation, UsageEvent
from tests.integration.metering.conftest import create_customer

NUL = "\x00"


def item(tx: str, **extra: Any) -> dict[str, Any]:
    return {"transaction_id": tx, "external_customer_id": "cus_1", "code": "ai_requests", **extra}


async def count(session: AsyncSession, model: type) -> int:
    await session.rollback()
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def batch_with(bad: dict[str, Any], at: int = 3, size: int = 100) -> dict[str, Any]:
    events = [item(f"ok-{n}") for n in range(size)]
    events[at] = bad
    return {"events": events}


BODIES = [
    # (path, body, field)
    ("/api/v1/events", {"event": item(f"a{NUL}b")}, "event.transaction_id"),
    ("/api/v1/events", {"event": item("t" * 256)}, "event.transaction_id"),
    ("/api/v1/events", {"event": item("t", code=f"ai{NUL}")}, "event.code"),
    ("/api/v1/events", {"event": item("t", code="c" * 65)}, "event.code"),
    (
        "/api/v1/events",
        {"event": item("t", external_customer_id=f"cus{NUL}")},
        "event.external_customer_id",
    ),
    (
        "/api/v1/events",
        {"event": item("t", external_customer_id="c" * 256)},
        "event.external_customer_id",
    ),
    (
        "/api/v1/events",
        {"event": item("t", external_subscription_id=f"s{NUL}")},
        "event.external_subscription_id",
    ),
    ("/api/v1/events", {"event": item("t", properties={"k": f"v{NUL}"})}, "event.properties.k"),
    (
        "/api/v1/events",
        {"event": item("t", properties={"a": [{"b": ["x", f"{NUL}"]}]})},
        "event.properties.a[0].b[1]",
    ),
    (
        "/api/v1/events",
        {"event": item("t", properties={f"k{NUL}": 1})},
        "event.properties.k\\u0000",
    ),
    (
        "/api/v1/events",
        {"event": item("t", timestamp=f"2026-01-01T00:00:00Z{NUL}")},
        "event.timestamp",
    ),
    ("/api/v1/events/batch", batch_with(item(f"bad{NUL}")), "events[3].transaction_id"),
    ("/api/v1/events/batch", batch_with(item("t" * 256)), "events[3].transaction_id"),
    (
        "/api/v1/events/batch",
        batch_with(item("x", properties={"p": {"q": NUL}})),
        "events[3].properties.p.q",
    ),
    (
        "/api/v1/reservations",
        {"reservation": {**item(f"r{NUL}"), "amount": 1}},
        "reservation.transaction_id",
    ),
    (
        "/api/v1/reservations",
        {"reservation": {**item("r", external_customer_id=f"c{NUL}"), "amount": 1}},
        "reservation.external_customer_id",
    ),
    (
        "/api/v1/reservations",
        {"reservation": {**item("r" * 256), "amount": 1}},
        "reservation.transaction_id",
    ),
    (
        "/api/v1/customers/cus_1/credits",
        {"code": "ai_requests", "amount": 1, "transaction_id": f"g{NUL}"},
        "transaction_id",
    ),
    (
        "/api/v1/customers/cus_1/credits",
        {"code": "ai_requests", "amount": 1, "transaction_id": "g", "reason": f"r{NUL}"},
        "reason",
    ),
    (
        "/api/v1/customers/cus_1/credits",
        {"code": "ai_requests", "amount": 1, "transaction_id": "g", "reason": "r" * 501},
        "reason",
    ),
    ("/api/v1/customers/cus_1/check", {"code": f"ai{NUL}", "amount": 1}, "code"),
    ("/api/v1/customers", {"customer": {"external_id": f"c{NUL}"}}, "customer.external_id"),
    ("/api/v1/customers", {"customer": {"external_id": "c2", "name": f"A{NUL}"}}, "customer.name"),
    ("/api/v1/customers", {"customer": {"external_id": "c2", "name": "A" * 256}}, "customer.name"),
    (
        "/api/v1/customers",
        {"customer": {"external_id": "c2", "email": f"a{NUL}@example.com"}},
        "customer.email",
    ),
    (
        "/api/v1/customers",
        {"customer": {"external_id": "c2", "plan": f"pro{NUL}"}},
        "customer.plan",
    ),
    ("/api/v1/customers", {"customer": {"external_id": "c" * 256}}, "customer.external_id"),
    ("/api/v1/reservations/any/commit", {"amount": 1, "note": f"{NUL}"}, "note"),
]


@pytest.mark.parametrize(("path", "body", "field"), BODIES)
async def test_unstorable_text_is_422_naming_the_field(api, session, path, body, field):
    await create_customer(api)
    before = [await count(session, m) for m in (UsageEvent, Reservation, CreditGrant, Customer)]

    response = await api.post(path, json=body)

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["error"] == "validation_error", problem
    assert problem["field"] == field, problem
    assert problem["message"]
    after = [await count(session, m) for m in (UsageEvent, Reservation, CreditGrant, Customer)]
    assert after == before


PATHS = [
    ("get", "/api/v1/customers/{}"),
    ("get", "/api/v1/customers/{}/balances"),
    ("get", "/api/v1/customers/{}/portal_url"),
    ("post", "/api/v1/customers/{}/check"),
    ("post", "/api/v1/customers/{}/credits"),
    ("post", "/api/v1/reservations/{}/commit"),
    ("post", "/api/v1/reservations/{}/release"),
]


@pytest.mark.parametrize(("method", "template"), PATHS)
@pytest.mark.parametrize("value", [f"cus{NUL}1", "c" * 256])
async def test_unstorable_path_parameters_are_422(api, method, template, value):
    await create_customer(api)
    body = {"code": "ai_requests", "amount": 1, "transaction_id": "g"}
    url = template.format(quote(value, safe=""))
    response = await (api.get(url) if method == "get" else api.post(url, json=body))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["error"] == "validation_error"
    assert problem["field"] in ("external_id", "reservation_id"), problem


async def test_a_batch_with_one_nul_item_stores_nothing_and_says_which(api, session):
    await create_customer(api)
    body = batch_with(item(f"bad{NUL}"), at=99)
    for _ in range(2):  # the same answer on a retry
        response = await api.post("/api/v1/events/batch", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["field"] == "events[99].transaction_id"
    assert await count(session, UsageEvent) == 0
    response = await api.post("/api/v1/events/batch", json=batch_with(item("fixed"), at=99))
    assert response.status_code == 200, response.text
    assert response.json()["events"][99]["transaction_id"] == "fixed"


async def test_a_literal_backslash_u0000_is_ordinary_text(api):
    """The raw body holds `\\u0000` here, but the value is a backslash and five characters."""
    await create_customer(api)
    response = await api.post("/api/v1/events", json={"event": item("t\\u0000")})
    assert response.status_code == 200, response.text
    assert response.json()["event"]["transaction_id"] == "t\\u0000"
