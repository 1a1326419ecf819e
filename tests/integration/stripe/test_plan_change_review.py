"""A paying customer's plan change: reviewed from Stripe's preview, made only by the confirm,
charged exactly what the review showed; a downgrade waits for the period end until "Keep"."""

from __future__ import annotations

import re

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.plan_change import PREVIEW_CHANGED, REVIEW_EXPIRED
from app.lib.jinja import format_date
from app.stripe.gateway import StripeGateway
from tests.integration.stripe.conftest import (
    Emulator,
    customer_of,
    flashes,
    forward,
    post_form,
    related_to,
    review_plan_change,
    subscribe,
    wait_for_events,
)

EMULATOR_KEY = {"Authorization": "Bearer sk_test_x"}


def _testid(html: str, testid: str) -> str:
    match = re.search(rf'<(\w+)[^>]*data-testid="{testid}"[^>]*>(.*?)</\1>', html, re.S)
    assert match, f"no {testid}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", match.group(2))).strip()


async def _state(session: AsyncSession, gateway: StripeGateway, email: str) -> tuple[object, ...]:
    """Our row and Stripe's subscription and invoices, to show nothing changed."""
    customer, row = await customer_of(session, email)
    assert row.stripe_subscription_id and customer.stripe_customer_id
    remote = await gateway.retrieve_subscription(row.stripe_subscription_id)
    invoices = await gateway.list_invoices(customer.stripe_customer_id)
    return (
        (row.plan_slug, row.interval, row.status, row.stripe_schedule_id),
        sorted(i["price"]["lookup_key"] for i in remote["items"]["data"]),
        remote.get("schedule"),
        sorted(i["id"] for i in invoices),
    )


async def test_review_changes_nothing_and_the_confirm_charges_the_preview(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
) -> None:
    email = "review-upgrade@example.com"
    cus = await subscribe(client, session, emulator, email, trial=False)
    before = await _state(session, gateway, email)

    # The plans page sends a paying customer to the review, not to a charge.
    plans = await client.get("/billing/upgrade")
    assert 'action="/billing/subscription/review"' in plans.text
    page, fields = await review_plan_change(client, "business")
    await review_plan_change(client, "business")  # a reload
    assert await _state(session, gateway, email) == before  # GETs changed nothing
    shown = int(fields["amount"])
    assert 11_900 < shown <= 14_900 - 2_900  # Business minus Pro, for (nearly) the whole month
    assert _testid(page.text, "review-amount") == f"${shown / 100:,.2f}".replace(".00", "")
    assert "4242" in _testid(page.text, "review-card")
    lines = re.findall(r'data-testid="review-line"', page.text)
    assert len(lines) == 2  # unused Pro time back, remaining Business time
    assert "Unlimited" in page.text and "1,000 a month" in page.text  # the quotas, before/after

    # Stripe's clock moves on by 10 days before the confirm: the update still prorates as of
    # the review's proration date, so it charges what the review showed.
    emulator.advance(days=10)
    mark = emulator.mark()
    confirmed = await post_form(client, "/billing/subscription/change", fields)
    assert confirmed.status_code == 303 and confirmed.headers["location"] == "/billing"
    await forward(
        client,
        await wait_for_events(
            emulator, cus, {"invoice.paid", "customer.subscription.updated"}, after=mark
        ),
    )
    _, row = await customer_of(session, email)
    assert (row.plan_slug, row.status) == ("business", "active")
    assert row.stripe_subscription_id
    remote = await gateway.retrieve_subscription(row.stripe_subscription_id)
    latest = next(
        i for i in await gateway.list_invoices(cus) if i["id"] == remote["latest_invoice"]
    )
    assert (latest["amount_paid"], latest["status"]) == (shown, "paid")
    assert len(await gateway.list_invoices(cus)) == len(before[3]) + 1

    # The same confirm again (the back button, a second click) charges nothing more.
    again = await post_form(client, "/billing/subscription/change", fields)
    assert again.status_code == 303
    assert len(await gateway.list_invoices(cus)) == len(before[3]) + 1


async def test_a_preview_that_changed_is_refused(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
) -> None:
    email = "review-changed@example.com"
    cus = await subscribe(client, session, emulator, email, trial=False)
    _, fields = await review_plan_change(client, "business")
    # Before the confirm, the customer gets $5 of credit at Stripe: today's charge is less.
    httpx.post(
        f"{emulator.url}/v1/customers/{cus}/balance_transactions",
        data={"amount": -500, "currency": "usd"},
        headers=EMULATOR_KEY,
    ).raise_for_status()
    before = await _state(session, gateway, email)

    refused = await post_form(client, "/billing/subscription/change", fields)
    assert refused.status_code == 303
    assert (
        refused.headers["location"] == "/billing/subscription/review?plan=business&interval=month"
    )
    assert await _state(session, gateway, email) == before
    page = await client.get(refused.headers["location"])
    assert PREVIEW_CHANGED in flashes(page.text)
    _, fresh = await review_plan_change(client, "business")
    assert int(fresh["amount"]) == int(fields["amount"]) - 500

    # Figures the page did not show (another proration date, an older review) are refused.
    for name, value in (
        ("proration_date", str(int(fresh["proration_date"]) + 86400)),
        ("reviewed_at", str(int(fresh["reviewed_at"]) - 7200)),
    ):
        tampered = await post_form(client, "/billing/subscription/change", {**fresh, name: value})
        assert tampered.headers["location"].startswith("/billing/subscription/review")
        page = await client.get(tampered.headers["location"])
        assert REVIEW_EXPIRED in flashes(page.text)
        assert await _state(session, gateway, email) == before
    # A POST that did not come from a review only leads to one.
    bare = await post_form(
        client, "/billing/subscription/change", {"plan": "business", "interval": "month"}
    )
    assert bare.headers["location"].startswith("/billing/subscription/review")
    assert await _state(session, gateway, email) == before


async def test_a_downgrade_is_scheduled_for_the_period_end_and_keep_calls_it_off(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
) -> None:
    email = "review-downgrade@example.com"
    cus = await subscribe(client, session, emulator, email, "business", trial=False)
    _, row = await customer_of(session, email)
    period_end = row.current_period_end
    assert period_end is not None
    before = await _state(session, gateway, email)

    page, fields = await review_plan_change(client, "pro")
    assert await _state(session, gateway, email) == before
    assert "Nothing is charged today" in _testid(page.text, "review-today")
    assert format_date(period_end) in _testid(page.text, "review-today")
    assert int(fields["amount"]) == 0  # charged today
    assert _testid(page.text, "review-renewal-amount") == "$29"  # the renewal bills Pro

    mark = emulator.mark()
    confirmed = await post_form(client, "/billing/subscription/change", fields)
    assert confirmed.status_code == 303
    dashboard = await client.get(confirmed.headers["location"])
    assert f"Your plan changes to Pro on {format_date(period_end)}" in flashes(dashboard.text)[0]
    assert _testid(dashboard.text, "plan-state") == (
        f"Changes to Pro on {format_date(period_end)}. You keep Business until then."
    )
    assert 'data-testid="keep-plan"' in dashboard.text and "Keep Business" in dashboard.text
    _, row = await customer_of(session, email)
    assert (row.plan_slug, row.scheduled_plan_slug, row.scheduled_change_at) == (
        "business",
        "pro",
        period_end,
    )
    remote = await gateway.retrieve_subscription(str(row.stripe_subscription_id))
    assert remote["schedule"] == row.stripe_schedule_id
    assert [i["price"]["lookup_key"] for i in remote["items"]["data"]] != ["plan_pro_monthly"]
    assert len(await gateway.list_invoices(cus)) == len(before[3])  # nothing charged
    # A row that missed the schedule (its phases set after our last look, or in Stripe's
    # Dashboard) is made right by the schedule's own events; with the subscription's, and
    # all of them twice, the rows stay the same.
    known = (row.stripe_schedule_id, "pro", period_end)
    deliveries = await wait_for_events(
        emulator,
        cus,
        {"customer.subscription.updated", "subscription_schedule.updated"},
        after=mark,
    )
    row.stripe_schedule_id = row.scheduled_plan_slug = row.scheduled_change_at = None
    await session.commit()
    await forward(client, [d for d in deliveries if b'"subscription_schedule.' in d[0]])
    _, row = await customer_of(session, email)
    assert (row.stripe_schedule_id, row.scheduled_plan_slug, row.scheduled_change_at) == known
    await forward(client, deliveries + deliveries)
    _, row = await customer_of(session, email)
    assert (row.stripe_schedule_id, row.scheduled_plan_slug, row.scheduled_change_at) == known

    # "Keep Business" releases the schedule: the plan renews as it is.
    schedule_id = row.stripe_schedule_id
    kept = await post_form(client, "/billing/subscription/keep")
    assert kept.status_code == 303
    dashboard = await client.get("/billing")
    assert "You keep Business; it renews as usual." in flashes(dashboard.text)
    assert 'data-state="scheduled"' not in dashboard.text
    _, row = await customer_of(session, email)
    assert (row.plan_slug, row.stripe_schedule_id, row.scheduled_plan_slug) == (
        "business",
        None,
        None,
    )
    remote = await gateway.retrieve_subscription(str(row.stripe_subscription_id))
    assert remote["schedule"] is None
    released = httpx.get(
        f"{emulator.url}/v1/subscription_schedules/{schedule_id}", headers=EMULATOR_KEY
    ).json()
    assert released["status"] == "released"

    # Scheduled again, then the plan is canceled: the end replaces the scheduled change.
    _, fields = await review_plan_change(client, "pro")
    assert (await post_form(client, "/billing/subscription/change", fields)).status_code == 303
    _, row = await customer_of(session, email)
    assert row.stripe_schedule_id and row.stripe_schedule_id != schedule_id
    assert (await post_form(client, "/billing/subscription/cancel")).status_code == 303
    _, row = await customer_of(session, email)
    assert (row.cancel_at_period_end, row.stripe_schedule_id, row.scheduled_plan_slug) == (
        True,
        None,
        None,
    )
    remote = await gateway.retrieve_subscription(str(row.stripe_subscription_id))
    assert remote["schedule"] is None and remote["cancel_at_period_end"] is True


async def test_a_scheduled_downgrade_happens_at_the_period_end(
    client: AsyncTestClient[Litestar],
    session: AsyncSession,
    emulator: Emulator,
    gateway: StripeGateway,
) -> None:
    email = "review-downgrade-happens@example.com"
    cus = await subscribe(client, session, emulator, email, "business", trial=False)
    _, fields = await review_plan_change(client, "pro")
    assert (await post_form(client, "/billing/subscription/change", fields)).status_code == 303

    mark = emulator.mark()
    emulator.advance(days=32)
    await forward(client, await wait_for_events(emulator, cus, {"invoice.paid"}, after=mark))
    everything = emulator.deliveries_for(related_to(cus), after=mark)
    await forward(client, everything)
    _, row = await customer_of(session, email)
    assert (row.plan_slug, row.status, row.scheduled_plan_slug) == ("pro", "active", None)
    remote = await gateway.retrieve_subscription(str(row.stripe_subscription_id))
    latest = next(
        i for i in await gateway.list_invoices(cus) if i["id"] == remote["latest_invoice"]
    )
    assert latest["amount_paid"] == 2_900
    dashboard = await client.get("/billing")
    assert 'data-state="scheduled"' not in dashboard.text
