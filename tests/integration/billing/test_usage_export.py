"""The customer's usage downloads (issue 20, item 6): /billing/usage.csv (per day per meter,
from the roll-ups) and /billing/usage/events.csv (the current period's raw events), streamed
a page at a time, for every member of the organization, never another's rows, never cached."""

from __future__ import annotations

import csv
import io
import secrets
from datetime import datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.billing.page_cache import is_cached_path
from app.billing.usage_export import UsageExport
from app.db.engine import create_session_factory
from app.lib.clock import start_of_day, utcnow
from app.metering.models import UsageEvent
from tests.integration.billing.conftest import Member, api, set_subscription

__all__ = ["api"]  # the fixture

DAY_HEADER = "day,meter,amount"
EVENT_HEADER = "event_id,transaction_id,meter,value,timestamp,properties"


async def send(
    api: AsyncTestClient[Litestar],
    customer: str,
    events: list[tuple[str, datetime, dict[str, Any]]],
) -> list[str]:
    """Events (meter, timestamp, properties) with fresh transaction ids, in order."""
    ids = [f"tx_{n}_{secrets.token_hex(4)}" for n in range(len(events))]
    body = {
        "events": [
            {
                "transaction_id": tx,
                "external_customer_id": customer,
                "code": code,
                "timestamp": at.isoformat(),
                "properties": props,
            }
            for tx, (code, at, props) in zip(ids, events, strict=True)
        ]
    }
    response = await api.post("/api/v1/events/batch", json=body)
    assert response.status_code == 200, response.text
    assert not [e for e in response.json()["events"] if "error" in e], response.text
    return ids


class History:
    def __init__(self, start: datetime) -> None:
        self.start = start  # the current period's start
        self.d1 = start + timedelta(days=1)
        self.d2 = start + timedelta(days=2)


@pytest.fixture
async def history(
    api: AsyncTestClient[Litestar],
    session: AsyncSession,
    member: Member,
    other_member: Member,
) -> History:
    """Ada's period began 5 days ago at midnight UTC: five events in it on two days, and one
    stamped the evening before it that arrives now (so it counts in this period, on its first
    day, as on the chart); Eve (another organization) has events on the same days."""
    start = start_of_day(utcnow()) - timedelta(days=5)
    for who in (member, other_member):
        await set_subscription(
            session,
            who.customer_id,
            current_period_start=start,
            current_period_end=start + timedelta(days=30),
            plan_slug="pro",  # every meter resets with the billing period
        )
    await session.commit()
    h = History(start)
    await send(
        api,
        member.external_id,
        [
            ("ai_requests", h.d1 + timedelta(hours=9), {"model": "gpt-4", "region": "eu"}),
            ("ai_requests", h.d1 + timedelta(hours=10, minutes=30), {}),
            ("tokens", h.d1 + timedelta(hours=11), {"tokens": 120}),
            ("tokens", h.d2 + timedelta(hours=8), {"tokens": 30, "note": 'a, "quoted"'}),
            ("api_calls", h.d2 + timedelta(hours=12), {}),
            ("ai_requests", start - timedelta(hours=3), {"model": "old"}),
        ],
    )
    await send(
        api,
        other_member.external_id,
        [
            ("ai_requests", h.d1 + timedelta(hours=9), {"model": "eves-model"}),
            ("tokens", h.d2 + timedelta(hours=1), {"tokens": 999}),
        ],
    )
    return h


def _csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


async def _events(session: AsyncSession, customer_id: int) -> list[UsageEvent]:
    await session.commit()
    query = select(UsageEvent).where(UsageEvent.customer_id == customer_id)
    return list(await session.scalars(query.order_by(UsageEvent.id)))


async def test_usage_per_day_csv_of_the_current_period(member: Member, history: History) -> None:
    response = await member.client.get("/billing/usage.csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-disposition"] == 'attachment; filename="usage-per-day.csv"'
    d0, d1, d2 = (d.date().isoformat() for d in (history.start, history.d1, history.d2))
    assert response.text.splitlines() == [
        DAY_HEADER,
        f"{d0},ai_requests,1",
        f"{d1},ai_requests,2",
        f"{d1},tokens,120",
        f"{d2},api_calls,1",
        f"{d2},tokens,30",
    ]


async def test_usage_per_day_csv_of_a_chosen_range(member: Member, history: History) -> None:
    before = (history.start - timedelta(days=1)).date().isoformat()
    d0, d1 = history.start.date().isoformat(), history.d1.date().isoformat()
    response = await member.client.get(f"/billing/usage.csv?from={before}&to={d1}")
    assert response.status_code == 200, response.text
    assert response.text.splitlines() == [
        DAY_HEADER,
        f"{d0},ai_requests,1",
        f"{d1},ai_requests,2",
        f"{d1},tokens,120",
    ]
    only_d2 = await member.client.get(f"/billing/usage.csv?from={history.d2.date()}")
    assert only_d2.text.splitlines()[1:] == [
        f"{history.d2.date()},api_calls,1",
        f"{history.d2.date()},tokens,30",
    ]
    name = f"usage-per-day-{before}-to-{d1}.csv"
    assert response.headers["content-disposition"] == f'attachment; filename="{name}"'


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2026-02-10&to=2026-02-01", "The to date must be on or after the from date."),
        ("from=2025-01-01&to=2026-02-01", "Choose a range of at most 366 days"),
        ("from=yesterday&to=2026-02-01", "The from date must be a date like 2026-01-31."),
    ],
)
async def test_a_bad_range_is_a_clear_422(member: Member, query: str, message: str) -> None:
    response = await member.client.get(f"/billing/usage.csv?{query}")
    assert response.status_code == 422
    assert message in response.text


async def test_raw_events_of_the_current_period(
    member: Member, history: History, session: AsyncSession
) -> None:
    response = await member.client.get("/billing/usage/events.csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["cache-control"] == "no-store"
    in_period = await _events(session, member.customer_id)
    assert _csv(response.text) == [
        EVENT_HEADER.split(","),
        *(
            [e.public_id, e.transaction_id, e.meter_code, str(e.amount), ts, props]
            for e, ts, props in zip(
                in_period,
                [
                    (history.d1 + timedelta(hours=9)).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                    (history.d1 + timedelta(hours=10, minutes=30)).isoformat(),
                    (history.d1 + timedelta(hours=11)).isoformat(),
                    (history.d2 + timedelta(hours=8)).isoformat(),
                    (history.d2 + timedelta(hours=12)).isoformat(),
                    (history.start - timedelta(hours=3)).isoformat(),
                ],
                [
                    '{"model":"gpt-4","region":"eu"}',
                    "{}",
                    '{"tokens":120}',
                    '{"note":"a, \\"quoted\\"","tokens":30}',
                    "{}",
                    '{"model":"old"}',
                ],
                strict=True,
            )
        ),
    ]
    assert [e.amount for e in in_period] == [1, 1, 120, 30, 1, 1]
    # UTC, ISO 8601, as written in the file
    assert f",{(history.d1 + timedelta(hours=9)).date()}T09:00:00+00:00," in response.text


async def test_another_organizations_events_never_show(
    member: Member, other_member: Member, history: History
) -> None:
    mine = (await member.client.get("/billing/usage/events.csv")).text
    theirs = (await other_member.client.get("/billing/usage/events.csv")).text
    assert "eves-model" not in mine and ",999," not in mine
    assert len(theirs.splitlines()) == 3 and "999" in theirs and "gpt-4" not in theirs
    days = (await other_member.client.get("/billing/usage.csv")).text
    assert days.splitlines() == [
        DAY_HEADER,
        f"{history.d1.date()},ai_requests,1",
        f"{history.d2.date()},tokens,999",
    ]


async def test_the_stream_reads_a_page_at_a_time(
    member: Member, history: History, engine: AsyncEngine
) -> None:
    """Pages of 2 rows: the 6 events come out whole, in 4 keyset queries (the last one
    empty) and 4 chunks."""
    export = UsageExport(create_session_factory(engine), page_size=2)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM usage_events" in statement:
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        chunks = [chunk async for chunk in export.event_chunks(member.customer_id)]
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert len(statements) == 4
    assert len(chunks) == 4  # after rows 2, 4, 6 and at the end
    lines = b"".join(chunks).decode().splitlines()
    assert lines[0] == EVENT_HEADER and len(lines) == 7
    assert len({line.split(",")[0] for line in lines[1:]}) == 6
    day_chunks = [c async for c in export.day_chunks(member.customer_id)]
    assert b"".join(day_chunks).decode().splitlines()[1:] == [
        f"{history.start.date()},ai_requests,1",
        f"{history.d1.date()},ai_requests,2",
        f"{history.d1.date()},tokens,120",
        f"{history.d2.date()},api_calls,1",
        f"{history.d2.date()},tokens,30",
    ]


def test_downloads_are_not_in_the_page_cache() -> None:
    assert is_cached_path("/billing")
    assert not is_cached_path("/billing/usage.csv")
    assert not is_cached_path("/billing/usage/events.csv")


async def test_a_download_needs_a_login(client: AsyncTestClient[Litestar]) -> None:
    for url in ("/billing/usage.csv", "/billing/usage/events.csv"):
        response = await client.get(url, follow_redirects=False)
        assert response.status_code in (303, 401), url
