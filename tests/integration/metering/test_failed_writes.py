"""A 5xx from a write endpoint means nothing of that request was committed, and a batch item
that cannot be written is a rejected item of a 200, never a 5xx for a partly written batch.
The failure is forced inside the write transaction, after some of its rows were written."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.customers.models import Customer
from app.customers.repository import CustomerRepository
from app.metering import batch_repository as repo
from app.metering import unlocked
from app.metering.models import (
    CreditGrant,
    CreditLedgerEntry,
    Reservation,
    UsageDay,
    UsageEvent,
    UsageTotal,
)
from tests.integration.metering.conftest import balance, create_customer, event

MODELS = (UsageEvent, UsageDay, CreditGrant, CreditLedgerEntry, Reservation, Customer)


class Boom(RuntimeError):
    pass


async def counts(session: AsyncSession) -> dict[str, int]:
    await session.rollback()
    return {
        m.__name__: int(await session.scalar(select(func.count()).select_from(m)) or 0)
        for m in MODELS
    }


async def used(session: AsyncSession) -> int:
    await session.rollback()
    return int(await session.scalar(select(func.coalesce(func.sum(UsageTotal.used), 0))) or 0)


def fail_after(monkeypatch: pytest.MonkeyPatch, name: str, when=lambda args: True) -> None:
    """Make the writer's `batch_repository.<name>` raise after doing its work (rows are
    written, then the write fails)."""
    original = getattr(repo, name)

    def failing(conn: Any, *args: Any) -> Any:
        result = original(conn, *args)
        if when(args):
            raise Boom(f"forced failure in {name}")
        return result

    monkeypatch.setattr(repo, name, failing)


def fail_usage_write(monkeypatch: pytest.MonkeyPatch, when=lambda args: True) -> None:
    """Make a batch's usage write fail: inside its transaction after writing (`write_usage`),
    or, for a batch written without locks (PostgreSQL, one statement in a transaction of its
    own: committed whole or not at all), before its statement runs."""
    fail_after(monkeypatch, "write_usage", when)
    original = unlocked.write_usage

    async def failing(conn: Any, *args: Any) -> Any:
        if when(args):
            raise Boom("forced failure in unlocked.write_usage")
        return await original(conn, *args)

    monkeypatch.setattr(unlocked, "write_usage", failing)


def batch(*txs: str) -> dict[str, Any]:
    return {"events": [event(tx)["event"] for tx in txs]}


async def test_a_batch_item_that_cannot_be_written_is_rejected_the_rest_kept(
    api, session, monkeypatch
):
    await create_customer(api)
    fail_usage_write(
        monkeypatch, lambda args: any(row.transaction_id == "poison" for row in args[0])
    )
    body = batch("b1", "b2", "poison", "b3")

    for _attempt in range(2):  # a retry: the same outcomes, the written ones replayed
        response = await api.post("/api/v1/events/batch", json=body)
        assert response.status_code == 200, response.text
        outcomes = response.json()["events"]
        assert [o["status"] for o in outcomes] == ["accepted", "accepted", "rejected", "accepted"]
        assert outcomes[2]["transaction_id"] == "poison"
        assert outcomes[2]["error"] == "internal_error" and outcomes[2]["message"]
        assert (response.json()["accepted"], response.json()["rejected"]) == (3, 1)
    assert (await counts(session))["UsageEvent"] == 3
    assert (await balance(api, "ai_requests"))["used"] == 3


@pytest.mark.parametrize("failing", ["write_usage", "insert_outbox"])
async def test_a_failed_batch_commits_nothing(api, session, monkeypatch, failing):
    await create_customer(api)
    before, used_before = await counts(session), await used(session)
    if failing == "write_usage":
        fail_usage_write(monkeypatch)
    else:
        fail_after(monkeypatch, failing)

    response = await api.post("/api/v1/events/batch", json=batch("f1", "f2", "f3"))

    assert response.status_code == 500, response.text
    assert response.json()["error"] == "internal_error"
    assert await counts(session) == before
    assert await used(session) == used_before


async def test_a_failed_event_commits_nothing(api, session, monkeypatch):
    await create_customer(api)
    before = await counts(session)
    fail_usage_write(monkeypatch)
    response = await api.post("/api/v1/events", json=event("e1"))
    assert response.status_code == 500, response.text
    assert await counts(session) == before and await used(session) == 0


async def test_a_failed_reservation_commits_nothing(api, session, monkeypatch):
    await create_customer(api)
    before = await counts(session)
    fail_after(monkeypatch, "insert_reservations")
    body = {
        "reservation": {
            "external_customer_id": "cus_1",
            "code": "ai_requests",
            "amount": 2,
            "transaction_id": "r1",
        }
    }
    response = await api.post("/api/v1/reservations", json=body)
    assert response.status_code == 500, response.text
    assert await counts(session) == before


async def test_a_failed_commit_of_a_hold_commits_nothing(api, session, monkeypatch):
    await create_customer(api)
    body = {
        "reservation": {
            "external_customer_id": "cus_1",
            "code": "ai_requests",
            "amount": 2,
            "transaction_id": "r1",
        }
    }
    hold = (await api.post("/api/v1/reservations", json=body)).json()["reservation"]
    before = await counts(session)
    fail_after(monkeypatch, "update_reservation")
    response = await api.post(f"/api/v1/reservations/{hold['id']}/commit")
    assert response.status_code == 500, response.text
    assert await counts(session) == before and await used(session) == 0
    await session.rollback()
    assert await session.scalar(select(Reservation.status)) == "held"


async def test_failed_credits_commit_nothing(api, session, monkeypatch):
    await create_customer(api)
    before = await counts(session)
    fail_after(monkeypatch, "insert_ledger")
    response = await api.post(
        "/api/v1/customers/cus_1/credits",
        json={"code": "ai_requests", "amount": 5, "transaction_id": "g1"},
    )
    assert response.status_code == 500, response.text
    assert await counts(session) == before


async def test_a_failed_customer_upsert_commits_nothing(api, session, monkeypatch):
    before = await counts(session)
    original = CustomerRepository.add

    def failing(self: CustomerRepository, instance: Any) -> None:
        if not isinstance(instance, Customer):  # the customer row is flushed already
            raise Boom("forced failure adding the subscription")
        original(self, instance)

    monkeypatch.setattr(CustomerRepository, "add", failing)
    response = await api.post("/api/v1/customers", json={"customer": {"external_id": "new_1"}})
    assert response.status_code == 500, response.text
    assert await counts(session) == before
