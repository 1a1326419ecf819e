"""All SQL for organizations: memberships (with their users) and invitations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.customers.models import Customer, Membership
from app.organizations.models import Invitation


@dataclass(frozen=True)
class MemberRow:
    user_id: int
    email: str
    name: str
    role: str
    joined_at: datetime


class OrganizationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def members(self, customer_id: int) -> list[MemberRow]:
        """The organization's members, owners first, then by when they joined."""
        rows = await self.session.execute(
            select(User.id, User.email, User.name, Membership.role, Membership.created_at)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.customer_id == customer_id)
            .order_by(Membership.role != "owner", Membership.id)
        )
        return [MemberRow(*row) for row in rows]

    async def membership(self, customer_id: int, user_id: int) -> Membership | None:
        return await self.session.scalar(
            select(Membership).where(
                Membership.customer_id == customer_id, Membership.user_id == user_id
            )
        )

    async def memberships_for_update(self, customer_id: int) -> list[Membership]:
        """Every membership of the organization, locked until the transaction ends
        (PostgreSQL), so two changes cannot both leave it without an owner."""
        return list(
            await self.session.scalars(
                select(Membership)
                .where(Membership.customer_id == customer_id)
                .order_by(Membership.id)
                .with_for_update()
            )
        )

    async def organizations_of(self, user_id: int) -> list[tuple[Customer, str]]:
        """The user's organizations and their role in each, the personal one first."""
        rows = await self.session.execute(
            select(Customer, Membership.role)
            .join(Membership, Membership.customer_id == Customer.id)
            .where(Membership.user_id == user_id)
            .order_by(Membership.id)
        )
        return [(row[0], row[1]) for row in rows]

    async def count_memberships(self, user_id: int) -> int:
        return int(
            await self.session.scalar(
                select(func.count(Membership.id)).where(Membership.user_id == user_id)
            )
            or 0
        )

    async def user_by_email(self, email: str) -> User | None:
        return await self.session.scalar(select(User).where(func.lower(User.email) == email))

    async def pending_invitations(self, customer_id: int, now: datetime) -> list[Invitation]:
        return list(
            await self.session.scalars(
                select(Invitation)
                .where(
                    Invitation.customer_id == customer_id,
                    Invitation.accepted_at.is_(None),
                    Invitation.revoked_at.is_(None),
                    Invitation.expires_at > now,
                )
                .order_by(Invitation.id)
            )
        )

    async def invitation(self, customer_id: int, invitation_id: int) -> Invitation | None:
        return await self.session.scalar(
            select(Invitation).where(
                Invitation.id == invitation_id, Invitation.customer_id == customer_id
            )
        )

    async def invitation_by_hash(self, token_hash: str) -> Invitation | None:
        return await self.session.scalar(
            select(Invitation).where(Invitation.token_hash == token_hash)
        )

    async def revoke_pending(self, customer_id: int, email: str, now: datetime) -> None:
        """Earlier unused invitations of `email` stop working (only the newest link works)."""
        await self.session.execute(
            update(Invitation)
            .where(
                Invitation.customer_id == customer_id,
                Invitation.email == email,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )

    async def claim(self, invitation_id: int, user_id: int, now: datetime) -> bool:
        """Mark the invitation accepted unless it was used, revoked or expired meanwhile: one
        conditional UPDATE, so of two clicks racing on one link, one wins."""
        result = await self.session.execute(
            update(Invitation)
            .where(
                Invitation.id == invitation_id,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > now,
            )
            .values(accepted_at=now, accepted_by=user_id)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    def add(self, *objects: Membership | Invitation) -> None:
        self.session.add_all(objects)

    async def delete(self, membership: Membership) -> None:
        await self.session.delete(membership)
