"""Migrations that move data: what was stored before them reads the same after them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import MetaData, Table, select
from sqlalchemy.engine import Connection

from app.db.migrations import upgrade
from tests import support
from tests.integration.test_migrations import _inspect, fresh_url  # noqa: F401 - fixture

NOW = datetime(2026, 11, 22, 15, 30, tzinfo=UTC)


def _seed_events(conn: Connection) -> None:
    meta = MetaData()
    with support.unreflected_expression_indexes():
        customers = Table("customers", meta, autoload_with=conn)
    events = Table("usage_events", meta, autoload_with=conn, resolve_fks=False)
    defaults = {"currency": "usd", "usage_emails": True, "created_at": NOW, "updated_at": NOW}
    for n in (1, 2):
        row = {"id": n, "public_id": f"c{n}", "external_id": f"c{n}", **defaults}
        conn.execute(customers.insert(), {k: v for k, v in row.items() if k in customers.c})
    for n, (customer, code, amount, at) in enumerate(
        [
            (1, "calls", 3, NOW),
            (1, "calls", 4, NOW.replace(hour=0)),  # the same UTC day
            (1, "calls", 5, NOW - timedelta(days=1)),
            (1, "logins", 1, NOW),
            (2, "calls", 7, NOW),
        ]
    ):
        conn.execute(
            events.insert(),
            {
                "public_id": f"e{n}",
                "customer_id": customer,
                "meter_code": code,
                "transaction_id": f"t{n}",
                "amount": amount,
                "credits_amount": 0,
                "period_start": NOW.replace(day=1, hour=0, minute=0),
                "timestamp": at,
                "properties": {},
                "fingerprint": "x",
                "created_at": NOW,
            },
        )
    conn.commit()


def _days(conn: Connection) -> dict[tuple[int, str, datetime], int]:
    days = Table("usage_days", MetaData(), autoload_with=conn, resolve_fks=False)
    rows = conn.execute(select(days)).all()
    return {(row.customer_id, row.meter_code, _utc(row.starts_at)): row.amount for row in rows}


def _utc(value: Any) -> datetime:
    value = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def test_0008_rolls_existing_events_up_by_utc_day(fresh_url: str) -> None:  # noqa: F811
    upgrade(fresh_url, "0007")
    _inspect(fresh_url, _seed_events)
    upgrade(fresh_url, "0008")
    today = datetime(2026, 11, 22, tzinfo=UTC)
    assert _inspect(fresh_url, _days) == {
        (1, "calls", today): 7,
        (1, "calls", today - timedelta(days=1)): 5,
        (1, "logins", today): 1,
        (2, "calls", today): 7,
    }


def _seed_users_and_customers(conn: Connection) -> None:
    meta = MetaData()
    with support.unreflected_expression_indexes():
        customers = Table("customers", meta, autoload_with=conn)
    users = Table("users", meta, autoload_with=conn)
    for n in (1, 2):
        row = {"id": n, "email": f"u{n}@example.com", "name": "", "is_admin": False}
        row.update({"created_at": NOW, "password_hash": None})
        conn.execute(users.insert(), {k: v for k, v in row.items() if k in users.c})
    defaults = {"currency": "usd", "usage_emails": True, "created_at": NOW, "updated_at": NOW}
    # Two users with their billing accounts, and a customer the SaaS made (no user).
    for n, user_id in ((1, 1), (2, 2), (3, None)):
        row = {"id": n, "public_id": f"c{n}", "external_id": f"c{n}", "user_id": user_id}
        conn.execute(
            customers.insert(), {k: v for k, v in {**row, **defaults}.items() if k in customers.c}
        )
    conn.commit()


def _memberships(conn: Connection) -> set[tuple[int, int, str]]:
    table = Table("memberships", MetaData(), autoload_with=conn, resolve_fks=False)
    return {(row.customer_id, row.user_id, row.role) for row in conn.execute(select(table))}


def test_0017_makes_every_user_the_owner_of_their_billing_account(
    fresh_url: str,  # noqa: F811
) -> None:
    upgrade(fresh_url, "0016")
    _inspect(fresh_url, _seed_users_and_customers)
    upgrade(fresh_url, "0017")
    assert _inspect(fresh_url, _memberships) == {(1, 1, "owner"), (2, 2, "owner")}
