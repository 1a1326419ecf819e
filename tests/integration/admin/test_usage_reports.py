"""The admin's usage and credit reports (issue 20, item 6): numbers for a seeded history, the
date range checks, paging, the streamed CSVs and admin-only access."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.admin import usage_reports
from app.admin.usage_reports import UsageReports
from app.catalog.models import Catalog
from app.db.engine import create_session_factory
from app.lib.clock import add_months, start_of_month, utcnow
from app.lib.date_ranges import DateRange
from app.metering.models import CreditGrant, CreditLedgerEntry, UsageDay, UsageMeterDay
from tests.conftest import csrf_token
from tests.integration.admin.conftest import Admin, CustomerRef, make_customer

REPORTS = (
    "/admin/billing/reports/usage",
    "/admin/billing/reports/usage.csv",
    "/admin/billing/reports/credits",
    "/admin/billing/reports/credits.csv",
)


def _at(day: date, hour: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


class Usage:
    def __init__(self, ada: CustomerRef, bob: CustomerRef, first: date, last: date) -> None:
        self.ada, self.bob, self.first, self.last = ada, bob, first, last


@pytest.fixture
async def usage(session: AsyncSession, catalog: Catalog) -> Usage:
    """Roll-ups of two customers over a 3-day range, plus a day before it that stays out."""
    ada = await make_customer(session, catalog, f"ada-{uuid.uuid4().hex[:6]}@example.com", "Ada")
    bob = await make_customer(session, catalog, f"bob-{uuid.uuid4().hex[:6]}@example.com", "Bob")
    first = date(2026, 3, 10)
    last = first + timedelta(days=2)
    rows = [
        (ada, "ai_requests", _at(first, 3), 4),
        (ada, "ai_requests", _at(first + timedelta(days=1), 0), 6),
        (ada, "ai_requests", _at(first + timedelta(days=1), 14), 1),  # a period's start
        (ada, "tokens", _at(last, 9), 500),
        (bob, "ai_requests", _at(last, 0), 2),
        (bob, "ai_requests", _at(first - timedelta(days=1), 0), 1000),  # before the range
        (bob, "api_calls", _at(last + timedelta(days=1), 0), 1000),  # after it
    ]
    per_day: dict[tuple[str, date], int] = {}
    for who, meter, starts_at, amount in rows:
        session.add(
            UsageDay(customer_id=who.id, meter_code=meter, starts_at=starts_at, amount=amount)
        )
        key = (meter, starts_at.date())
        per_day[key] = per_day.get(key, 0) + amount
    for (meter, day), amount in per_day.items():
        session.add(UsageMeterDay(meter_code=meter, day=day, shard=0, amount=amount))
    await session.commit()
    return Usage(ada, bob, first, last)


def _table_rows(html: str) -> list[tuple[str, str, str]]:
    found = re.findall(
        r'data-testid="usage-row-([^"]+)-(ai_requests|tokens|api_calls)">.*?'
        r'data-label="Usage" class="num">([^<]+)</td>',
        html,
        re.S,
    )
    return [(c, m, n) for c, m, n in found]


def _query(u: Usage) -> str:
    return f"from={u.first.isoformat()}&to={u.last.isoformat()}"


async def test_usage_per_customer_and_meter_for_a_range(admin: Admin, usage: Usage) -> None:
    response = await admin.client.get(f"/admin/billing/reports/usage?{_query(usage)}")
    assert response.status_code == 200, response.text
    html = response.text
    assert 'aria-current="page">Usage report' in html  # the admin sub-navigation
    assert _table_rows(html) == [
        (usage.ada.external_id, "ai_requests", "11"),
        (usage.ada.external_id, "tokens", "500"),
        (usage.bob.external_id, "ai_requests", "2"),
    ]
    assert 'data-testid="chart-report-ai_requests"' in html
    assert "AI requests, Mar 10, 2026 – Mar 12, 2026: 13 in total." in html
    assert f'href="/admin/billing/reports/usage.csv?{_query(usage)}"' in html.replace("&amp;", "&")


async def test_the_table_is_paged_by_keyset(
    admin: Admin, usage: Usage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usage_reports, "PER_PAGE", 2)
    first = await admin.client.get(f"/admin/billing/reports/usage?{_query(usage)}")
    assert [r[:2] for r in _table_rows(first.text)] == [
        (usage.ada.external_id, "ai_requests"),
        (usage.ada.external_id, "tokens"),
    ]
    assert 'data-testid="usage-report-rows-first"' not in first.text
    found = re.search(r'href="([^"]+)" [^>]*data-testid="usage-report-rows-next"', first.text)
    assert found
    next_url = found.group(1).replace("&amp;", "&")
    assert next_url.endswith(f"&after={usage.ada.id}%3Atokens")
    second = await admin.client.get(next_url)
    assert [r[:2] for r in _table_rows(second.text)] == [(usage.bob.external_id, "ai_requests")]
    assert 'data-testid="usage-report-rows-first"' in second.text
    assert 'data-testid="usage-report-rows-next"' not in second.text
    # A cursor that is not one is the first page.
    odd = await admin.client.get(f"/admin/billing/reports/usage?{_query(usage)}&after=x:")
    assert [r[:2] for r in _table_rows(odd.text)] == [r[:2] for r in _table_rows(first.text)]


async def test_usage_csv(admin: Admin, usage: Usage, engine: AsyncEngine, catalog: Catalog) -> None:
    response = await admin.client.get(f"/admin/billing/reports/usage.csv?{_query(usage)}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["cache-control"] == "no-store"
    span = "2026-03-10,2026-03-12"
    expected = [
        "customer,email,name,meter,amount,from,to",
        f"{usage.ada.external_id},{usage.ada.email},Ada,ai_requests,11,{span}",
        f"{usage.ada.external_id},{usage.ada.email},Ada,tokens,500,{span}",
        f"{usage.bob.external_id},{usage.bob.email},Bob,ai_requests,2,{span}",
    ]
    assert response.text.splitlines() == expected
    # Pages of 2 rows: all 3 come out, a page at a time.
    reports = UsageReports(None, create_session_factory(engine), catalog, page_size=2)  # type: ignore[arg-type]
    chunks = [c async for c in reports.usage_csv(DateRange(usage.first, usage.last))]
    assert len(chunks) == 2
    assert b"".join(chunks).decode().splitlines() == expected


@pytest.mark.parametrize("path", ["/admin/billing/reports/usage", "/admin/billing/reports/credits"])
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2026-03-10&to=2026-03-09", "The to date must be on or after the from date."),
        ("from=2025-01-01&to=2026-01-02", "Choose a range of at most 366 days (this one has 367)."),
        ("from=2026-02-30&to=2026-03-01", "The from date must be a date like 2026-01-31."),
        ("from=2026-03-01&to=soon", "The to date must be a date like 2026-01-31."),
    ],
)
async def test_a_bad_range_shows_the_form_with_the_error(
    admin: Admin, path: str, query: str, message: str
) -> None:
    response = await admin.client.get(f"{path}?{query}")
    assert response.status_code == 422
    assert 'data-testid="report-error"' in response.text
    assert message in response.text
    assert 'aria-invalid="true"' in response.text
    csv_response = await admin.client.get(f"{path}.csv?{query}")
    assert csv_response.status_code == 422


async def test_a_year_of_366_days_is_allowed(admin: Admin) -> None:
    response = await admin.client.get("/admin/billing/reports/usage?from=2024-01-01&to=2024-12-31")
    assert response.status_code == 200
    assert 'data-testid="usage-report-empty"' in response.text


async def test_the_defaults_are_the_last_30_days_and_the_last_12_months(admin: Admin) -> None:
    today = utcnow().date()
    usage_page = await admin.client.get("/admin/billing/reports/usage")
    assert f'value="{(today - timedelta(days=29)).isoformat()}"' in usage_page.text
    assert f'value="{today.isoformat()}"' in usage_page.text
    credits_page = await admin.client.get("/admin/billing/reports/credits")
    first = add_months(start_of_month(utcnow()), -11).date()
    assert f'value="{first.isoformat()}"' in credits_page.text


# Credit usage ------------------------------------------------------------------------------


def _grant(
    customer: CustomerRef, amount: int, source: str, reason: str, at: datetime
) -> CreditGrant:
    return CreditGrant(
        public_id=str(uuid.uuid4()),
        customer_id=customer.id,
        meter_code="ai_requests",
        amount=amount,
        remaining=0,
        source=source,
        reason=reason,
        transaction_id=f"g_{uuid.uuid4().hex}",
        fingerprint="x",
        created_at=at,
    )


@pytest.fixture
async def credit_history(session: AsyncSession, catalog: Catalog) -> tuple[date, date]:
    """Month 1: a 100-credit pack bought (Checkout), 30 used. Month 2: 20 more used, 10 expire,
    the last 40 revoked by a refund; an admin grant of 50 of which 5 used; a 500-pack bought
    by auto top-up, disputed (500 taken) and the dispute won (500 restored). Before the range:
    a promotion that stays out."""
    ada = await make_customer(session, catalog, f"cr-{uuid.uuid4().hex[:6]}@example.com")
    m1 = datetime(2026, 5, 3, 10, tzinfo=UTC)
    m2 = datetime(2026, 6, 20, 12, tzinfo=UTC)
    pack = _grant(ada, 100, "purchase", "Bought 100 AI requests", m1)
    admin_grant = _grant(ada, 50, "admin", "support ticket", m2)
    top_up = _grant(ada, 500, "purchase", "Auto top-up: 500 AI requests", m2)
    old = _grant(ada, 7, "promotion", "launch", m1 - timedelta(days=40))
    session.add_all([pack, admin_grant, top_up, old])
    await session.flush()
    entries = [
        (pack, "grant", 100, m1),
        (pack, "consume", -30, m1 + timedelta(days=2)),
        (pack, "consume", -20, m2),
        (pack, "expire", -10, m2),
        (pack, "refund", -40, m2 + timedelta(days=1)),
        (admin_grant, "grant", 50, m2),
        (admin_grant, "consume", -5, m2 + timedelta(hours=1)),
        (top_up, "grant", 500, m2),
        (top_up, "dispute", -500, m2 + timedelta(days=2)),
        (top_up, "restore", 500, m2 + timedelta(days=3)),
        (old, "grant", 7, old.created_at),
    ]
    for grant, kind, amount, at in entries:
        session.add(
            CreditLedgerEntry(
                customer_id=ada.id,
                grant_id=grant.id,
                meter_code="ai_requests",
                kind=kind,
                amount=amount,
                created_at=at,
            )
        )
    await session.commit()
    return date(2026, 5, 1), date(2026, 6, 30)


CREDIT_CSV = [
    "month,pack,meter,granted,used,expired,refunded",
    "2026-05,100 AI requests,ai_requests,100,30,0,0",
    "2026-06,100 AI requests,ai_requests,0,20,10,40",
    "2026-06,500 AI requests,ai_requests,500,0,0,0",
    "2026-06,Admin grants,ai_requests,50,5,0,0",
]


async def test_credit_report_numbers(admin: Admin, credit_history: tuple[date, date]) -> None:
    first, last = credit_history
    query = f"from={first.isoformat()}&to={last.isoformat()}"
    response = await admin.client.get(f"/admin/billing/reports/credits?{query}")
    assert response.status_code == 200, response.text
    html = response.text
    assert 'aria-current="page">Credit report' in html
    cells = re.findall(
        r'<tr data-testid="credit-row-([^"]+)">\s*'
        + r"\s*".join([r'<td data-label="\w+"(?: class="num")?>([^<]*)</td>'] * 7),
        html,
    )
    assert [",".join(c[1:]) for c in cells] == CREDIT_CSV[1:]
    totals = re.search(r'data-testid="credit-totals">(.*?)</tr>', html, re.S)
    assert totals and re.findall(r'class="num">([^<]+)<', totals.group(1)) == [
        "650",
        "55",
        "10",
        "40",
    ]
    for key in ("granted", "used", "expired", "refunded"):
        assert f'data-testid="chart-credits-{key}"' in html
    assert "Credits granted per month: 650 in total." in html
    assert "Credits refunded per month: 40 in total." in html

    download = await admin.client.get(f"/admin/billing/reports/credits.csv?{query}")
    assert download.status_code == 200
    assert download.headers["cache-control"] == "no-store"
    assert download.text.splitlines() == CREDIT_CSV
    assert list(csv.reader(io.StringIO(download.text)))[1][1] == "100 AI requests"


# Access ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", REPORTS)
async def test_anonymous_is_sent_to_login(client: AsyncTestClient[Litestar], path: str) -> None:
    await csrf_token(client, "/login")
    anonymous = await client.get(path, follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize("path", REPORTS)
async def test_a_user_who_is_not_admin_is_refused(
    user_client: AsyncTestClient[Litestar], path: str
) -> None:
    """(One client per test: two on one app would share its lifespan.)"""
    refused = await user_client.get(path, follow_redirects=False)
    assert refused.status_code == 403
    assert "text/csv" not in refused.headers.get("content-type", "")
