"""Organizations: members, roles, invitations, ownership. The service owns its transactions.

An organization is a customer (the billing account); `memberships` says who belongs to it and
with which role (app/customers/models.py). The rules here:

- at least one owner always: the last owner cannot leave, be removed or be demoted
  (the organization's memberships are locked while a change is decided);
- only owners manage the team (invite, revoke, change roles, remove, transfer ownership);
  anyone may leave, except the last owner;
- an invitation is emailed with a random token (only its SHA-256 is stored), works once,
  for `INVITATION_TTL`, for the invited address only, and a newer one to the same address
  replaces it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.auth import org_name
from app.accounts.models import User
from app.accounts.service import AccountService
from app.customers.models import BILLING_ADMIN, MEMBER, OWNER, Customer, Membership
from app.customers.service import CustomerService
from app.db.engine import write_from_here
from app.db.transactions import rolls_back_on_error
from app.lib.clock import as_utc, utcnow
from app.lib.emails import normalize_email
from app.lib.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.organizations.models import Invitation
from app.organizations.repository import MemberRow, OrganizationRepository
from app.organizations.roles import checked_role, role_name

INVITATION_TTL = timedelta(days=7)
TOKEN_MAX = 64
LAST_OWNER = "{org} needs an owner: make someone else an owner (or transfer ownership) first."


class InvitationMailer(Protocol):
    """Sends the invitation email (NotificationService, through the outbox)."""

    async def invitation(
        self,
        *,
        customer: Customer,
        to_address: str,
        organization: str,
        inviter: str,
        role: str,
        accept_url: str,
        expires_at: datetime,
        dedupe_key: str,
    ) -> None: ...


class InvitationInvalid(NotFound):
    code = "invitation_invalid"


class LastOwner(Conflict):
    code = "last_owner"


@dataclass(frozen=True)
class Team:
    organization: Customer
    members: list[MemberRow]
    invitations: list[Invitation]


@dataclass(frozen=True)
class InvitationView:
    invitation: Invitation
    organization: Customer


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class OrganizationService:
    def __init__(
        self,
        session: AsyncSession,
        customers: CustomerService,
        mailer: InvitationMailer,
        public_url: str,
    ) -> None:
        self.session = session
        self.customers = customers
        self.accounts = AccountService(session, customers.catalog)
        self.repo = OrganizationRepository(session)
        self.mailer = mailer
        self.public_url = public_url.rstrip("/")

    # Reads -------------------------------------------------------------------------------

    async def team(self, customer: Customer) -> Team:
        return Team(
            customer,
            await self.repo.members(customer.id),
            await self.repo.pending_invitations(customer.id, utcnow()),
        )

    async def organizations_of(self, user_id: int) -> list[tuple[Customer, str]]:
        return await self.repo.organizations_of(user_id)

    async def is_member(self, customer_id: int, user_id: int) -> bool:
        return await self.repo.membership(customer_id, user_id) is not None

    # Invitations -------------------------------------------------------------------------

    @rolls_back_on_error
    async def invite(
        self, customer: Customer, inviter: User | None, raw_email: str, raw_role: str
    ) -> Invitation:
        """Email an invitation to `raw_email` with `raw_role`; an earlier pending one to the
        same address stops working. Commits."""
        email = normalize_email(raw_email)
        role = checked_role(raw_role)
        await write_from_here(self.session)
        existing = await self.repo.user_by_email(email)
        if existing is not None and await self.repo.membership(customer.id, existing.id):
            raise Conflict(
                f"{email} is already a member of {org_name(customer)}.",
                code="already_member",
                field="email",
            )
        now = utcnow()
        await self.repo.revoke_pending(customer.id, email, now)
        token = secrets.token_urlsafe(32)
        invitation = Invitation(
            customer_id=customer.id,
            email=email,
            role=role,
            token_hash=hash_token(token),
            invited_by=inviter.id if inviter else None,
            created_at=now,
            expires_at=now + INVITATION_TTL,
        )
        self.repo.add(invitation)
        await self.session.flush()
        await self.mailer.invitation(
            customer=customer,
            to_address=email,
            organization=org_name(customer),
            inviter=(inviter.name or inviter.email) if inviter else org_name(customer),
            role=role_name(role),
            accept_url=f"{self.public_url}/invitations/{token}",
            expires_at=invitation.expires_at,
            dedupe_key=f"invitation:{invitation.id}",
        )
        await self.session.commit()
        return invitation

    @rolls_back_on_error
    async def revoke(self, customer: Customer, invitation_id: int) -> Invitation:
        await write_from_here(self.session)
        invitation = await self.repo.invitation(customer.id, invitation_id)
        if invitation is None or invitation.accepted_at is not None:
            raise NotFound("No such pending invitation.", code="invitation_not_found")
        if invitation.revoked_at is None:
            invitation.revoked_at = utcnow()
        await self.session.commit()
        return invitation

    async def invitation(self, token: str) -> InvitationView:
        """The invitation behind a link, if it can still be accepted (not used, revoked or
        expired); InvitationInvalid (404) otherwise."""
        invitation = None
        if 0 < len(token or "") <= TOKEN_MAX:
            invitation = await self.repo.invitation_by_hash(hash_token(token))
        if invitation is None:
            raise InvitationInvalid("This invitation link is not valid.")
        if invitation.accepted_at is not None:
            raise InvitationInvalid("This invitation was already accepted. Links work once.")
        if invitation.revoked_at is not None:
            raise InvitationInvalid("This invitation was withdrawn. Ask for a new one.")
        if as_utc(invitation.expires_at) <= utcnow():
            raise InvitationInvalid("This invitation has expired. Ask for a new one.")
        organization = await self.customers.repo.by_id(invitation.customer_id)
        if organization is None:
            raise InvitationInvalid("This invitation is for an organization that is gone.")
        return InvitationView(invitation, organization)

    @rolls_back_on_error
    async def accept(self, token: str, user_id: int, user_email: str) -> Customer:
        """The logged-in user joins with the invitation's role, when the invitation was sent to
        their address (anyone else holding the link gets a 403). Commits."""
        view = await self.invitation(token)
        if view.invitation.email.lower() != user_email.lower():
            raise Forbidden(
                f"This invitation is for {view.invitation.email}; you are logged in as "
                f"{user_email}. Log in with the invited address to accept it.",
                code="invitation_wrong_email",
            )
        await write_from_here(self.session)
        if not await self.repo.claim(view.invitation.id, user_id, utcnow()):
            raise InvitationInvalid("This invitation was already used, withdrawn or expired.")
        if await self.repo.membership(view.organization.id, user_id) is None:
            self.repo.add(
                Membership(
                    customer_id=view.organization.id, user_id=user_id, role=view.invitation.role
                )
            )
        await self.session.commit()
        return view.organization

    # Members -----------------------------------------------------------------------------

    @rolls_back_on_error
    async def change_role(self, customer: Customer, user_id: int, raw_role: str) -> Membership:
        role = checked_role(raw_role)
        memberships = await self._locked(customer)
        membership = _find(memberships, user_id)
        if membership.role == OWNER and role != OWNER:
            _keep_an_owner(customer, memberships, leaving=membership)
        membership.role = role
        await self.session.commit()
        return membership

    @rolls_back_on_error
    async def remove(self, customer: Customer, user_id: int) -> None:
        """Remove a member (or, by `leave`, oneself). Commits."""
        memberships = await self._locked(customer)
        membership = _find(memberships, user_id)
        if membership.role == OWNER:
            _keep_an_owner(customer, memberships, leaving=membership)
        await self.repo.delete(membership)
        await self.session.commit()

    async def leave(self, customer: Customer, user_id: int) -> None:
        await self.remove(customer, user_id)

    @rolls_back_on_error
    async def transfer(self, customer: Customer, from_user: int, to_user: int) -> None:
        """`to_user` (a member) becomes an owner; `from_user` stays as a billing admin."""
        memberships = await self._locked(customer)
        giver, taker = _find(memberships, from_user), _find(memberships, to_user)
        if giver.role != OWNER:
            raise Forbidden("Only an owner can transfer ownership.", code="role_forbidden")
        if giver is taker:
            raise ValidationFailed("Choose another member.", field="user_id")
        taker.role = OWNER
        giver.role = BILLING_ADMIN
        await self.session.commit()

    # The API: the SaaS attaches its users ---------------------------------------------------

    async def api_members(self, external_id: str) -> tuple[Customer, list[MemberRow]]:
        customer = await self.customers.get(external_id)
        return customer, await self.repo.members(customer.id)

    @rolls_back_on_error
    async def attach(
        self, external_id: str, raw_email: str, raw_role: str, name: str | None
    ) -> tuple[Customer, MemberRow, bool]:
        """Make the user with `raw_email` (created password-less when new: they log in
        through portal links naming them) a member with `raw_role`; an existing member's role
        changes (the last owner's only to owner). Returns whether the membership is new.
        Commits."""
        email = normalize_email(raw_email)
        role = checked_role(raw_role)
        if name is not None and len(name) > 120:
            raise ValidationFailed("name must be at most 120 characters.", field="name")
        await write_from_here(self.session)
        customer = await self.customers.get(external_id)
        user = await self.repo.user_by_email(email)
        if user is None:
            user = await self.accounts.add_passwordless_user(email, (name or "").strip())
        if user.is_admin:
            raise Forbidden(
                "An administrator cannot be made a member through the API.",
                code="member_forbidden",
            )
        memberships = await self.repo.memberships_for_update(customer.id)
        existing = next((m for m in memberships if m.user_id == user.id), None)
        created = existing is None
        if existing is None:
            existing = Membership(customer_id=customer.id, user_id=user.id, role=role)
            self.repo.add(existing)
        elif existing.role != role:
            if existing.role == OWNER:
                _keep_an_owner(customer, memberships, leaving=existing)
            existing.role = role
        try:
            await self.session.flush()
        except IntegrityError:  # a concurrent attach of the same user
            raise Conflict("This member was just added; retry.", code="conflict") from None
        row = MemberRow(user.id, user.email, user.name, existing.role, existing.created_at)
        await self.session.commit()
        return customer, row, created

    async def detach(self, external_id: str, raw_email: str) -> tuple[Customer, MemberRow]:
        """Remove the member with `raw_email` (never the last owner); the row as it was."""
        customer = await self.customers.get(external_id)
        email = (raw_email or "").strip().lower()
        members = await self.repo.members(customer.id)
        row = next((m for m in members if m.email.lower() == email), None)
        if row is None:
            raise NotFound(f"{email} is not a member of this customer.", code="member_not_found")
        await self.remove(customer, row.user_id)
        return customer, row

    # -------------------------------------------------------------------------------------

    async def _locked(self, customer: Customer) -> list[Membership]:
        await write_from_here(self.session)
        return await self.repo.memberships_for_update(customer.id)


def _find(memberships: list[Membership], user_id: int) -> Membership:
    for membership in memberships:
        if membership.user_id == user_id:
            return membership
    raise NotFound("No such member in this organization.", code="member_not_found")


def _keep_an_owner(
    customer: Customer, memberships: list[Membership], *, leaving: Membership
) -> None:
    if not any(m.role == OWNER and m is not leaving for m in memberships):
        raise LastOwner(LAST_OWNER.format(org=org_name(customer)))


__all__ = ["BILLING_ADMIN", "MEMBER", "OWNER", "InvitationMailer", "OrganizationService"]
