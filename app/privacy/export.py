"""Export my data (issue 19, item 4): the profile, usage per day per meter, invoices and the
credit ledger of the accounts the user owns, as one JSON document or one CSV per kind.

Streamed: rows are read in pages of `PAGE` (keyset pagination, one short query each, on a
session of its own that lives as long as the download) and written out as they come, so a
history of millions of events costs the memory of one page. Money is in minor units with its
currency, as everywhere in the portal; times are UTC, ISO 8601.

CSV: one file per kind (`/account/export/<kind>.csv`) rather than a zip of them: each kind
has its own columns (one CSV cannot hold four tables), each opens directly in a spreadsheet,
and each streams with no archive around it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts.models import User
from app.accounts.two_factor import has_two_factor
from app.billing.models import Invoice
from app.catalog.models import Catalog
from app.customers.models import Subscription
from app.lib.clock import utcnow
from app.lib.csv_stream import PAGE, csv_chunks
from app.metering.models import CreditGrant, CreditLedgerEntry, UsageDay
from app.privacy.deletion import solely_owned_accounts

Kind = Literal["profile", "usage", "invoices", "credits"]
KINDS: tuple[Kind, ...] = ("profile", "usage", "invoices", "credits")

Row = dict[str, Any]
Rows = AsyncIterator[Row]

USAGE_COLUMNS = ("account", "meter", "day", "amount")
INVOICE_COLUMNS = (
    "account",
    "number",
    "status",
    "currency",
    "subtotal",
    "tax",
    "total",
    "amount_due",
    "amount_paid",
    "amount_refunded",
    "period_start",
    "period_end",
    "created_at",
    "hosted_invoice_url",
)
CREDIT_COLUMNS = ("account", "meter", "kind", "amount", "source", "reason", "created_at")
PROFILE_COLUMNS = (
    "email",
    "name",
    "created_at",
    "last_login_at",
    "two_factor",
    "account",
    "account_email",
    "account_name",
    "currency",
    "plan",
    "status",
    "current_period_end",
)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class _Account:
    id: int
    external_id: str


class DataExport:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], catalog: Catalog) -> None:
        self.sessions = sessions
        self.catalog = catalog

    # The documents ----------------------------------------------------------------------

    async def json_chunks(self, user_id: int) -> AsyncIterator[bytes]:
        """`{"exported_at", "profile", "usage_per_day": [...], "invoices": [...],
        "credit_ledger": [...]}`, written as it is read."""
        async with self.sessions() as session:
            accounts = await self._accounts(session, user_id)
            profile = await self._profile(session, user_id)
            head = {"format": "billing-portal-export/1", "exported_at": _time(utcnow())}
            yield (json.dumps(head)[:-1] + ', "profile": ' + json.dumps(profile)).encode()
            for name, rows in (
                ("usage_per_day", self._usage(session, accounts)),
                ("invoices", self._invoices(session, accounts)),
                ("credit_ledger", self._credits(session, accounts)),
            ):
                yield f', "{name}": ['.encode()
                first = True
                async for row in rows:
                    yield (("" if first else ",") + "\n" + json.dumps(row)).encode()
                    first = False
                yield b"\n]"
            yield b"}\n"

    async def csv_chunks(self, user_id: int, kind: Kind) -> AsyncIterator[bytes]:
        async with self.sessions() as session:
            accounts = await self._accounts(session, user_id)
            columns, rows = self._csv_source(session, user_id, accounts, kind)
            async for chunk in csv_chunks(columns, rows):
                yield chunk

    def _csv_source(
        self, session: AsyncSession, user_id: int, accounts: list[_Account], kind: Kind
    ) -> tuple[tuple[str, ...], Rows]:
        sources: dict[Kind, tuple[tuple[str, ...], Callable[[], Rows]]] = {
            "profile": (PROFILE_COLUMNS, lambda: self._profile_rows(session, user_id)),
            "usage": (USAGE_COLUMNS, lambda: self._usage(session, accounts)),
            "invoices": (INVOICE_COLUMNS, lambda: self._invoices(session, accounts)),
            "credits": (CREDIT_COLUMNS, lambda: self._credits(session, accounts)),
        }
        columns, rows = sources[kind]
        return columns, rows()

    # The parts --------------------------------------------------------------------------

    async def _accounts(self, session: AsyncSession, user_id: int) -> list[_Account]:
        return [
            _Account(c.id, c.external_id) for c in await solely_owned_accounts(session, user_id)
        ]

    async def _profile(self, session: AsyncSession, user_id: int) -> Row:
        user = await session.get(User, user_id)
        if user is None:
            return {}
        accounts = []
        for customer in await solely_owned_accounts(session, user_id):
            subscription = await session.scalar(
                select(Subscription).where(Subscription.customer_id == customer.id)
            )
            plan = self.catalog.plan(subscription.plan_slug) if subscription else None
            accounts.append(
                {
                    "account": customer.external_id,
                    "account_email": customer.email,
                    "account_name": customer.name,
                    "currency": customer.currency,
                    "created_at": _time(customer.created_at),
                    "plan": plan.name if plan else None,
                    "status": subscription.status if subscription else None,
                    "current_period_end": _time(
                        subscription.current_period_end if subscription else None
                    ),
                }
            )
        return {
            "email": user.email,
            "name": user.name,
            "created_at": _time(user.created_at),
            "last_login_at": _time(user.last_login_at),
            "two_factor": await has_two_factor(session, user_id),
            "billing_accounts": accounts,
        }

    async def _profile_rows(self, session: AsyncSession, user_id: int) -> Rows:
        """The profile as CSV rows: one per billing account (the user's columns repeated)."""
        profile = await self._profile(session, user_id)
        person = {k: v for k, v in profile.items() if k != "billing_accounts"}
        for account in profile.get("billing_accounts") or [{}]:
            yield {**person, **{k: v for k, v in account.items() if k != "created_at"}}

    async def _usage(self, session: AsyncSession, accounts: list[_Account]) -> Rows:
        """One row per account, meter and UTC day (a day split by a period's start is summed)."""
        for account in accounts:
            pending: Row | None = None
            after: tuple[str, datetime] | None = None
            while True:
                query = select(UsageDay.meter_code, UsageDay.starts_at, UsageDay.amount).where(
                    UsageDay.customer_id == account.id
                )
                if after is not None:
                    query = query.where(tuple_(UsageDay.meter_code, UsageDay.starts_at) > after)
                page = (
                    await session.execute(
                        query.order_by(UsageDay.meter_code, UsageDay.starts_at).limit(PAGE)
                    )
                ).all()
                for meter, starts_at, amount in page:
                    day = starts_at.date().isoformat()
                    if pending and pending["meter"] == meter and pending["day"] == day:
                        pending["amount"] += amount
                        continue
                    if pending:
                        yield pending
                    pending = {
                        "account": account.external_id,
                        "meter": meter,
                        "day": day,
                        "amount": amount,
                    }
                if len(page) < PAGE:
                    break
                after = (page[-1][0], page[-1][1])
            if pending:
                yield pending

    async def _invoices(self, session: AsyncSession, accounts: list[_Account]) -> Rows:
        names = {a.id: a.external_id for a in accounts}
        after = 0
        while names:
            page = list(
                await session.scalars(
                    select(Invoice)
                    .where(Invoice.customer_id.in_(names), Invoice.id > after)
                    .order_by(Invoice.id)
                    .limit(PAGE)
                )
            )
            for invoice in page:
                yield {
                    "account": names[invoice.customer_id],
                    "number": invoice.number,
                    "status": invoice.status,
                    "currency": invoice.currency,
                    "subtotal": invoice.subtotal,
                    "tax": invoice.tax,
                    "total": invoice.total,
                    "amount_due": invoice.amount_due,
                    "amount_paid": invoice.amount_paid,
                    "amount_refunded": invoice.amount_refunded,
                    "period_start": _time(invoice.period_start),
                    "period_end": _time(invoice.period_end),
                    "created_at": _time(invoice.created_at),
                    "hosted_invoice_url": invoice.hosted_invoice_url,
                }
            session.expunge_all()  # a page at a time in memory
            if len(page) < PAGE:
                break
            after = page[-1].id

    async def _credits(self, session: AsyncSession, accounts: list[_Account]) -> Rows:
        names = {a.id: a.external_id for a in accounts}
        after = 0
        while names:
            page = (
                await session.execute(
                    select(
                        CreditLedgerEntry.id,
                        CreditLedgerEntry.customer_id,
                        CreditLedgerEntry.meter_code,
                        CreditLedgerEntry.kind,
                        CreditLedgerEntry.amount,
                        CreditGrant.source,
                        CreditGrant.reason,
                        CreditLedgerEntry.created_at,
                    )
                    .join(CreditGrant, CreditGrant.id == CreditLedgerEntry.grant_id)
                    .where(CreditLedgerEntry.customer_id.in_(names), CreditLedgerEntry.id > after)
                    .order_by(CreditLedgerEntry.id)
                    .limit(PAGE)
                )
            ).all()
            for _id, customer_id, meter, kind, amount, source, reason, created in page:
                yield {
                    "account": names[customer_id],
                    "meter": meter,
                    "kind": kind,
                    "amount": amount,
                    "source": source,
                    "reason": reason,
                    "created_at": _time(created),
                }
            if len(page) < PAGE:
                break
            after = page[-1][0]
