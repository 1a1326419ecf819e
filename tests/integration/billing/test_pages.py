"""Rendering of the billing pages in each state a customer can be in."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.lib.jinja import format_date
from tests.integration.billing.conftest import (
    HX,
    Member,
    add_card,
    add_invoice,
    block_of,
    grant,
    in_days,
    record,
    set_subscription,
)


def meter_html(html: str, code: str) -> str:
    return block_of(html, f"meter-{code}")


def aria_now(html: str, code: str) -> str:
    match = re.search(r'aria-valuenow="([^"]+)"', meter_html(html, code))
    assert match, f"no progress bar for {code}"
    return match.group(1)


def plan_state_of(html: str) -> tuple[str, str]:
    """The plan card's state: its kind and its one sentence (there is exactly one)."""
    found = re.findall(r'data-testid="plan-state" data-state="([^"]*)">([^<]*)</p>', html)
    assert len(found) == 1, found
    return found[0][0], found[0][1].replace("&#39;", "'")


async def dashboard(member: Member) -> str:
    response = await member.client.get("/billing")
    assert response.status_code == 200, response.text
    return response.text


# --- dashboard states ---------------------------------------------------------------------


async def test_empty_dashboard_has_plan_bars_and_empty_states(member: Member) -> None:
    html = await dashboard(member)
    assert re.search(r'data-testid="current-plan">\s*<strong class="plan-name">Free', html)
    for code in ("ai_requests", "tokens", "api_calls"):
        block = meter_html(html, code)
        assert 'role="progressbar"' in block
        assert 'aria-valuemin="0"' in block and 'aria-valuemax="100"' in block
        assert aria_now(html, code) == "0"
    assert "<strong>0</strong> / 20" in meter_html(html, "ai_requests")
    assert 'data-testid="upgrade-prompt"' not in html
    assert 'data-testid="quota-exhausted"' not in html
    assert 'data-testid="invoices-empty"' in html and 'href="/billing/upgrade"' in html
    assert 'data-testid="cards-empty"' in html
    assert 'data-testid="try-it"' in html  # the test settings run in demo mode
    assert 'id="meters"' in html and 'id="usage-chart"' in html


async def test_normal_usage_is_neutral(member: Member, api) -> None:
    await record(api, member.external_id, count=5)
    html = await dashboard(member)
    block = meter_html(html, "ai_requests")
    assert "<strong>5</strong> / 20" in block and "25 %" in block
    assert aria_now(html, "ai_requests") == "25"
    assert 'data-level="neutral"' in block and 'width="25.0%"' in block
    assert 'data-testid="upgrade-prompt"' not in html


async def test_above_75_percent_warns_in_colour_and_words_without_prompt(
    member: Member, api
) -> None:
    await record(api, member.external_id, "tokens", tokens=78_000)
    html = await dashboard(member)
    block = meter_html(html, "tokens")
    assert 'data-level="warning"' in block and "progress-warning" in block
    assert "Running low" in block  # colour is never the only signal
    assert "78,000</strong> / 100,000" in block and "78 %" in block
    assert 'data-testid="upgrade-prompt"' not in html


async def test_at_80_percent_the_upgrade_prompt_links_to_plans(member: Member, api) -> None:
    await record(api, member.external_id, count=16)
    html = await dashboard(member)
    assert aria_now(html, "ai_requests") == "80"
    prompt = html[html.index('data-testid="upgrade-prompt"') :]
    assert "80 % of your AI requests today" in prompt
    assert "Pro includes 1,000 AI requests a month." in prompt
    assert 'href="/billing/upgrade"' in prompt
    assert 'data-testid="quota-exhausted"' not in html


async def test_above_90_percent_is_danger(member: Member, api) -> None:
    await record(api, member.external_id, count=19)
    html = await dashboard(member)
    block = meter_html(html, "ai_requests")
    assert 'data-level="danger"' in block and "progress-danger" in block
    assert "Almost used up" in block and "95 %" in block
    assert 'data-testid="upgrade-prompt"' in html


async def test_exhausted_panel_explains_and_offers_upgrade_and_credits(member: Member, api) -> None:
    await record(api, member.external_id, count=20)
    html = await dashboard(member)
    panel = html[html.index('data-testid="quota-exhausted"') : html.index('class="meter-list"')]
    assert "You have used all your AI requests for today" in panel
    assert "Resets daily at 00:00 UTC" in panel
    assert 'action="/billing/checkout"' in panel and 'name="plan" value="pro"' in panel
    assert 'name="interval" value="month"' in panel and "_csrf_token" in panel
    assert "Buy credits" in panel and 'href="/billing/credits#buy"' in panel
    assert "View plans" in panel
    assert "Used up" in meter_html(html, "ai_requests")
    assert 'width="100.0%"' in meter_html(html, "ai_requests")


async def test_credits_keep_a_full_quota_from_being_exhausted(member: Member, api) -> None:
    await grant(api, member.external_id, 10)
    await record(api, member.external_id, count=23)
    html = await dashboard(member)
    block = meter_html(html, "ai_requests")
    assert "<strong>20</strong> / 20" in block  # the bar counts the included quota
    assert "7 credits left (3 used today)" in block
    assert 'data-testid="quota-exhausted"' not in html
    assert 'data-testid="upgrade-prompt"' in html


async def test_unlimited_meter_has_no_bar(member: Member, api, session: AsyncSession) -> None:
    await set_subscription(session, member.customer_id, plan_slug="business")
    await record(api, member.external_id, count=3)
    html = await dashboard(member)
    block = meter_html(html, "ai_requests")
    assert "Unlimited" in block and "<strong>3</strong> used" in block
    assert 'role="progressbar"' not in block
    assert 'role="progressbar"' in meter_html(html, "tokens")
    assert "Business" in html[html.index('data-testid="current-plan"') :][:200]


async def test_trialing_shows_days_left(member: Member, session: AsyncSession) -> None:
    trial_end = in_days(2) - (in_days(0) - in_days(-1 / 24))  # 1 h 59 min short of 2 days
    await set_subscription(
        session,
        member.customer_id,
        plan_slug="pro",
        status="trialing",
        trial_end=trial_end,
        current_period_start=in_days(-12),
        current_period_end=in_days(2),
        stripe_subscription_id="sub_trial",
    )
    html = await dashboard(member)
    assert "Trial ends soon" in html[html.index('data-testid="plan-status"') :][:80]
    assert plan_state_of(html) == (
        "trial_ending",
        f"Your free trial ends in 2 days, on {format_date(trial_end)}; then $29 a month.",
    )
    assert 'data-testid="past-due-banner"' not in html


async def test_active_paid_plan_shows_renewal_and_cancel(
    member: Member, session: AsyncSession
) -> None:
    end = in_days(20)
    await set_subscription(
        session,
        member.customer_id,
        plan_slug="pro",
        status="active",
        current_period_start=in_days(-10),
        current_period_end=end,
        stripe_subscription_id="sub_active",
    )
    html = await dashboard(member)
    assert plan_state_of(html) == ("active", f"Renews on {format_date(end)} at $29 a month.")
    assert 'href="/billing/subscription/cancel"' in html  # to the confirm page (test_confirm)


async def test_plans_page_says_which_choice_ends_a_trial(
    member: Member, session: AsyncSession
) -> None:
    await set_subscription(
        session,
        member.customer_id,
        plan_slug="pro",
        status="trialing",
        trial_end=in_days(10),
        current_period_start=in_days(-4),
        current_period_end=in_days(10),
        stripe_subscription_id="sub_trial",
    )
    html = (await member.client.get("/billing/upgrade")).text
    note = html[html.index('data-testid="ends-trial-business"') :]
    assert "ends yours, and $149 is charged today" in note[:300]
    assert 'data-testid="ends-trial-pro"' not in html  # Pro yearly keeps the trial


async def test_past_due_banner_links_to_payment_methods(
    member: Member, session: AsyncSession
) -> None:
    await set_subscription(
        session, member.customer_id, plan_slug="pro", status="past_due", stripe_subscription_id="s"
    )
    html = await dashboard(member)
    banner = html[html.index('data-testid="past-due-banner"') :][:400]
    assert 'role="alert"' in html[html.index('data-testid="past-due-banner"') - 80 :][:120]
    assert "payment failed" in banner and 'href="/billing/payment-methods"' in banner
    assert "Payment failed" in html[html.index('data-testid="plan-status"') :][:80]


async def test_canceling_shows_end_date_and_resume(member: Member, session: AsyncSession) -> None:
    end = in_days(9)
    await set_subscription(
        session,
        member.customer_id,
        plan_slug="pro",
        status="active",
        cancel_at_period_end=True,
        current_period_start=in_days(-21),
        current_period_end=end,
        stripe_subscription_id="sub_cancel",
    )
    html = await dashboard(member)
    assert "Canceling" in html[html.index('data-testid="plan-status"') :][:80]
    assert plan_state_of(html) == (
        "canceling",
        f"Canceled: you keep Pro until {format_date(end)}, then move to Free. "
        "Nothing more is charged.",
    )
    assert 'action="/billing/subscription/resume"' in html
    assert "/billing/subscription/cancel" not in html
    assert "Renews on" not in html


# One state line per situation (issue 21, item 5): the card shows exactly one sentence, and
# none of the others' words (a canceling trial used to show four stories at once).
PLAN_CARD_STATES: list[tuple[str, dict[str, Any], str, str, tuple[str, ...]]] = [
    (
        "canceling trial",
        {
            "plan_slug": "pro",
            "status": "trialing",
            "trial_end": in_days(14),
            "current_period_end": in_days(14),
            "cancel_at_period_end": True,
            "stripe_subscription_id": "sub_ct",
        },
        "canceling",
        "Canceling",
        ("Free trial", "$29 a month", "Renews on", "days left"),
    ),
    (
        "trialing",
        {
            "plan_slug": "pro",
            "status": "trialing",
            "trial_end": in_days(10.5),
            "current_period_end": in_days(10.5),
            "stripe_subscription_id": "sub_t",
        },
        "trialing",
        "Trial",
        ("Renews on", "Canceled"),
    ),
    (
        "past due",
        {"plan_slug": "pro", "status": "past_due", "stripe_subscription_id": "sub_pd"},
        "past_due",
        "Payment failed",
        ("Renews on", "Free trial"),
    ),
    (
        "paused",
        {"plan_slug": "pro", "status": "paused", "stripe_subscription_id": "sub_p"},
        "paused",
        "Paused",
        ("Renews on", "$29 a month"),
    ),
    (
        "ended",
        {
            "canceled_at": in_days(-2),
            "metadata_": {"last_stripe_subscription_id": "sub_0", "ended_status": "canceled"},
        },
        "ended",
        "",
        ("Renews on", "Canceling"),
    ),
    # The plan's name says it: no "Free" badge beside "Free".
    ("free", {}, "free", "", ("Renews on", "Canceling", "Free trial", "plan-status")),
]


@pytest.mark.parametrize(
    ("values", "kind", "badge", "absent"),
    [case[1:] for case in PLAN_CARD_STATES],
    ids=[case[0] for case in PLAN_CARD_STATES],
)
async def test_plan_card_has_one_state_line(
    member: Member,
    session: AsyncSession,
    values: dict[str, Any],
    kind: str,
    badge: str,
    absent: tuple[str, ...],
) -> None:
    if values:
        await set_subscription(session, member.customer_id, **values)
    html = await dashboard(member)
    card = html[html.index('aria-labelledby="plan-title"') : html.index('id="meters"')]
    assert plan_state_of(html)[0] == kind
    assert not badge or f'data-testid="plan-status">{badge}<' in card
    for words in absent:
        assert words not in card, (words, card)
    # The Stripe customer portal repeated this page (item 8): the app links to none.
    assert "Manage in Stripe" not in html and "/billing/portal" not in html


async def test_plans_page_offers_a_trial_only_to_who_checkout_gives_one(
    member: Member, session: AsyncSession
) -> None:
    """The trial badge and button follow Checkout's rule (billing.rules.trial_eligible)."""
    html = (await member.client.get("/billing/upgrade")).text
    assert 'data-testid="trial-offer-pro"' in html and "Start 14-day free trial" in html
    await set_subscription(
        session,
        member.customer_id,
        canceled_at=in_days(-30),
        metadata_={"last_stripe_subscription_id": "sub_old", "ended_status": "canceled"},
    )
    html = (await member.client.get("/billing/upgrade")).text
    assert "free trial" not in html.lower()
    assert "Upgrade to Pro" in html


async def test_dashboard_lists_recent_invoices_and_default_card(
    member: Member, session: AsyncSession
) -> None:
    for n in range(5):
        await add_invoice(session, member.customer_id, n)
    await add_card(session, member.customer_id, "4242", default=True)
    html = await dashboard(member)
    assert html.count("$29.00</span>") == 3
    assert "All invoices (5)" in html
    assert "<strong>Visa</strong> •••• 4242" in html
    assert 'data-testid="invoices-empty"' not in html and 'data-testid="cards-empty"' not in html


async def test_usage_chart_shows_todays_total(member: Member, api) -> None:
    await record(api, member.external_id, count=4)
    response = await member.client.get("/billing/chart", headers=HX)
    assert response.status_code == 200
    html = response.text
    assert html.lstrip().startswith('<section id="usage-chart"')
    chart = html[html.index('data-testid="chart-ai_requests"') :].split("</figure>")[0]
    # The free plan's AI requests reset daily: the chart is the last 7 days, with the limit.
    assert "4 today" in chart and "Last 7 days · limit 20 a day" in chart
    assert "4 AI requests today of 20 a day" in chart
    assert 'class="chart-bar"' in chart and 'data-value="4"' in chart
    assert 'class="bp-chart-limit"' in chart
    assert "<td>" in chart  # the "Show as table" rows
    # API calls reset with the billing period, and none were used: the empty state.
    calls = html[html.index('data-testid="chart-api_calls"') :].split("</figure>")[0]
    assert "No usage yet" in calls and "No API calls used yet in this period." in calls
    assert 'class="chart-bar"' not in calls


# --- the live meters partial ----------------------------------------------------------------


async def test_meters_partial_for_htmx_and_204_when_unchanged(member: Member, api) -> None:
    response = await member.client.get("/billing/meters", headers=HX)
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="meters"')
    assert "<html" not in response.text
    assert response.headers["vary"] == "HX-Request"
    version = re.search(r'data-version="(\w+)"', response.text).group(1)
    # Polls; paused while the tab is hidden by static/app.js (the CSP allows no eval'd filter).
    assert 'hx-trigger="every 3s, page-visible from:body' in response.text
    assert "data-poll-visible" in response.text

    same = await member.client.get(f"/billing/meters?v={version}", headers=HX)
    assert same.status_code == 204 and same.text == ""

    await record(api, member.external_id)
    changed = await member.client.get(f"/billing/meters?v={version}", headers=HX)
    assert changed.status_code == 200
    assert changed.headers["hx-trigger-after-settle"] == "meters-updated"
    assert "<strong>1</strong> / 20" in changed.text


async def test_meters_url_without_htmx_is_the_full_page(member: Member) -> None:
    response = await member.client.get("/billing/meters")
    assert response.status_code == 200
    assert "<html" in response.text and 'id="meters"' in response.text


async def test_try_it_htmx_returns_partial_and_triggers_refresh(member: Member) -> None:
    token = await member.csrf()
    response = await member.client.post(
        "/billing/try", data={"_csrf_token": token}, headers={**HX, "x-csrftoken": token}
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="meters"')
    assert response.headers["hx-trigger-after-settle"] == "usage-changed"
    assert "<strong>1</strong> / 20" in response.text
    # The result goes under the button, into the live region that stays in the page.
    result = response.text[response.text.index('id="try-result"') :]
    assert 'hx-swap-oob="innerHTML"' in result[:200] and 'data-testid="try-result"' in result
    assert 'id="try-action" hx-swap-oob="true"' in response.text
    assert 'data-testid="try-reason"' not in response.text


async def test_try_it_without_js_redirects_and_flashes(member: Member) -> None:
    token = await member.csrf()
    response = await member.client.post(
        "/billing/try", data={"_csrf_token": token}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/billing"
    html = await dashboard(member)
    assert "The fake AI answered" in html
    assert "<strong>1</strong> / 20" in meter_html(html, "ai_requests")


async def test_try_it_when_exhausted_shows_the_panel_not_an_error(member: Member, api) -> None:
    await record(api, member.external_id, count=20)
    token = await member.csrf()
    response = await member.client.post(
        "/billing/try", data={"_csrf_token": token}, headers={**HX, "x-csrftoken": token}
    )
    assert response.status_code == 200
    assert 'data-testid="quota-exhausted"' in response.text
    assert "did not run" in response.text
    assert re.search(
        r'data-testid="try-it"\s+disabled aria-describedby="try-reason"', response.text
    )
    plain = await member.client.post(
        "/billing/try", data={"_csrf_token": token}, follow_redirects=False
    )
    assert plain.status_code == 303
    assert "<strong>20</strong> / 20" in meter_html(await dashboard(member), "ai_requests")


async def test_try_it_is_disabled_with_the_reason_at_100_percent(member: Member, api) -> None:
    """Issue 21 item 6: no button that can only fail; it says why and what to do."""
    html = await dashboard(member)
    version = re.search(r'data-version="([^"]+)"', html)
    assert version and re.search(r'data-testid="try-it">', html)  # enabled
    await record(api, member.external_id, count=20)
    html = await dashboard(member)
    assert re.search(r'data-testid="try-it"\s+disabled aria-describedby="try-reason"', html)
    reason = html[html.index('data-testid="try-reason"') :].split("</p>")[0]
    assert "Quota used up" in reason and "upgrade, or wait until" in reason
    assert "00:00 UTC" in reason and 'href="/billing/upgrade"' in reason
    assert 'id="try-result" role="status" aria-live="polite"' in html
    # An open page learns it from the meters poll: the button comes along, out of band.
    poll = await member.client.get(f"/billing/meters?v={version.group(1)}", headers=HX)
    assert poll.status_code == 200
    assert 'id="try-action" hx-swap-oob="true"' in poll.text
    assert 'data-testid="try-reason"' in poll.text
    assert 'id="try-result"' not in poll.text  # the last result stays where it is


async def test_try_it_needs_csrf(member: Member) -> None:
    response = await member.client.post("/billing/try", follow_redirects=False)
    assert response.status_code == 403
    assert "<strong>0</strong> / 20" in meter_html(await dashboard(member), "ai_requests")


# --- other pages ----------------------------------------------------------------------------


async def test_upgrade_page_monthly(member: Member) -> None:
    response = await member.client.get("/billing/upgrade")
    assert response.status_code == 200
    html = response.text
    free = html[html.index('data-testid="plan-free"') : html.index('data-testid="plan-pro"')]
    assert "Current plan" in free and "checkout-free" not in free
    pro = html[html.index('data-testid="plan-pro"') : html.index('data-testid="plan-business"')]
    assert 'data-testid="checkout-pro-monthly"' in pro
    assert 'name="plan" value="pro"' in pro and 'name="interval" value="month"' in pro
    assert 'action="/billing/checkout"' in pro and "_csrf_token" in pro
    assert "14-day free trial" in pro and "$29</strong> / month" in pro
    assert "AI requests</th><td>1,000 a month" in pro
    business = html[html.index('data-testid="plan-business"') :]
    assert "AI requests</th><td>Unlimited" in business
    assert 'data-testid="checkout-business-monthly"' in business
    assert "guest" not in html.lower()
    assert 'aria-current="page"' in html[html.index('data-testid="interval-month"') - 300 :][:600]


async def test_upgrade_page_yearly_shows_savings(member: Member, session: AsyncSession) -> None:
    await set_subscription(
        session, member.customer_id, plan_slug="pro", interval="month", stripe_subscription_id="s"
    )
    html = (await member.client.get("/billing/upgrade?interval=year")).text
    pro = html[html.index('data-testid="plan-pro"') : html.index('data-testid="plan-business"')]
    assert "$290</strong> / year" in pro and "save $58 a year" in pro
    # $290 / 12 = $24.1667: rounded half up to the cent, not truncated to $24.16.
    assert "$24.17 a month, billed yearly" in pro
    assert 'data-testid="checkout-pro-yearly"' in pro and "Switch to yearly billing" in pro
    assert "Current plan" in pro
    assert 'data-testid="checkout-business-yearly"' in html and "save $298 a year" in html
    assert "$124.17 a month, billed yearly" in html  # $1,490 / 12 = $124.1667
    assert "100,000 a month, then $0.01 per call" in html  # Business bills API calls beyond
    assert "save up to 17 %" in html


async def test_upgrade_interval_switch_is_a_partial_for_htmx(member: Member) -> None:
    response = await member.client.get("/billing/upgrade?interval=year", headers=HX)
    assert response.text.lstrip().startswith('<div id="plans">')
    assert "<html" not in response.text
    boosted = await member.client.get(
        "/billing/upgrade?interval=year", headers={**HX, "HX-Boosted": "true"}
    )
    assert "<html" in boosted.text


async def test_credits_page_packs_and_ledger(member: Member, api) -> None:
    empty = (await member.client.get("/billing/credits")).text
    assert 'data-testid="ledger-empty"' in empty and 'data-testid="credits-none"' in empty
    for slug in ("ai_100", "ai_500"):
        pack = empty[empty.index(f'data-testid="pack-{slug}"') :][:900]
        assert 'action="/billing/credits/checkout"' in pack
        assert f'name="pack" value="{slug}"' in pack and "_csrf_token" in pack
    assert "$10" in empty and "valid for 365 days" in empty

    await grant(
        api, member.external_id, 10, reason="Welcome gift", expires_at=in_days(30).isoformat()
    )
    await record(api, member.external_id, count=22)
    html = (await member.client.get("/billing/credits")).text
    ledger = html[html.index('data-testid="credit-ledger"') :]
    assert "Granted" in ledger and "+10" in ledger and "Welcome gift" in ledger
    assert "Used" in ledger and "−1" in ledger
    assert f"{in_days(30):%b %-d, %Y}" in ledger
    assert "8 left" in html[html.index('data-testid="credits-ai_requests"') :][:200]


async def test_invoices_are_paginated_with_links(member: Member, session: AsyncSession) -> None:
    for n in range(25):
        await add_invoice(session, member.customer_id, n, total=1000 + n)
    await add_invoice(session, member.customer_id, 99, status="draft", number="DRAFT-1")
    first = (await member.client.get("/billing/invoices")).text
    assert first.count('data-testid="invoice-in_') == 20
    newest = f"INV-{member.customer_id}-0024"
    assert newest in first and f"INV-{member.customer_id}-0004" not in first
    assert "DRAFT-1" not in first
    # Each row links to its own page (which links to Stripe's hosted invoice) and its PDF.
    newest_id = re.search(r'data-testid="invoice-(in_[^"]+)"', first).group(1)
    assert f'href="/billing/invoices/{newest_id}"' in first
    assert f'href="https://invoice.example/{member.customer_id}/24.pdf"' in first
    assert "$10.24" in first and "Paid" in first and "Page 1 of 2" in first
    second = await member.client.get("/billing/invoices?page=2", headers=HX)
    assert second.text.lstrip().startswith('<section id="invoices"')
    assert second.text.count('data-testid="invoice-in_') == 5
    assert f"INV-{member.customer_id}-0000" in second.text
    junk = (await member.client.get("/billing/invoices?page=abc")).text
    assert "Page 1 of 2" in junk
    past_end = (await member.client.get("/billing/invoices?page=99")).text
    assert "Page 2 of 2" in past_end


async def test_invoices_empty_state(member: Member) -> None:
    html = (await member.client.get("/billing/invoices")).text
    assert 'data-testid="invoices-empty"' in html and "after your first payment" in html


async def test_payment_methods_default_and_remove_rules(
    member: Member, session: AsyncSession
) -> None:
    empty = (await member.client.get("/billing/payment-methods")).text
    assert 'data-testid="cards-empty"' in empty
    assert 'action="/billing/payment-methods/add"' in empty

    await set_subscription(
        session, member.customer_id, plan_slug="pro", status="active", stripe_subscription_id="s"
    )
    only = await add_card(session, member.customer_id, "4242", default=True)
    html = (await member.client.get("/billing/payment-methods")).text
    assert "•••• 4242" in html and 'data-testid="card-default"' in html
    assert f"/billing/payment-methods/{only.stripe_payment_method_id}/remove" not in html
    assert 'data-testid="cannot-remove"' in html and "disabled" in html

    other = await add_card(
        session, member.customer_id, "0005", brand="mastercard", exp_month=1, exp_year=2020
    )
    html = (await member.client.get("/billing/payment-methods")).text
    assert f'action="/billing/payment-methods/{other.stripe_payment_method_id}/default"' in html
    assert f'action="/billing/payment-methods/{only.stripe_payment_method_id}/default"' not in html
    assert f'href="/billing/payment-methods/{only.stripe_payment_method_id}/remove"' in html
    assert "expires 01/2020" in html and "Expired" in html and "Mastercard" in html
    assert 'data-testid="cannot-remove"' not in html


async def test_last_card_can_be_removed_on_the_free_plan(
    member: Member, session: AsyncSession
) -> None:
    card = await add_card(session, member.customer_id, "4242", default=True)
    html = (await member.client.get("/billing/payment-methods")).text
    assert f'href="/billing/payment-methods/{card.stripe_payment_method_id}/remove"' in html


async def test_pages_need_a_login(client) -> None:
    for path in (
        "/billing",
        "/billing/meters",
        "/billing/chart",
        "/billing/upgrade",
        "/billing/credits",
        "/billing/invoices",
        "/billing/payment-methods",
        "/billing/payment-methods/pm_any/remove",
        "/billing/subscription/cancel",
    ):
        response = await client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next="), path
