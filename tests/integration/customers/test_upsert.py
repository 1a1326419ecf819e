"""The customer upsert is a write transaction from its first read."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Catalog
from app.customers.repository import CustomerRepository
from app.customers.service import CustomerInput, CustomerService


async def test_a_write_committed_elsewhere_mid_upsert_does_not_fail_it(
    session: AsyncSession, catalog: Catalog, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's snapshot rule; PostgreSQL takes row locks")
    path = database_url.split("///", 1)[1]
    original = CustomerRepository.by_external_id
    attempts: list[str] = []

    async def read_then_someone_writes(self: CustomerRepository, external_id: str):
        found = await original(self, external_id)
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:  # another connection (the metering writer, say) commits right now
            other.execute("UPDATE api_keys SET name = name")
            attempts.append("committed")
        except sqlite3.OperationalError:
            attempts.append("locked out")  # the upsert already holds the write lock
        finally:
            other.close()
        return found

    monkeypatch.setattr(CustomerRepository, "by_external_id", read_then_someone_writes)
    customer, subscription = await CustomerService(session, catalog).upsert(
        CustomerInput(external_id="racer", email="racer@example.com")
    )

    assert customer.external_id == "racer" and subscription.plan_slug == catalog.default_plan.slug
    assert attempts == ["locked out"]
