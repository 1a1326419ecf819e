"""Deleting a portal account (issue 19, item 4).

What happens, in this order (docs/accounts.md, "Deleting an account"):

1. The password (and the two-factor code when it is on) is checked.
2. For each billing account the user solely owns (`solely_owned_accounts`), a live Stripe
   subscription is canceled through the billing service: at once (`cancel_now`, no refund)
   or at the end of the paid period (`cancel`, as the billing page's cancel does), as the
   user chose on the confirm page.
3. The Stripe customer's name, email, phone, description and address are unset at Stripe and
   its tax IDs deleted (the customer stays: its invoices and payments are Stripe's
   bookkeeping).
4. In one transaction: the customer row is kept for the invoices, the credit ledger and the
   usage events (all keep their `customer_id`, so every total still adds up) with its email
   and name removed, its user link cut and `deleted_at` set; its billing details and tax IDs,
   the emails queued or sent to it, and the names and addresses copied on its invoices are
   removed; then the user row is deleted. Everything hanging off the user (logins, two-factor
   secret, recovery codes, account links) goes with it (`ON DELETE CASCADE`), so every
   session of the user stops at its next request and the email address is free again: a
   login with it is refused like any unknown one.

Steps 2 and 3 are Stripe calls, made before the database transaction (never holding the
SQLite write lock across them). A failure there stops the deletion with nothing of ours
deleted; trying again is safe (a canceled subscription has nothing left to cancel).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.accounts.models import User
from app.accounts.two_factor import CREDENTIALS_WRONG, TwoFactorService
from app.billing.models import BillingDetails, CustomerTaxId, Invoice, PaymentMethod
from app.billing.service import BillingService
from app.catalog.models import Catalog
from app.customers.models import OWNER, Customer, Membership, Subscription
from app.customers.statuses import SubscriptionStatus
from app.db.engine import write_from_here
from app.db.transactions import rolls_back_on_error
from app.lib.clock import utcnow
from app.lib.errors import Conflict, NotFound, ValidationFailed
from app.lib.passwords import verify_password
from app.notifications.models import EmailOutboxMessage
from app.stripe.gateway import StripeGateway, idempotency_key

DeleteMode = Literal["now", "period_end"]
MODES: tuple[DeleteMode, ...] = ("now", "period_end")


async def solely_owned_accounts(session: AsyncSession, user_id: int) -> list[Customer]:
    """The billing accounts (organizations) whose only owner is this user, which go with them.
    An account with another owner stays: only the user's membership goes (with the user row),
    as it does from the organizations they are a billing admin or member of."""
    other_owner = aliased(Membership)
    return list(
        await session.scalars(
            select(Customer)
            .join(Membership, Membership.customer_id == Customer.id)
            .where(
                Membership.user_id == user_id,
                Membership.role == OWNER,
                ~exists().where(
                    other_owner.customer_id == Customer.id,
                    other_owner.role == OWNER,
                    other_owner.user_id != user_id,
                ),
            )
            .order_by(Customer.id)
        )
    )


async def shared_sole_owned(session: AsyncSession, user_id: int) -> list[str]:
    """The names of the organizations this user solely owns that still have other members:
    deleting the account would take the organization from them, so it waits until ownership
    is transferred (or they are removed) on the team page."""
    others = aliased(Membership)
    names = []
    for customer in await solely_owned_accounts(session, user_id):
        count = await session.scalar(
            select(func.count(others.id)).where(
                others.customer_id == customer.id, others.user_id != user_id
            )
        )
        if count:
            names.append(str(customer.name or customer.email or customer.external_id))
    return names


def shared_message(names: list[str]) -> str:
    return (
        f"You are the only owner of {', '.join(names)}, which other people belong to: make one "
        "of them an owner (Team, Transfer ownership) or remove them before you delete your "
        "account."
    )


@dataclass(frozen=True)
class AccountEnd:
    """One billing account and what deleting the user does to its subscription."""

    customer_id: int
    plan_name: str
    # A paid plan Stripe still bills (a live Stripe subscription): it has something to cancel.
    paid: bool
    status: str
    period_end: datetime | None
    cancel_at_period_end: bool


@dataclass(frozen=True)
class DeletionPreview:
    email: str
    accounts: list[AccountEnd]
    two_factor: bool
    has_password: bool
    # Organizations this user solely owns that have other members: deletion waits for a
    # transfer of ownership (`shared_sole_owned`).
    shared: list[str] = field(default_factory=list)

    @property
    def paid(self) -> list[AccountEnd]:
        return [a for a in self.accounts if a.paid]


@dataclass(frozen=True)
class Deleted:
    email: str
    # Per paid account: the plan's name and when it ends (None: ended now).
    ended: list[tuple[str, datetime | None]]


class AccountDeletion:
    def __init__(
        self,
        session: AsyncSession,
        catalog: Catalog,
        billing: BillingService,
        gateway: StripeGateway,
        two_factor: TwoFactorService,
    ) -> None:
        self.session = session
        self.catalog = catalog
        self.billing = billing
        self.gateway = gateway
        self.two_factor = two_factor

    async def _user(self, user_id: int) -> User:
        user = await self.session.get(User, user_id, populate_existing=True)
        if user is None:
            raise NotFound("This account no longer exists.")
        return user

    async def _end_of(self, customer: Customer) -> AccountEnd:
        subscription = await self.session.scalar(
            select(Subscription).where(Subscription.customer_id == customer.id)
        )
        plan = self.catalog.plan(subscription.plan_slug) if subscription else None
        paid = bool(
            subscription
            and subscription.stripe_subscription_id
            and subscription.status in SubscriptionStatus.live()
        )
        return AccountEnd(
            customer_id=customer.id,
            plan_name=plan.name if plan else self.catalog.default_plan.name,
            paid=paid,
            status=subscription.status if subscription else "active",
            period_end=subscription.current_period_end if subscription else None,
            cancel_at_period_end=bool(subscription and subscription.cancel_at_period_end),
        )

    async def preview(self, user_id: int) -> DeletionPreview:
        """What deleting this user would do (the confirm page)."""
        user = await self._user(user_id)
        accounts = [
            await self._end_of(c) for c in await solely_owned_accounts(self.session, user_id)
        ]
        return DeletionPreview(
            email=user.email,
            accounts=accounts,
            two_factor=await self.two_factor.is_on(user_id),
            has_password=user.password_hash is not None,
            shared=await shared_sole_owned(self.session, user_id),
        )

    async def check_credentials(self, user_id: int, password: str, code: str) -> None:
        """ValidationFailed (field `password` or `code`) unless both are right (the code only
        when two-factor login is on); a right code is used up."""
        user = await self._user(user_id)
        # A user who only ever came in through portal links has no password to ask.
        ok = user.password_hash is None or verify_password(password or "", user.password_hash)[0]
        await self.session.rollback()  # end the read: what follows writes or calls Stripe
        if not ok:
            raise ValidationFailed(CREDENTIALS_WRONG, code="wrong_password", field="password")
        await self.two_factor.check_code_if_on(user_id, code)

    async def delete(self, user_id: int, password: str, code: str, mode: str) -> Deleted:
        if mode not in MODES:
            raise ValidationFailed("Choose when the subscription ends.", field="mode")
        await self.check_credentials(user_id, password, code)
        shared = await shared_sole_owned(self.session, user_id)
        if shared:
            raise Conflict(shared_message(shared), code="sole_owner_with_members")
        customers = await solely_owned_accounts(self.session, user_id)
        ended: list[tuple[str, datetime | None]] = []
        for customer in customers:
            before = await self._end_of(customer)
            if not before.paid:
                continue
            if mode == "now":
                await self.billing.cancel_now(customer)
                ended.append((before.plan_name, None))
            else:
                await self.billing.cancel(customer)
                after = await self._end_of(customer)
                ended.append((before.plan_name, after.period_end))
        for customer in customers:
            if customer.stripe_customer_id:
                await self._erase_at_stripe(customer.stripe_customer_id)
        email = await self._forget(user_id, [c.id for c in customers])
        return Deleted(email=email, ended=ended)

    async def _erase_at_stripe(self, stripe_customer_id: str) -> None:
        """The person's details off the Stripe customer: name, email, phone, address, and
        its tax IDs (a sole trader's VAT number is theirs)."""
        await self.gateway.erase_customer_details(
            stripe_customer_id, key=idempotency_key("erase-customer", stripe_customer_id)
        )
        for tax_id in await self.gateway.list_tax_ids(stripe_customer_id):
            await self.gateway.delete_tax_id(stripe_customer_id, tax_id["id"])

    @rolls_back_on_error
    async def _forget(self, user_id: int, customer_ids: list[int]) -> str:
        """Remove the personal data of the user and their accounts, delete the user; commits."""
        await write_from_here(self.session)
        user = await self._user(user_id)
        email = user.email
        now = utcnow()
        if customer_ids:
            await self.session.execute(
                update(Customer)
                .where(Customer.id.in_(customer_ids))
                .values(email=None, name=None, user_id=None, usage_emails=False, deleted_at=now)
            )
            await self.session.execute(
                update(PaymentMethod)
                .where(PaymentMethod.customer_id.in_(customer_ids))
                .values(email=None)
            )
            await self.session.execute(
                update(Invoice).where(Invoice.customer_id.in_(customer_ids)).values(billed_to=None)
            )
            await self.session.execute(
                delete(BillingDetails).where(BillingDetails.customer_id.in_(customer_ids))
            )
            await self.session.execute(
                delete(CustomerTaxId).where(CustomerTaxId.customer_id.in_(customer_ids))
            )
        await self.session.execute(
            delete(EmailOutboxMessage).where(
                or_(
                    EmailOutboxMessage.customer_id.in_(customer_ids),
                    EmailOutboxMessage.to_address == email,
                )
            )
        )
        await self.session.delete(user)
        await self.session.commit()
        return email
