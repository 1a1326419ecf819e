"""The dashboard's usage chart spans what each meter's quota counts (issue 21, item 1): on a
yearly plan, whose quotas come monthly, a billing-period meter's chart is the current month of
the year, the window its bar counts and resets, not the whole year nor the last 31 days."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.lib.charts import day_label
from app.lib.clock import add_months, utcnow
from tests.integration.billing.conftest import HX, Member, in_days, set_subscription


async def test_a_yearly_plan_charts_the_quotas_month(member: Member, session: AsyncSession) -> None:
    start = in_days(-100)
    await set_subscription(
        session,
        member.customer_id,
        plan_slug="pro",
        status="active",
        interval="year",
        current_period_start=start,
        current_period_end=add_months(start, 12),
        stripe_subscription_id="sub_yearly_chart",
    )
    month = 0
    while add_months(start, month + 1) <= utcnow():
        month += 1
    first = add_months(start, month).date()
    last = (add_months(start, month + 1) - timedelta(microseconds=1)).date()
    response = await member.client.get("/billing/chart", headers=HX)
    assert response.status_code == 200
    tokens = response.text[response.text.index('data-testid="chart-tokens"') :]
    tokens = tokens.split("</figure>")[0]
    assert f"{day_label(first)} – {day_label(last)}, {last.year}" in tokens
