"""The team page, invitations, the organization switcher (HTTP only; rules in the service).

`/billing/team` lists the current organization's members and pending invitations; owners
invite, revoke, change roles, remove and transfer ownership; anyone leaves. `/invitations/
{token}` shows an invitation (to anyone holding the link) and accepts it (a logged-in user
with the invited address). `/org/switch` changes the session's current organization.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from msgspec import Struct

from app.accounts.auth import ORG_KEY, org_name
from app.accounts.guards import current_user, logged_in_user, requires_user
from app.accounts.service import AccountService
from app.customers.models import BILLING_ADMIN, MEMBER, OWNER, ROLES, Customer
from app.lib.errors import DomainError, NotFound
from app.organizations.guards import current_org, requires_role
from app.organizations.roles import ROLE_SUMMARIES, role_name
from app.organizations.service import OrganizationService
from app.web.forms import Form
from app.web.responses import page, redirect

TEAM_PAGE = "/billing/team"
T = TypeVar("T")


class InviteForm(Struct):
    email: str = ""
    role: str = MEMBER


class RoleForm(Struct):
    role: str = ""


class SwitchForm(Struct):
    org: str = ""


def _int(raw: str) -> int | None:
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


def set_current_org(request: Request[Any, Any, Any], customer_id: int) -> None:
    """The session's current organization (the login stays; the session id too)."""
    session = request.session if isinstance(request.scope.get("session"), dict) else {}
    request.set_session({**session, ORG_KEY: customer_id})


class TeamController(Controller):
    path = TEAM_PAGE
    guards = [requires_user]
    include_in_schema = False

    @get("/", guards=[requires_role(MEMBER)])
    async def team(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        organization_service: NamedDependency[OrganizationService],
    ) -> Template:
        team = await organization_service.team(current_customer)
        org = current_org(request)
        context = {
            "team": team,
            "org": org,
            "org_name": org_name(current_customer),
            "roles": [(role, role_name(role), ROLE_SUMMARIES[role]) for role in ROLES],
            "role_name": role_name,
            "is_owner": org.role == OWNER,
            "owners": sum(1 for member in team.members if member.role == OWNER),
        }
        return page(request, "organizations/team.html", context)

    @post("/invite", guards=[requires_role(OWNER)])
    async def invite(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        organization_service: NamedDependency[OrganizationService],
        account_service: NamedDependency[AccountService],
        data: Annotated[InviteForm, Form],
    ) -> Redirect:
        user = current_user(request)
        inviter = await account_service.get(user.id) if user else None
        invitation = await _attempt(
            request, organization_service.invite(current_customer, inviter, data.email, data.role)
        )
        if isinstance(invitation, Redirect):
            return invitation
        flash(
            request,
            f"Invitation sent to {invitation.email} as {role_name(invitation.role)}.",
            category="success",
        )
        return redirect(request, TEAM_PAGE)

    @post("/invitations/{invitation_id:int}/revoke", guards=[requires_role(OWNER)])
    async def revoke(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        organization_service: NamedDependency[OrganizationService],
        invitation_id: FromPath[int],
    ) -> Redirect:
        invitation = await organization_service.revoke(current_customer, invitation_id)
        flash(request, f"The invitation to {invitation.email} is withdrawn.", category="success")
        return redirect(request, TEAM_PAGE)

    @post("/members/{user_id:int}/role", guards=[requires_role(OWNER)])
    async def change_role(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        organization_service: NamedDependency[OrganizationService],
        user_id: FromPath[int],
        data: Annotated[RoleForm, Form],
    ) -> Redirect:
        return await _act(
            request,
            organization_service.change_role(current_customer, user_id, data.role),
            f"The role is now {role_name(data.role)}.",
        )

    @post("/members/{user_id:int}/remove", guards=[requires_role(OWNER)])
    async def remove(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        organization_service: NamedDependency[OrganizationService],
        user_id: FromPath[int],
    ) -> Redirect:
        return await _act(
            request,
            organization_service.remove(current_customer, user_id),
            "The member was removed.",
        )

    @post("/members/{user_id:int}/transfer", guards=[requires_role(OWNER)])
    async def transfer(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        organization_service: NamedDependency[OrganizationService],
        user_id: FromPath[int],
    ) -> Redirect:
        me = current_org(request)  # the guard checked it
        user = logged_in_user(request)
        return await _act(
            request,
            organization_service.transfer(current_customer, user.id, user_id),
            f"Ownership transferred. You are now a {role_name(BILLING_ADMIN)} of {me.name}.",
        )

    @post("/leave", guards=[requires_role(MEMBER)])
    async def leave(
        self,
        request: Request[Any, Any, Any],
        current_customer: NamedDependency[Customer],
        organization_service: NamedDependency[OrganizationService],
    ) -> Redirect:
        user = logged_in_user(request)
        refused = await _attempt(request, organization_service.leave(current_customer, user.id))
        if isinstance(refused, Redirect):
            return refused
        session = dict(request.session)
        session.pop(ORG_KEY, None)
        request.set_session(session)
        flash(request, f"You left {org_name(current_customer)}.", category="success")
        return redirect(request, "/billing")


async def _attempt(
    request: Request[Any, Any, Any], action: Awaitable[T], *, not_found_is_404: bool = False
) -> T | Redirect:
    """`await action`; a refusal is flashed and leads back to the team page (a `NotFound`
    stays the 404 page with `not_found_is_404`: a member named in the URL is not there)."""
    try:
        return await action
    except DomainError as exc:
        if not_found_is_404 and isinstance(exc, NotFound):
            raise
        flash(request, exc.message, category="error")
        return redirect(request, TEAM_PAGE)


async def _act(request: Request[Any, Any, Any], action: Awaitable[Any], message: str) -> Redirect:
    """A team page action on a member: `message` when done."""
    refused = await _attempt(request, action, not_found_is_404=True)
    if isinstance(refused, Redirect):
        return refused
    flash(request, message, category="success")
    return redirect(request, TEAM_PAGE)


class OrganizationSwitchController(Controller):
    """The navigation's switcher: a plain form POST (works without JavaScript)."""

    path = "/org"
    guards = [requires_user]
    include_in_schema = False

    @post("/switch")
    async def switch(
        self,
        request: Request[Any, Any, Any],
        organization_service: NamedDependency[OrganizationService],
        data: Annotated[SwitchForm, Form],
    ) -> Redirect:
        user = logged_in_user(request)
        org_id = _int(data.org)
        if org_id is None or not await organization_service.is_member(org_id, user.id):
            raise NotFound("You are not a member of that organization.", code="no_customer")
        set_current_org(request, org_id)
        return redirect(request, "/billing")


class InvitationController(Controller):
    """Not public: a logged-out invitee is sent to log in (or, from there, sign up) and back."""

    path = "/invitations"
    guards = [requires_user]
    include_in_schema = False

    @get("/{token:str}")
    async def show(
        self,
        request: Request[Any, Any, Any],
        token: FromPath[str],
        organization_service: NamedDependency[OrganizationService],
    ) -> Template:
        view = await organization_service.invitation(token)
        user = current_user(request)
        response = page(
            request,
            "organizations/invitation.html",
            {
                "token": token,
                "invitation": view.invitation,
                "org_name": org_name(view.organization),
                "role": role_name(view.invitation.role),
                "summary": ROLE_SUMMARIES.get(view.invitation.role, ""),
                "for_me": user is not None and user.email.lower() == view.invitation.email.lower(),
            },
        )
        response.headers.update({"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"})
        return response

    @post("/{token:str}", status_code=303)
    async def accept(
        self,
        request: Request[Any, Any, Any],
        token: FromPath[str],
        organization_service: NamedDependency[OrganizationService],
    ) -> Redirect:
        user = logged_in_user(request)
        organization = await organization_service.accept(token, user.id, user.email)
        set_current_org(request, organization.id)
        flash(request, f"You joined {org_name(organization)}.", category="success")
        return Redirect("/billing", status_code=303, headers={"Referrer-Policy": "no-referrer"})
