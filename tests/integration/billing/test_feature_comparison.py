"""The plans x features comparison on the dashboard and the plans page (issue 20, item 2):
every public plan and declared feature, a mark with words for screen readers, the
customer's plan marked."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.integration.billing.conftest import Member, set_subscription


def _cell(html: str, feature: str, plan: str) -> str:
    match = re.search(
        rf'<td [^>]*data-testid="feature-{feature}-{plan}"[^>]*>(.*?)</td>', html, re.DOTALL
    )
    assert match, f"no cell for {feature} / {plan}"
    return match.group(0)


@pytest.mark.parametrize("path", ["/billing", "/billing/upgrade"])
async def test_the_pages_compare_the_plans_features(member: Member, path: str):
    html = (await member.client.get(path)).text

    assert 'data-testid="feature-table"' in html
    assert "<caption>Features by plan</caption>" in html
    for name in ("Data export", "Priority support", "Single sign-on"):
        assert f">{name}<" in html
    headers = re.findall(r'<th scope="col"[^>]*>([^<]+)', html)
    assert headers[:4] == ["Feature", "Free", "Pro", "Business"]  # guest is not public
    yes, no = _cell(html, "export", "pro"), _cell(html, "export", "free")
    assert 'data-included="yes"' in yes and "Included in Pro" in yes and "✓" in yes
    assert 'data-included="no"' in no and "Not included in Free" in no
    assert 'aria-hidden="true">✓' in yes  # the mark itself is not read out
    # The customer's plan (free) is marked, in words too.
    assert re.search(r'<th scope="col" class="feature-current" aria-current="true">Free', html)
    assert "(your plan)" in html


async def test_the_mark_follows_the_customer_plan(member: Member, session: AsyncSession):
    await set_subscription(session, member.customer_id, plan_slug="business")

    html = (await member.client.get("/billing/upgrade")).text

    assert re.search(
        r'aria-current="true">Business<span class="visually-hidden"> \(your plan\)', html
    )
    assert "feature-current" in _cell(html, "sso", "business")
    assert "feature-current" not in _cell(html, "sso", "free")
