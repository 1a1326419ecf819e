"""Deleting an account with organizations (app/privacy/deletion.py): the organizations the
user solely owns go with them, but not while other people belong to one (ownership is
transferred first); an organization with another owner stays, without the user."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.customers.models import Customer, Membership
from tests.integration.organizations.conftest import Team


async def delete(person, mode: str = "now"):  # type: ignore[no-untyped-def]
    return await person.post("/account/delete", {"password": "", "code": "", "mode": mode})


async def test_a_sole_owner_with_members_transfers_first(team: Team, session: AsyncSession) -> None:
    page = await team.owner.client.get("/account/delete")
    assert 'data-testid="delete-shared"' in page.text and "Acme" in page.text
    refused = await delete(team.owner)
    assert refused.status_code == 409 and "You are the only owner of Acme" in refused.text
    await session.rollback()
    assert await session.get(User, team.owner.user_id) is not None

    moved = await team.owner.post(f"/billing/team/members/{team.billing_admin.user_id}/transfer")
    assert moved.status_code == 303
    deleted = await delete(team.owner)
    assert deleted.status_code == 303, deleted.text
    await session.rollback()
    assert await session.get(User, team.owner.user_id) is None
    acme = await session.get(Customer, team.org.id)
    assert acme is not None and acme.deleted_at is None and acme.name == "Acme"  # kept
    members = set(
        await session.scalars(select(Membership.user_id).where(Membership.customer_id == acme.id))
    )
    assert members == {team.billing_admin.user_id, team.member.user_id}
    assert (await team.billing_admin.client.get("/billing/payment-methods")).status_code == 200


async def test_a_member_leaves_their_organizations_untouched(
    team: Team, session: AsyncSession
) -> None:
    deleted = await delete(team.member)
    assert deleted.status_code == 303, deleted.text
    await session.rollback()
    acme = await session.get(Customer, team.org.id)
    assert acme is not None and acme.deleted_at is None
    personal = await session.get(Customer, team.member.personal_id)
    assert personal is not None and personal.deleted_at is not None  # theirs alone: gone
    assert (await team.owner.client.get("/billing/team")).status_code == 200
