"""The team page's rules: one owner at least, transfer, leave, remove, change role; the
organization switcher; what a member's pages show and hide."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.repository import UserRepository
from app.customers.models import Membership
from tests.integration.billing.conftest import add_card, add_invoice
from tests.integration.organizations.conftest import Team


async def roles(session: AsyncSession, org_id: int) -> dict[int, str]:
    await session.rollback()
    rows = await session.execute(
        select(Membership.user_id, Membership.role).where(Membership.customer_id == org_id)
    )
    return {user_id: role for user_id, role in rows}


async def test_the_last_owner_cannot_leave_be_removed_or_demoted(
    team: Team, session: AsyncSession
) -> None:
    owner = team.owner
    for path, data in (
        ("/billing/team/leave", {}),
        (f"/billing/team/members/{owner.user_id}/remove", {}),
        (f"/billing/team/members/{owner.user_id}/role", {"role": "member"}),
    ):
        response = await owner.post(path, data)
        assert response.status_code == 303, (path, response.text)
        page = await owner.client.get("/billing/team")
        assert "Acme needs an owner" in page.text, path
    assert (await roles(session, team.org.id))[owner.user_id] == "owner"

    # With a second owner, the first may step down, and then leave.
    made = await owner.post(
        f"/billing/team/members/{team.billing_admin.user_id}/role", {"role": "owner"}
    )
    assert made.status_code == 303
    demoted = await owner.post(f"/billing/team/members/{owner.user_id}/role", {"role": "member"})
    assert demoted.status_code == 303
    assert (await roles(session, team.org.id))[owner.user_id] == "member"
    # Now a member: no more team management.
    assert (
        await owner.post(f"/billing/team/members/{team.member.user_id}/remove")
    ).status_code == 403
    left = await owner.post("/billing/team/leave")
    assert left.status_code == 303 and left.headers["location"] == "/billing"
    assert owner.user_id not in await roles(session, team.org.id)
    # Acme was her only organization: a member of none gets the 404 of no billing account.
    gone = await owner.client.get("/billing")
    assert gone.status_code == 404 and "No billing account" in gone.text


async def test_transfer_ownership(team: Team, session: AsyncSession) -> None:
    response = await team.owner.post(f"/billing/team/members/{team.member.user_id}/transfer")
    assert response.status_code == 303
    now = await roles(session, team.org.id)
    assert now[team.member.user_id] == "owner"
    assert now[team.owner.user_id] == "billing_admin"
    # The new owner manages the team; the old one cannot any more.
    assert (
        await team.owner.post(f"/billing/team/members/{team.member.user_id}/remove")
    ).status_code == 403
    removed = await team.member.post(f"/billing/team/members/{team.billing_admin.user_id}/remove")
    assert removed.status_code == 303
    assert team.billing_admin.user_id not in await roles(session, team.org.id)
    # The removed billing admin is back on their own organization: nothing of Acme's.
    page = await team.billing_admin.client.get("/billing/team")
    assert page.status_code == 200 and "Acme" not in page.text


async def test_remove_and_change_role_need_a_member_of_this_organization(team: Team) -> None:
    outsider = team.outsider.user_id
    for path, data in (
        (f"/billing/team/members/{outsider}/remove", {}),
        (f"/billing/team/members/{outsider}/role", {"role": "member"}),
        (f"/billing/team/members/{outsider}/transfer", {}),
    ):
        assert (await team.owner.post(path, data)).status_code == 404, path


async def test_switcher_lists_and_switches_organizations(team: Team, session: AsyncSession) -> None:
    mia = team.member
    page = await mia.client.get("/billing")
    assert 'data-testid="org-switcher"' in page.text
    assert "selected>Acme</option>" in page.text
    # Acme: a member, so no payment methods; her own organization: its owner.
    assert (await mia.client.get("/billing/payment-methods")).status_code == 403
    switched = await mia.post("/org/switch", {"org": str(mia.personal_id)})
    assert switched.status_code == 303 and switched.headers["location"] == "/billing"
    assert (await mia.client.get("/billing/payment-methods")).status_code == 200
    # Not a member of the outsider's organization: no switching there.
    refused = await mia.post("/org/switch", {"org": str(team.outsider.personal_id)})
    assert refused.status_code == 404
    assert (await mia.client.get("/billing/payment-methods")).status_code == 200
    # One organization only: no switcher.
    assert 'data-testid="org-switcher"' not in (await team.outsider.client.get("/billing")).text


async def test_member_sees_plan_and_usage_not_money(team: Team, session: AsyncSession) -> None:
    await add_invoice(session, team.org.id, 1, number="ACME-INV-0001")
    await add_card(session, team.org.id, "4242", default=True)
    member = await team.member.client.get("/billing")
    assert member.status_code == 200
    assert 'data-testid="current-plan"' in member.text and 'id="meters"' in member.text
    for hidden in (
        "ACME-INV",
        "4242",
        "/billing/upgrade",
        "/billing/payment-methods",
        "Cancel plan",
    ):
        assert hidden not in member.text, hidden
    assert "Your role in Acme is member" in member.text
    forbidden = await team.member.client.get("/billing/payment-methods")
    assert forbidden.status_code == 403
    assert "Your role in Acme is member; ask an owner or a billing admin" in forbidden.text
    admin = await team.billing_admin.client.get("/billing")
    assert "recent-invoices-title" in admin.text and "4242" in admin.text
    assert "recent-invoices-title" not in member.text
    assert 'href="/billing/team"' in admin.text
    assert "invite-form" not in (await team.billing_admin.client.get("/billing/team")).text
    assert "invite-form" in (await team.owner.client.get("/billing/team")).text


async def test_the_switcher_list_is_read_only_for_people_in_several(
    team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`retrieve_user` reads the user, the current organization and the role in one
    statement; the switcher's list is a second one, only for someone in two or more."""
    reads: list[int] = []
    organizations = UserRepository.organizations

    async def counted(self: UserRepository, user_id: int) -> Any:
        reads.append(user_id)
        return await organizations(self, user_id)

    monkeypatch.setattr(UserRepository, "organizations", counted)
    assert (await team.outsider.client.get("/billing")).status_code == 200
    assert reads == []  # one organization: no list
    assert (await team.member.client.get("/billing")).status_code == 200
    assert reads == [team.member.user_id]


async def test_two_owners_stepping_down_at_once_leave_one_owner(
    team: Team, session: AsyncSession
) -> None:
    made = await team.owner.post(
        f"/billing/team/members/{team.billing_admin.user_id}/role", {"role": "owner"}
    )
    assert made.status_code == 303
    owners = (team.owner, team.billing_admin)
    tokens = [await person.csrf() for person in owners]
    await asyncio.gather(
        *(
            person.client.post(
                f"/billing/team/members/{person.user_id}/role",
                data={"role": "member", "_csrf_token": token},
                follow_redirects=False,
            )
            for person, token in zip(owners, tokens, strict=True)
        )
    )
    now = await roles(session, team.org.id)
    assert sorted(now[p.user_id] for p in owners) == ["member", "owner"]
