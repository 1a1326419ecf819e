"""Invitations: emailed through the outbox, for the invited address only, once, for 7 days,
withdrawn by an owner; accepting joins with the invited role and shows the organization."""

from __future__ import annotations

import re
from datetime import timedelta

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.customers.models import Membership
from app.lib.clock import utcnow
from app.notifications.models import EmailOutboxMessage
from app.organizations.models import Invitation
from app.organizations.service import hash_token
from tests.integration.organizations.conftest import Person, Team, log_in, make_user

_LINK = re.compile(r"http://testserver\.local(/invitations/[A-Za-z0-9_-]+)")


async def invite(team: Team, email: str, role: str = "member") -> None:
    response = await team.owner.post("/billing/team/invite", {"email": email, "role": role})
    assert response.status_code == 303, response.text


async def link_for(session: AsyncSession, email: str) -> str:
    await session.rollback()
    message = await session.scalar(
        select(EmailOutboxMessage)
        .where(EmailOutboxMessage.to_address == email, EmailOutboxMessage.kind == "invitation")
        .order_by(EmailOutboxMessage.id.desc())
    )
    assert message is not None, f"no invitation email to {email}"
    found = _LINK.search(message.text_body)
    assert found and found.group(1) in message.html_body
    return found.group(1)


async def newcomer(
    client: AsyncTestClient[Litestar], session: AsyncSession, name: str = "nina"
) -> tuple[Person, str]:
    user = await make_user(session, client, name)
    personal = await session.scalar(
        select(Membership.customer_id).where(Membership.user_id == user.id)
    )
    from app.customers.models import Customer

    customer = await session.get(Customer, personal)
    assert customer is not None
    return Person(
        await log_in(client, user, customer), user.email, user.id, customer.id
    ), user.email


async def test_invite_email_accept_and_join_as_the_role(
    team: Team, client: AsyncTestClient[Litestar], session: AsyncSession
) -> None:
    nina, email = await newcomer(client, session)
    await invite(team, email, "billing_admin")
    await session.rollback()
    row = await session.scalar(select(Invitation).where(Invitation.email == email))
    assert row is not None and row.accepted_at is None
    assert row.expires_at - row.created_at == timedelta(days=7)
    token_hash = row.token_hash
    link = await link_for(session, email)
    assert link.removeprefix("/invitations/") != token_hash  # only a hash is stored
    assert hash_token(link.removeprefix("/invitations/")) == token_hash

    message = await session.scalar(
        select(EmailOutboxMessage).where(EmailOutboxMessage.to_address == email)
    )
    assert (
        message is not None and "Acme" in message.subject and "billing admin" in message.text_body
    )

    team_page = await team.owner.client.get("/billing/team")
    assert email in team_page.text  # pending

    shown = await nina.client.get(link)
    assert shown.status_code == 200 and "Join Acme" in shown.text
    accepted = await nina.post(link)
    assert accepted.status_code == 303 and accepted.headers["location"] == "/billing"
    # Now in Acme, as billing admin, shown Acme's billing: payment methods allowed.
    assert (await nina.client.get("/billing/payment-methods")).status_code == 200
    await session.rollback()
    role = await session.scalar(
        select(Membership.role).where(
            Membership.user_id == nina.user_id, Membership.customer_id == team.org.id
        )
    )
    assert role == "billing_admin"
    # Single use: the same link again (by anyone) is refused.
    again = await nina.post(link)
    assert again.status_code == 404 and "already accepted" in again.text


async def test_the_invited_address_only(
    team: Team, client: AsyncTestClient[Litestar], session: AsyncSession
) -> None:
    await invite(team, "someone-else@example.com")
    link = await link_for(session, "someone-else@example.com")
    shown = await team.outsider.client.get(link)
    assert shown.status_code == 200 and 'data-testid="invitation-wrong-email"' in shown.text
    refused = await team.outsider.post(link)
    assert refused.status_code == 403 and "someone-else@example.com" in refused.text
    await session.rollback()
    assert (
        await session.scalar(
            select(Membership).where(
                Membership.user_id == team.outsider.user_id,
                Membership.customer_id == team.org.id,
            )
        )
    ) is None
    # The link still works for its person afterwards (a wrong click does not use it up).
    invitation = await session.scalar(
        select(Invitation).where(Invitation.email == "someone-else@example.com")
    )
    assert invitation is not None and invitation.accepted_at is None


async def test_logged_out_goes_to_login_and_back(team: Team, client, session) -> None:  # type: ignore[no-untyped-def]
    await invite(team, "later@example.com")
    link = await link_for(session, "later@example.com")
    response = await client.get(link, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=/invitations/")


async def test_expired_and_revoked_and_replaced(
    team: Team, client: AsyncTestClient[Litestar], session: AsyncSession
) -> None:
    nina, email = await newcomer(client, session)
    await invite(team, email)
    first = await link_for(session, email)
    await invite(team, email)  # sent again: only the newest link works
    second = await link_for(session, email)
    assert first != second
    assert (await nina.client.get(first)).status_code == 404

    await session.execute(
        update(Invitation)
        .where(Invitation.email == email, Invitation.revoked_at.is_(None))
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    await session.commit()
    expired = await nina.post(second)
    assert expired.status_code == 404 and "expired" in expired.text

    await invite(team, email)
    third = await link_for(session, email)
    await session.rollback()
    pending = await session.scalar(
        select(Invitation).where(
            Invitation.email == email,
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > utcnow(),
        )
    )
    assert pending is not None
    withdrawn = await team.owner.post(f"/billing/team/invitations/{pending.id}/revoke")
    assert withdrawn.status_code == 303
    refused = await nina.post(third)
    assert refused.status_code == 404 and "withdrawn" in refused.text
    assert (await nina.client.get("/billing/payment-methods")).status_code == 200  # own org

    # Someone else's invitation id is nothing to an owner of another organization.
    await invite(team, "x@example.com")
    await session.rollback()
    other = await session.scalar(select(Invitation).where(Invitation.email == "x@example.com"))
    assert other is not None
    assert (
        await team.outsider.post(f"/billing/team/invitations/{other.id}/revoke")
    ).status_code == 404


async def test_only_owners_invite_and_members_are_not_invited_twice(team: Team) -> None:
    for person in (team.billing_admin, team.member):
        response = await person.post(
            "/billing/team/invite", {"email": "a@example.com", "role": "owner"}
        )
        assert response.status_code == 403
    again = await team.owner.post(
        "/billing/team/invite", {"email": team.member.email, "role": "member"}
    )
    assert again.status_code == 303
    page = await team.owner.client.get("/billing/team")
    assert "already a member" in page.text
    bad = await team.owner.post("/billing/team/invite", {"email": "b@example.com", "role": "boss"})
    assert bad.status_code == 303
    assert "Role must be one of" in (await team.owner.client.get("/billing/team")).text
