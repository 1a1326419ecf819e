"""`GET /billing/summary.json` (issue 20, item 5): the signed-in customer's plan, balances,
features and next invoice for the SaaS's frontend; a login is required, and each login sees
its own customer only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.lib.clock import utcnow
from tests.integration.billing.conftest import Member, grant, record, set_subscription


async def _summary(member: Member) -> dict:
    response = await member.client.get("/billing/summary.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    return response.json()


async def test_the_summary_needs_a_login_and_answers_json(client):
    response = await client.get("/billing/summary.json", follow_redirects=False)

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


async def test_the_summary_shows_the_free_plan_balances_and_no_invoice(member: Member, api):
    await record(api, member.external_id, count=3)
    await grant(api, member.external_id, 5)

    body = await _summary(member)

    assert body["external_customer_id"] == member.external_id
    assert body["plan"] == {"code": "free", "name": "Free"} and body["plan_in_force"] == "free"
    assert body["status"] == "active" and body["cancel_at_period_end"] is False
    assert body["features"] == {"export": False, "priority_support": False, "sso": False}
    ai = next(b for b in body["balances"] if b["code"] == "ai_requests")
    assert (ai["used"], ai["limit"], ai["credits"], ai["available"]) == (3, 20, 5, 22)
    assert body["next_invoice"] is None
    assert body["upgrade_url"].endswith("/billing/upgrade")


async def test_each_login_sees_its_own_customer(member: Member, other_member: Member, api):
    await record(api, member.external_id, count=4)
    await record(api, other_member.external_id, count=1)

    mine, theirs = await _summary(member), await _summary(other_member)

    assert mine["external_customer_id"] == member.external_id
    assert theirs["external_customer_id"] == other_member.external_id
    used = {s["external_customer_id"]: s["balances"][0]["used"] for s in (mine, theirs)}
    assert used == {member.external_id: 4, other_member.external_id: 1}
    # No parameter reaches another customer.
    other = await member.client.get(
        "/billing/summary.json", params={"external_id": other_member.external_id}
    )
    assert other.json()["external_customer_id"] == member.external_id


async def test_a_paid_plan_shows_its_features_period_and_next_invoice(
    member: Member, session: AsyncSession
):
    start = utcnow().replace(microsecond=0) - timedelta(days=3)
    end = start + timedelta(days=30)
    await set_subscription(
        session,
        member.customer_id,
        plan_slug="pro",
        interval="year",
        status="active",
        stripe_subscription_id="sub_summary_1",
        current_period_start=start,
        current_period_end=end,
    )

    body = await _summary(member)

    assert body["plan"] == {"code": "pro", "name": "Pro"} and body["interval"] == "year"
    assert body["features"]["export"] is True and body["features"]["sso"] is False
    assert body["current_period_end"] == end.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert body["next_invoice"] == {
        "amount": 29000,
        "currency": "usd",
        "date": body["current_period_end"],
        "plan": {"code": "pro", "name": "Pro"},
        "interval": "year",
    }
    ai = next(b for b in body["balances"] if b["code"] == "ai_requests")
    assert ai["limit"] == 1000

    # Set to cancel: nothing more is due. Paused: the free plan's features and limits apply.
    await set_subscription(session, member.customer_id, cancel_at_period_end=True)
    assert (await _summary(member))["next_invoice"] is None
    await set_subscription(session, member.customer_id, cancel_at_period_end=False, status="paused")
    paused = await _summary(member)
    assert paused["plan"]["code"] == "pro" and paused["plan_in_force"] == "free"
    assert paused["features"]["export"] is False and paused["next_invoice"] is None


async def test_a_trial_next_invoice_is_at_the_trial_end(member: Member, session: AsyncSession):
    trial_end = datetime(2031, 1, 15, 12, 0, tzinfo=UTC)
    await set_subscription(
        session,
        member.customer_id,
        plan_slug="pro",
        interval="month",
        status="trialing",
        stripe_subscription_id="sub_summary_2",
        trial_end=trial_end,
        current_period_start=trial_end - timedelta(days=14),
        current_period_end=trial_end,
    )

    body = await _summary(member)

    assert body["status"] == "trialing" and body["trial_end"] == "2031-01-15T12:00:00Z"
    assert body["next_invoice"]["date"] == "2031-01-15T12:00:00Z"
    assert body["next_invoice"]["amount"] == 2900


async def test_the_schema_describes_the_summary(client):
    document = (await client.get("/schema/openapi.json")).json()
    operation = document["paths"]["/billing/summary.json"]["get"]
    assert operation["security"] == [{"sessionCookie": []}]
    assert "sessionCookie" in document["components"]["securitySchemes"]
    body = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/BillingSummaryOut"}
    assert set(operation["responses"]) == {"200", "401", "404"}
