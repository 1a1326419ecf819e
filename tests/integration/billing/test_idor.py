"""A second user reaches none of the first user's billing pages, partials or actions."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.billing.models import PaymentMethod
from app.customers.models import Membership
from tests.integration.billing.conftest import (
    HX,
    Member,
    add_card,
    add_invoice,
    grant,
    record,
)

PAGES = [
    "/billing",
    "/billing/meters",
    "/billing/chart",
    "/billing/upgrade",
    "/billing/credits",
    "/billing/invoices",
    "/billing/invoices?page=2",
    "/billing/payment-methods",
]


def _without_random_ids(html: str) -> str:
    """The page minus CSRF tokens and UUIDs, whose random hex can contain a 4-digit marker
    (a token with "5555" in it once failed this test)."""
    return re.sub(r"[0-9a-f]{8,}(?:-[0-9a-f]{4,})*", "", html)


@pytest.fixture
async def victim(member: Member, api, session: AsyncSession) -> dict[str, str]:
    """Ada with usage, credits, invoices and cards whose markers must never reach Eve."""
    await record(api, member.external_id, count=17)
    await record(api, member.external_id, "tokens", tokens=54_321)
    await grant(api, member.external_id, 7, reason="Ada-only goodwill")
    for n in range(22):
        await add_invoice(session, member.customer_id, n, number=f"ADA-INV-{n:03d}", total=4321)
    card = await add_card(session, member.customer_id, "9876", default=True)
    spare = await add_card(session, member.customer_id, "5555")
    return {
        "card": card.stripe_payment_method_id,
        "spare": spare.stripe_payment_method_id,
        "external_id": member.external_id,
    }


async def test_other_user_sees_only_their_own_data(
    victim: dict[str, str], member: Member, other_member: Member
) -> None:
    markers = [
        "ADA-INV-",
        "9876",
        "5555",
        victim["card"],
        "Ada-only goodwill",
        "54,321",
        "$43.21",
        member.email,
        victim["external_id"],
    ]
    for path in PAGES:
        for headers in ({}, HX):
            response = await other_member.client.get(path, headers=headers)
            assert response.status_code in (200, 204), (path, response.status_code)
            for marker in markers:
                assert marker not in _without_random_ids(response.text), (path, marker)
    # The owner does see them (so the markers are real).
    own = (await member.client.get("/billing/invoices")).text
    assert "ADA-INV-021" in own
    assert "9876" in (await member.client.get("/billing/payment-methods")).text
    assert "<strong>17</strong> / 20" in (await member.client.get("/billing")).text


async def test_other_users_card_actions_are_refused(
    victim: dict[str, str], other_member: Member, session: AsyncSession
) -> None:
    token = await other_member.csrf()
    for action in ("default", "remove"):
        for card in (victim["card"], victim["spare"]):
            response = await other_member.client.post(
                f"/billing/payment-methods/{card}/{action}",
                data={"_csrf_token": token},
                follow_redirects=False,
            )
            assert response.status_code in (403, 404), (action, response.status_code)
            text = _without_random_ids(response.text)
            assert "9876" not in text and "5555" not in text
    await session.rollback()
    cards = {
        pm.stripe_payment_method_id: pm
        for pm in await session.scalars(
            select(PaymentMethod).where(
                PaymentMethod.stripe_payment_method_id.in_([victim["card"], victim["spare"]])
            )
        )
    }
    assert set(cards) == {victim["card"], victim["spare"]}
    assert cards[victim["card"]].is_default and not cards[victim["spare"]].is_default


async def test_other_users_cards_have_no_confirm_page(
    victim: dict[str, str], member: Member, other_member: Member
) -> None:
    for card in (victim["card"], victim["spare"]):
        path = f"/billing/payment-methods/{card}/remove"
        for headers in ({}, HX):
            response = await other_member.client.get(path, headers=headers)
            assert response.status_code == 404, (path, response.status_code)
            text = _without_random_ids(response.text)
            assert "9876" not in text and "5555" not in text and card not in response.text
            assert 'data-testid="confirm-submit"' not in response.text
        # The owner gets the page (so the ids are real).
        own = await member.client.get(path)
        assert own.status_code == 200 and 'data-testid="confirm-submit"' in own.text


async def test_try_it_only_touches_the_callers_usage(
    victim: dict[str, str], member: Member, other_member: Member
) -> None:
    token = await other_member.csrf()
    response = await other_member.client.post(
        "/billing/try", data={"_csrf_token": token}, headers={**HX, "x-csrftoken": token}
    )
    assert response.status_code == 200
    assert "<strong>1</strong> / 20" in response.text
    assert "<strong>17</strong> / 20" in (await member.client.get("/billing")).text


async def test_a_login_without_a_customer_gets_404_not_someone_elses_page(
    member: Member, session: AsyncSession
) -> None:
    # A member of no organization (the billing account is reached through memberships).
    await session.execute(delete(Membership).where(Membership.customer_id == member.customer_id))
    await session.commit()
    for path in PAGES:
        response = await member.client.get(path)
        assert response.status_code == 404, path
