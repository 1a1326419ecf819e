"""The overview's numbers against a seeded data set with known MRR, churn and revenue.

The data set (USD, catalog prices: Pro 29.00/month, Business 149.00/month or 1,490.00/year):

| customer | plan             | status    | paid since                     | counts as                 |
|----------|------------------|-----------|--------------------------------|---------------------------|
| a        | pro, monthly     | active    | row created 40 days before 1st | MRR 29.00, retained       |
| b        | pro, monthly     | past_due  | row created 40 days before 1st | MRR 29.00, retained       |
| c        | business, yearly | active    | row created 40 days before 1st | MRR 124.1667, retained    |
| d        | pro, monthly     | trialing  | —                              | trial (not MRR, not paid) |
| e        | free             | active    | —                              | nothing                   |
| f        | free (was pro)   | active    | canceled_at = the 1st          | churned this month        |
| g        | free (was pro)   | active    | canceled_at = a day before 1st | nothing (last month)      |
| h        | pro, monthly     | active    | Stripe subscription created now | MRR 29.00, new this month |
| i        | business, monthly| active    | Stripe subscription created 60 days ago | MRR 149.00, retained |

MRR = 29 + 29 + 1490/12 + 29 + 149 = 360.1667 → $360.17.
Churn = churned / (churned + retained) = 1 / (1 + 4) = 20.0 %.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

from litestar import Litestar
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.models import Invoice
from app.catalog.models import Catalog
from app.customers.models import Customer, Subscription
from app.lib.clock import add_months, start_of_day, start_of_month, utcnow
from app.metering.models import UsageMeterDay
from app.stripe_sync.models import StripeEvent
from tests.integration.admin.conftest import Admin, make_customer


def _customer(session: AsyncSession, key: str, created: datetime) -> Customer:
    customer = Customer(
        public_id=str(uuid.uuid4()),
        external_id=f"seed_{key}",
        email=f"{key}@seed.example",
        name=f"Seed {key.upper()}",
        created_at=created,
    )
    session.add(customer)
    return customer


async def seed(session: AsyncSession, now: datetime) -> None:
    month = start_of_month(now)
    old = month - timedelta(days=40)
    rows = {
        "a": dict(plan_slug="pro", interval="month", status="active"),
        "b": dict(plan_slug="pro", interval="month", status="past_due"),
        "c": dict(plan_slug="business", interval="year", status="active"),
        "d": dict(plan_slug="pro", interval="month", status="trialing"),
        "e": dict(plan_slug="free", interval="month", status="active"),
        "f": dict(plan_slug="free", interval="month", status="active", canceled_at=month),
        "g": dict(
            plan_slug="free",
            interval="month",
            status="active",
            canceled_at=month - timedelta(days=1),
        ),
        "h": dict(
            plan_slug="pro", interval="month", status="active", stripe_subscription_id="sub_h"
        ),
        "i": dict(
            plan_slug="business",
            interval="month",
            status="active",
            stripe_subscription_id="sub_i",
        ),
    }
    customers = {}
    for key in rows:
        customers[key] = _customer(session, key, old)
    await session.flush()
    for key, values in rows.items():
        session.add(
            Subscription(
                customer_id=customers[key].id,
                external_id=customers[key].external_id,
                created_at=old,
                **values,
            )
        )
    for sub_id, created in (("sub_h", now), ("sub_i", now - timedelta(days=60))):
        session.add(
            StripeEvent(
                stripe_event_id=f"evt_{sub_id}",
                type="customer.subscription.created",
                object_id=sub_id,
                stripe_created=int(created.timestamp()),
                payload={"data": {"object": {"id": sub_id}}},
                status="processed",
            )
        )
    # Revenue: paid invoices this month, 3 months ago, 13 months ago (outside the window), and
    # an open invoice (not revenue).
    invoices = [
        ("a", now, "paid", 2900),
        ("i", now, "paid", 14900),
        ("a", add_months(month, -3) + timedelta(days=2), "paid", 5000),
        ("c", add_months(month, -13) + timedelta(days=2), "paid", 9999),
        ("b", now, "open", 7777),
    ]
    for n, (key, created, status, amount) in enumerate(invoices):
        session.add(
            Invoice(
                customer_id=customers[key].id,
                stripe_invoice_id=f"in_seed_{n}",
                status=status,
                currency="usd",
                total=amount,
                amount_due=amount,
                amount_paid=amount if status == "paid" else 0,
                created_at=created,
            )
        )
    # Usage: 3 + 4 AI requests in the window, 100 tokens, and one event 40 days ago (outside).
    for key, code, amount, at in [
        ("a", "ai_requests", 3, now),
        ("b", "ai_requests", 4, now - timedelta(days=2)),
        ("a", "tokens", 100, now),
        ("a", "ai_requests", 50, now - timedelta(days=40)),
    ]:
        # The chart reads the writer's per-meter roll-ups, each process adding to a shard of
        # its own (tests/integration/metering/test_usage_days.py): the shards add up.
        session.add(
            UsageMeterDay(
                meter_code=code,
                day=start_of_day(at).date(),
                shard=ord(key),
                amount=amount,
            )
        )
    await session.commit()


def value_of(html: str, name: str) -> str:
    match = re.search(rf'data-testid="{name}">([^<]*)<', html)
    assert match, f"no {name}"
    return match.group(1).strip()


async def test_overview_numbers_match_the_seeded_data(admin: Admin, session: AsyncSession) -> None:
    now = utcnow()
    await seed(session, now)
    html = (await admin.client.get("/admin/billing")).text
    assert value_of(html, "mrr") == "$360.17"
    assert value_of(html, "churn") == "20.0 %"
    assert value_of(html, "churn-detail") == "1 of 5"
    assert value_of(html, "trials") == "1"
    assert value_of(html, "past-due") == "1"
    # Active subscriptions per plan (admin's own customer and the signups are free plans).
    pro = re.search(r'data-testid="plan-pro">(.*?)</tr>', html, re.S)
    assert pro and re.findall(r'class="num"[^>]*>(\d+)<', pro.group(1)) == ["2", "1", "1", "4"]
    business = re.search(r'data-testid="plan-business">(.*?)</tr>', html, re.S)
    assert business and re.findall(r'class="num"[^>]*>(\d+)<', business.group(1)) == [
        "2",
        "0",
        "0",
        "2",
    ]
    # Revenue chart: this month 178.00, three months ago 50.00, nothing else in 12 months.
    chart = re.search(r'data-testid="chart-revenue-usd"(.*?)</figure>', html, re.S)
    assert chart
    assert sorted(int(v) for v in re.findall(r'data-value="(\d+)"', chart.group(1))) == [
        5000,
        17800,
    ]
    assert "$228 in total" in chart.group(1)
    assert f'<td>{now:%b %Y}</td><td class="num">$178</td>' in chart.group(1)
    assert "<title" in chart.group(1) and 'role="img"' in chart.group(1)
    # Usage chart: 7 AI requests and 100 tokens in the last 30 days (the older 50 excluded).
    ai = re.search(r'data-testid="chart-usage-ai_requests"(.*?)</figure>', html, re.S)
    assert ai and "7 in total" in ai.group(1)
    tokens = re.search(r'data-testid="chart-usage-tokens"(.*?)</figure>', html, re.S)
    assert tokens and "100 in total" in tokens.group(1)
    # Failed payments needing attention: the past-due customer, with the open invoice.
    failed = re.search(r'data-testid="failed-payments">(.*?)</table>', html, re.S)
    assert failed and "b@seed.example" in failed.group(1) and "$77.77" in failed.group(1)
    assert "a@seed.example" not in failed.group(1)


async def test_an_empty_overview_renders(admin: Admin) -> None:
    html = (await admin.client.get("/admin/billing")).text
    assert value_of(html, "mrr") == "$0"
    assert value_of(html, "churn") == "—"
    assert 'data-testid="no-failed-payments"' in html


async def test_the_overview_is_computed_at_most_every_few_seconds(
    admin: Admin, app: Litestar, session: AsyncSession, catalog: Catalog
) -> None:
    """Within OVERVIEW_SECONDS a process shows the figures it computed (and says as of when);
    after it, the page computes them again."""
    first = (await admin.client.get("/admin/billing")).text
    assert value_of(first, "trials") == "0"
    assert "Figures as of" in value_of(first, "overview-as-of")
    customer = await make_customer(session, catalog, "trial@example.com")
    await session.execute(
        update(Subscription)
        .where(Subscription.customer_id == customer.id)
        .values(plan_slug="pro", status="trialing")
    )
    await session.commit()
    again = (await admin.client.get("/admin/billing")).text
    assert value_of(again, "trials") == "0"
    assert value_of(again, "overview-as-of") == value_of(first, "overview-as-of")
    app.state["admin_overview"]._expires = 0.0  # the window has passed
    fresh = (await admin.client.get("/admin/billing")).text
    assert value_of(fresh, "trials") == "1"
