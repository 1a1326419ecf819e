"""The customers list: prefix search on email, name and external id; filters; sort; pages;
the htmx partial; and the search queries use the indexes (EXPLAIN on SQLite)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.repository import AdminRepository, CustomerQuery
from app.catalog.models import Catalog
from app.customers.models import Customer, Subscription
from app.lib.clock import utcnow
from tests.integration.admin.conftest import Admin, make_customer


async def seed(session: AsyncSession, n: int = 30) -> None:
    start = utcnow() - timedelta(days=100)
    for i in range(n):
        customer = Customer(
            public_id=str(uuid.uuid4()),
            external_id=f"acct_{i:03d}",
            email=f"{'Zed' if i == 7 else 'person'}{i:03d}@Corp.example",
            name="Marie Curie" if i == 11 else f"Person {i}",
            created_at=start + timedelta(days=i),
        )
        session.add(customer)
        await session.flush()
        session.add(
            Subscription(
                customer_id=customer.id,
                external_id=customer.external_id,
                plan_slug="pro" if i % 3 == 0 else "free",
                status="past_due" if i == 9 else "active",
            )
        )
    await session.commit()


def external_ids(html: str) -> list[str]:
    return re.findall(r'data-testid="customer-row-(acct_\d+)"', html)


async def test_search_filters_sort_and_pages(admin: Admin, session: AsyncSession) -> None:
    await seed(session)
    get = admin.client.get
    url = "/admin/billing/customers"
    assert external_ids((await get(url, params={"q": "zed0"})).text) == ["acct_007"]  # any case
    assert external_ids((await get(url, params={"q": "marie"})).text) == ["acct_011"]
    assert external_ids((await get(url, params={"q": "acct_02"})).text) == [
        f"acct_{i:03d}" for i in range(29, 19, -1)
    ]
    assert external_ids((await get(url, params={"q": "corp"})).text) == []  # prefix only
    assert external_ids((await get(url, params={"q": "per%"})).text) == []  # no wildcards
    assert external_ids((await get(url, params={"status": "past_due"})).text) == ["acct_009"]
    pro = external_ids((await get(url, params={"plan": "pro", "q": "acct"})).text)
    assert pro == [f"acct_{i:03d}" for i in range(27, -1, -3)]
    oldest = external_ids((await get(url, params={"sort": "oldest", "q": "acct"})).text)
    assert oldest[:2] == ["acct_000", "acct_001"] and len(oldest) == 25
    first = await get(url, params={"sort": "oldest", "q": "acct"})
    assert "30 customers" in first.text and "customer-rows-first" not in first.text
    next_url = _next_link(first.text)
    second = await get(next_url)
    assert external_ids(second.text) == [f"acct_{i:03d}" for i in range(25, 30)]
    assert "30 customers" in second.text  # the whole search's count, on every page
    assert "customer-rows-next" not in second.text and "customer-rows-first" in second.text


def _next_link(html: str) -> str:
    found = re.search(r'<a href="([^"]+)"[^>]*data-testid="customer-rows-next"', html)
    assert found, "no next page link"
    return found.group(1).replace("&amp;", "&")


@pytest.mark.parametrize("sort", ["newest", "oldest", "email"])
async def test_keyset_pages_show_every_customer_once(
    admin: Admin, session: AsyncSession, sort: str
) -> None:
    """Following the next links walks every match once, in order, whatever the sort; two
    customers with the same signup time are told apart by their id."""
    await seed(session, 60)
    await session.execute(
        update(Customer)
        .where(Customer.external_id.in_(["acct_030", "acct_031", "acct_032"]))
        .values(created_at=utcnow() - timedelta(days=5))
    )
    await session.execute(
        update(Customer).where(Customer.external_id == "acct_040").values(email=None)
    )
    await session.commit()
    seen: list[str] = []
    url = f"/admin/billing/customers?q=acct&sort={sort}"
    for _ in range(5):
        page = await admin.client.get(url)
        assert "60 customers" in page.text
        seen += external_ids(page.text)
        if "customer-rows-next" not in page.text:
            break
        url = _next_link(page.text)
    assert sorted(seen) == [f"acct_{i:03d}" for i in range(60)] and len(seen) == 60


async def test_counts_stop_at_the_cap(
    admin: Admin, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More matches than COUNT_CAP show as "COUNT_CAP+", and the pages still walk them all."""
    monkeypatch.setattr("app.admin.service.COUNT_CAP", 20)
    await seed(session, 30)
    page = await admin.client.get("/admin/billing/customers", params={"q": "acct"})
    assert re.search(r'data-testid="customer-count">20\+ customers<', page.text), page.text
    seen = external_ids(page.text)
    assert seen == [f"acct_{i:03d}" for i in range(29, 4, -1)]
    rest = await admin.client.get(_next_link(page.text))
    assert external_ids(rest.text) == [f"acct_{i:03d}" for i in range(4, -1, -1)]
    few = await admin.client.get("/admin/billing/customers", params={"q": "acct_00"})
    assert 'data-testid="customer-count">10 customers<' in few.text


async def test_a_malformed_cursor_shows_the_first_page(admin: Admin, session: AsyncSession) -> None:
    await seed(session, 3)
    for after in ("nonsense", "2026-13-45~1", "~", "x~-1"):
        page = await admin.client.get("/admin/billing/customers", params={"after": after})
        assert page.status_code == 200
        assert external_ids(page.text) == ["acct_002", "acct_001", "acct_000"], after


async def test_search_by_name_ignores_the_case_of_non_ascii_letters(
    admin: Admin, session: AsyncSession
) -> None:
    await seed(session, 12)
    emile = Customer(
        public_id=str(uuid.uuid4()),
        external_id="acct_900",
        email="emile@example.com",
        name="Émile Ünïcode",
    )
    session.add(emile)
    await session.flush()
    session.add(
        Subscription(
            customer_id=emile.id, external_id="acct_900", plan_slug="free", status="active"
        )
    )
    await session.commit()
    get = admin.client.get
    url = "/admin/billing/customers"
    for q in ("Émile", "émile", "ÉMILE", "émile üNÏ", "É"):
        assert external_ids((await get(url, params={"q": q})).text) == ["acct_900"], q
    assert external_ids((await get(url, params={"q": "ünïcode"})).text) == []  # prefix only
    assert external_ids((await get(url, params={"q": "EMILE@"})).text) == ["acct_900"]
    assert external_ids((await get(url, params={"q": "MARIE"})).text) == ["acct_011"]
    assert external_ids((await get(url, params={"q": "Émilf"})).text) == []


async def test_htmx_gets_the_rows_partial(admin: Admin, session: AsyncSession) -> None:
    await seed(session, 3)
    response = await admin.client.get(
        "/admin/billing/customers", params={"q": "acct"}, headers={"HX-Request": "true"}
    )
    assert response.text.lstrip().startswith('<section id="customer-rows"')
    assert response.headers["vary"] == "HX-Request"
    assert len(external_ids(response.text)) == 3


async def test_detail_shows_the_customer_with_the_users_meter_bars(
    admin: Admin, session: AsyncSession
) -> None:
    await seed(session, 1)
    html = (await admin.client.get("/admin/billing/customers/acct_000")).text
    assert 'data-testid="customer-external-id">acct_000<' in html
    assert 'role="progressbar"' in html and 'data-testid="meter-ai_requests"' in html
    missing = await admin.client.get("/admin/billing/customers/nobody")
    assert missing.status_code == 404


async def test_searches_use_the_indexes(session: AsyncSession) -> None:
    if session.bind.dialect.name != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN output is SQLite's")
    repo = AdminRepository(session)
    statements: list[str] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    from sqlalchemy import event

    sync_engine = session.bind.sync_engine if hasattr(session.bind, "sync_engine") else None
    assert sync_engine is not None
    event.listen(sync_engine, "before_cursor_execute", capture)
    try:
        await repo.customers(CustomerQuery(q="ada"), limit=25)
        await repo.customers(CustomerQuery(), limit=25)
        await repo.customers(CustomerQuery(q="ada"), limit=25, many=True)
    finally:
        event.remove(sync_engine, "before_cursor_execute", capture)
    search, listing, wide = statements[-3], statements[-2], statements[-1]
    conn = await session.connection()

    async def explain(statement: tuple) -> str:
        rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement[0], statement[1])
        return " | ".join(str(row[-1]) for row in rows)

    plan = await explain(search)
    assert "ix_customers_email_lower" in plan and "ix_customers_name_lower" in plan, plan
    assert "SCAN customers" not in plan, plan
    plan = await explain(listing)
    assert "ix_customers_created_id" in plan and "TEMP B-TREE" not in plan, plan
    # A search matching more than the count's cap walks the signup-date index, sorting nothing.
    plan = await explain(wide)
    assert "ix_customers_created_id" in plan and "TEMP B-TREE" not in plan, plan


async def test_customer_page_shows_the_stripe_balance(
    admin: Admin, session: AsyncSession, catalog: Catalog
) -> None:
    ref = await make_customer(session, catalog, "balance@example.com")
    url = f"/admin/billing/customers/{ref.external_id}"
    html = (await admin.client.get(url)).text
    assert re.search(r'data-testid="customer-stripe-balance">None<', html)
    await session.execute(
        update(Customer)
        .where(Customer.id == ref.id)
        .values(stripe_balance=-12000, stripe_balance_currency="usd")
    )
    await session.commit()
    html = (await admin.client.get(url)).text
    assert 'data-testid="customer-stripe-balance">$120.00 credit<' in html
