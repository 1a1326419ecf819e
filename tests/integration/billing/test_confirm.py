"""The confirm step before "Cancel plan" and "Remove" card: a GET page that says what the POST
will do, and refuses, in the POST's own words, what the POST would refuse."""

from __future__ import annotations

import re

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.rules import KEEP_LAST_CARD, NOTHING_TO_CANCEL
from tests.integration.billing.conftest import Member, add_card, in_days, set_subscription
from tests.integration.stripe.conftest import flashes

CANCEL = "/billing/subscription/cancel"


def confirm_form(html: str, action: str) -> str:
    """The confirm page's form posting to `action` (asserts there is exactly one)."""
    forms = re.findall(rf'<form method="post" action="{re.escape(action)}">.*?</form>', html, re.S)
    assert len(forms) == 1, forms
    return forms[0]


async def post(member: Member, path: str) -> httpx.Response:
    token = await member.csrf()
    return await member.client.post(path, data={"_csrf_token": token}, follow_redirects=False)


async def subscribe(session: AsyncSession, member: Member, status: str = "active") -> None:
    await set_subscription(
        session,
        member.customer_id,
        plan_slug="pro",
        status=status,
        trial_end=in_days(20) if status == "trialing" else None,
        current_period_start=in_days(-10),
        current_period_end=in_days(20),
        stripe_subscription_id="sub_confirm",
    )


# --- Cancel plan --------------------------------------------------------------------------


async def test_dashboard_cancel_is_a_link_to_the_confirm_page(
    member: Member, session: AsyncSession
) -> None:
    await subscribe(session, member)
    html = (await member.client.get("/billing")).text
    assert f'href="{CANCEL}" data-testid="cancel-plan">Cancel plan</a>' in html
    assert f'action="{CANCEL}"' not in html  # no longer a one-click POST


async def test_cancel_confirm_page_says_what_happens_and_when(
    member: Member, session: AsyncSession
) -> None:
    await subscribe(session, member)
    end = in_days(20)
    response = await member.client.get(CANCEL)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    html = response.text
    assert "<h1 " in html and "Cancel your Pro plan?</h1>" in html
    summary = html[html.index('data-testid="cancel-keep"') :][:400]
    assert f"You keep <strong>Pro</strong> until <strong>{end:%b %-d, %Y}</strong>" in summary
    assert "(end of the current period); after that you move to <strong>Free</strong>" in summary
    assert "its limits apply" in summary
    limits = html[html.index('data-testid="free-limits"') :][:600]
    assert "AI requests</th><td>20 a day" in limits
    assert 'data-testid="cancel-trial"' not in html and "The plan does not renew." in html
    form = confirm_form(html, CANCEL)
    assert 'name="_csrf_token"' in form
    assert 'class="button button-danger" data-testid="confirm-submit">Cancel plan</button>' in form
    assert 'href="/billing" data-testid="confirm-back">Keep my plan</a>' in form


async def test_cancel_confirm_in_a_trial_says_no_charge(
    member: Member, session: AsyncSession
) -> None:
    await subscribe(session, member, status="trialing")
    html = (await member.client.get(CANCEL)).text
    assert f"until <strong>{in_days(20):%b %-d, %Y}</strong>" in html
    trial = html[html.index('data-testid="cancel-trial"') :][:120]
    assert "Your free trial ends then, with no charge." in trial
    confirm_form(html, CANCEL)


async def test_nothing_to_cancel_gets_the_posts_answer_and_no_button(member: Member) -> None:
    """On the free plan the GET refuses as the POST does: back to /billing, same message."""
    refused = await member.client.get(CANCEL, follow_redirects=False)
    assert refused.status_code == 303 and refused.headers["location"] == "/billing"
    html = (await member.client.get("/billing")).text
    assert flashes(html) == [NOTHING_TO_CANCEL]
    assert 'data-testid="confirm-submit"' not in html and f'href="{CANCEL}"' not in html

    posted = await post(member, CANCEL)
    assert posted.status_code == 303 and posted.headers["location"] == "/billing"
    assert flashes((await member.client.get("/billing")).text) == [NOTHING_TO_CANCEL]


async def test_an_already_canceled_plan_is_not_offered_again(
    member: Member, session: AsyncSession
) -> None:
    await subscribe(session, member)
    await set_subscription(session, member.customer_id, cancel_at_period_end=True)
    html = (await member.client.get(CANCEL)).text  # followed to the dashboard
    assert flashes(html) == ["Your plan is already canceled."]
    assert 'data-state="canceling"' in html and "Keep my plan" in html
    assert 'data-testid="confirm-submit"' not in html


# --- Remove card --------------------------------------------------------------------------


def remove_path(card_id: str) -> str:
    return f"/billing/payment-methods/{card_id}/remove"


async def test_cards_remove_is_a_link_to_the_confirm_page(
    member: Member, session: AsyncSession
) -> None:
    card = await add_card(session, member.customer_id, "4242", default=True)
    html = (await member.client.get("/billing/payment-methods")).text
    assert f'href="{remove_path(card.stripe_payment_method_id)}" data-testid="remove-card"' in html
    assert f'action="{remove_path(card.stripe_payment_method_id)}"' not in html


async def test_remove_confirm_page_shows_the_card(member: Member, session: AsyncSession) -> None:
    await subscribe(session, member)
    default = await add_card(session, member.customer_id, "4242", default=True)
    await add_card(
        session, member.customer_id, "0005", brand="mastercard", exp_month=3, exp_year=2031
    )
    response = await member.client.get(remove_path(default.stripe_payment_method_id))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    html = response.text
    card = html[html.index('data-testid="confirm-card"') :][:400]
    assert "<strong>Visa</strong> •••• 4242" in card and f"expires 12/{default.exp_year}" in card
    assert "•••• 0005" not in html  # the other card (a bare "0005" may be in a CSRF token)
    assert "detached from your account at Stripe" in html
    assert "another one on file becomes the default" in html
    form = confirm_form(html, remove_path(default.stripe_payment_method_id))
    assert 'name="_csrf_token"' in form and "button-danger" in form
    assert 'href="/billing/payment-methods" data-testid="confirm-back"' in form


async def test_the_last_card_on_the_free_plan_can_be_confirmed(
    member: Member, session: AsyncSession
) -> None:
    card = await add_card(
        session, member.customer_id, "1881", brand="amex", exp_month=1, exp_year=2020
    )
    html = (await member.client.get(remove_path(card.stripe_payment_method_id))).text
    assert "<strong>Amex</strong> •••• 1881" in html and "expires 01/2020" in html
    assert "Expired" in html and "It is your only payment method" in html
    confirm_form(html, remove_path(card.stripe_payment_method_id))


async def test_the_only_card_of_a_paid_plan_gets_the_posts_refusal(
    member: Member, session: AsyncSession
) -> None:
    await subscribe(session, member)
    only = await add_card(session, member.customer_id, "4242", default=True)
    path = remove_path(only.stripe_payment_method_id)
    refused = await member.client.get(path, follow_redirects=False)
    assert refused.status_code == 303
    assert refused.headers["location"] == "/billing/payment-methods"
    html = (await member.client.get("/billing/payment-methods")).text
    assert flashes(html) == [KEEP_LAST_CARD]
    assert 'data-testid="confirm-submit"' not in html

    posted = await post(member, path)
    assert posted.status_code == 303
    assert posted.headers["location"] == "/billing/payment-methods"
    html = (await member.client.get("/billing/payment-methods")).text
    assert flashes(html) == [KEEP_LAST_CARD] and "•••• 4242" in html


async def test_an_unknown_card_is_404(member: Member) -> None:
    response = await member.client.get(remove_path("pm_nope"))
    assert response.status_code == 404
    assert 'data-testid="confirm-submit"' not in response.text
