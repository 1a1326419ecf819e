"""Export my data (issue 19, item 4): /account/export.json and the CSVs, streamed."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.catalog.models import Catalog
from app.db.engine import create_session_factory
from app.privacy import export
from app.privacy.export import DataExport
from tests.factories import UserRef, log_in, make_user
from tests.integration.billing.conftest import add_invoice, api, grant, record

__all__ = ["api"]  # the fixture


@pytest.fixture
async def ada(
    client: AsyncTestClient[Litestar], session: AsyncSession, catalog: Catalog
) -> AsyncIterator[UserRef]:
    user = await make_user(session, catalog, name="Ada Lovelace")
    await session.rollback()
    await log_in(client, user.id)
    yield user


async def test_the_json_export_holds_profile_usage_invoices_and_ledger(
    client: AsyncTestClient[Litestar],
    api: AsyncTestClient[Litestar],
    session: AsyncSession,
    catalog: Catalog,
    ada: UserRef,
) -> None:
    await record(api, ada.external_id, count=3)
    await grant(api, ada.external_id, 50)
    await add_invoice(session, ada.customer_id, 1, total=1900, amount_paid=1900, status="paid")
    other = await make_user(session, catalog)  # someone else's rows stay out
    await record(api, other.external_id, count=2)

    response = await client.get("/account/export.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert "attachment" in response.headers["content-disposition"]
    assert response.headers["cache-control"] == "no-store"
    data = json.loads(response.content)
    profile = data["profile"]
    assert (profile["email"], profile["name"], profile["two_factor"]) == (
        ada.email,
        "Ada Lovelace",
        False,
    )
    assert [a["account"] for a in profile["billing_accounts"]] == [ada.external_id]
    assert profile["billing_accounts"][0]["plan"]
    assert data["usage_per_day"] == [
        {
            "account": ada.external_id,
            "meter": "ai_requests",
            "day": data["usage_per_day"][0]["day"],
            "amount": 3,
        }
    ]
    [invoice] = data["invoices"]
    assert (invoice["total"], invoice["amount_paid"], invoice["status"]) == (1900, 1900, "paid")
    assert invoice["currency"]
    kinds = [(e["kind"], e["amount"]) for e in data["credit_ledger"]]
    assert ("grant", 50) in kinds
    assert all(e["account"] == ada.external_id for e in data["credit_ledger"])


async def test_the_csv_exports(
    client: AsyncTestClient[Litestar],
    api: AsyncTestClient[Litestar],
    session: AsyncSession,
    ada: UserRef,
) -> None:
    await record(api, ada.external_id, count=2)
    await add_invoice(session, ada.customer_id, 1, total=500)

    def rows(response_text: str) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(response_text)))

    profile = await client.get("/account/export/profile.csv")
    assert profile.status_code == 200
    assert profile.headers["content-type"].startswith("text/csv")
    assert rows(profile.text)[0]["email"] == ada.email
    usage = rows((await client.get("/account/export/usage.csv")).text)
    assert [(r["meter"], r["amount"]) for r in usage] == [("ai_requests", "2")]
    invoices = rows((await client.get("/account/export/invoices.csv")).text)
    assert [r["total"] for r in invoices] == ["500"]
    credits = await client.get("/account/export/credits.csv")
    assert credits.text.splitlines() == [",".join(export.CREDIT_COLUMNS)]
    assert (await client.get("/account/export/secrets.csv")).status_code == 404
    assert (await client.get("/account/export/usage.txt")).status_code == 404


async def test_export_needs_a_login(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/account/export.json", follow_redirects=False)
    assert response.status_code in (303, 401)


async def test_long_histories_are_read_a_page_at_a_time(
    client: AsyncTestClient[Litestar],
    api: AsyncTestClient[Litestar],
    session: AsyncSession,
    ada: UserRef,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With pages of 2 rows, 5 invoices and a usage day split in buckets all come out once."""
    monkeypatch.setattr(export, "PAGE", 2)
    for n in range(1, 6):
        await add_invoice(session, ada.customer_id, n, total=n * 100)
    await record(api, ada.external_id, count=1)
    await grant(api, ada.external_id, 5)
    await grant(api, ada.external_id, 7)
    await grant(api, ada.external_id, 9)
    chunks = []
    exporter = DataExport(create_session_factory(engine), client.app.state["catalog"])
    async for chunk in exporter.json_chunks(ada.id):
        chunks.append(chunk)
    assert len(chunks) > 6  # written as read
    data = json.loads(b"".join(chunks))
    assert [i["total"] for i in data["invoices"]] == [100, 200, 300, 400, 500]
    grants = sorted(e["amount"] for e in data["credit_ledger"] if e["kind"] == "grant")
    assert grants == [5, 7, 9]
