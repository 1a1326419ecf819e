"""The admin's read side: customer search and detail (with its derived subscription history),
the read-only portal view, and the lists of invoices, Stripe events, API keys and audit entries.

The overview's numbers are in `app/admin/metrics.py`, the audited commands in
`app/admin/commands.py`; `AdminService` builds both over the same session and repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.audit_text import AuditRow, Names, audit_row
from app.admin.commands import ACTIONS, PORTAL_VIEW_WINDOW, Actor, AdminCommands
from app.admin.metrics import AdminMetrics
from app.admin.models import AuditLog
from app.admin.refunds import AdminRefunds
from app.admin.repository import (
    COUNT_CAP,
    SORTS,
    AdminRepository,
    AuditEntryRow,
    CustomerQuery,
    CustomerRow,
)
from app.apikeys.models import ApiKey
from app.apikeys.service import ApiKeyService
from app.billing.rules import clamp_page, page_count
from app.billing.service import BillingService
from app.billing.stripe_objects import plan_item
from app.billing.views import BillingPages
from app.catalog.models import Catalog, Plan
from app.customers.models import Customer
from app.customers.service import CustomerService
from app.customers.statuses import SubscriptionStatus
from app.lib.clock import utcnow
from app.lib.errors import NotFound
from app.metering.service import MeteringService
from app.stripe_sync.models import StripeEvent
from app.stripe_sync.service import StripeEventService

T = TypeVar("T")
PER_PAGE = 25
SUBSCRIPTION_STATUSES = tuple(SubscriptionStatus)
INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")
EVENT_STATUSES = ("received", "processed", "failed", "ignored")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    pages: int
    total: int
    per_page: int = PER_PAGE


@dataclass(frozen=True)
class CustomerPage:
    """A page of the customer search: keyset paging (`next_after` is the next page's cursor,
    None on the last page) and a count that stops at `COUNT_CAP` (`capped`: more than that)."""

    items: list[CustomerRow]
    total: int
    capped: bool
    next_after: str | None
    first: bool

    @property
    def total_text(self) -> str:
        return f"{COUNT_CAP:,}+" if self.capped else f"{self.total:,}"


def _cursor_text(cursor: tuple[str, int]) -> str:
    return f"{cursor[0]}~{cursor[1]}"


def parse_cursor(text: str, sort: str) -> tuple[str, int] | None:
    """The `after` parameter back into a sort key; None (the first page) when malformed."""
    value, sep, number = (text or "").rpartition("~")
    if not sep or not number.isdigit() or len(value) > 300:
        return None
    if sort != "email":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return None
    return (value, int(number))


@dataclass(frozen=True)
class HistoryRow:
    at: datetime
    source: str
    text: str


@dataclass
class CustomerDetail:
    customer: Customer
    account: Any
    meters: Any
    ledger: list[Any]
    invoices: list[Any]
    invoice_page: int
    invoice_pages: int
    invoice_total: int
    cards: list[Any]
    usage: list[Any]
    events: list[StripeEvent]
    history: list[HistoryRow]
    audit: list[AuditRow]


class AdminService:
    def __init__(
        self,
        session: AsyncSession,
        catalog: Catalog,
        *,
        customers: CustomerService,
        metering: MeteringService,
        pages: BillingPages,
        billing: BillingService,
        events: StripeEventService,
        api_keys: ApiKeyService,
    ) -> None:
        self.session = session
        self.catalog = catalog
        self.customers = customers
        self.metering = metering
        self.pages = pages
        self.api_keys = api_keys
        self.repo = AdminRepository(session)
        self.metrics = AdminMetrics(self.repo, catalog)
        self.commands = AdminCommands(
            session,
            self.repo,
            catalog,
            customers=customers,
            metering=metering,
            billing=billing,
            events=events,
            api_keys=api_keys,
        )
        self.refunds = AdminRefunds(self.commands, billing, catalog)

    # Customers -----------------------------------------------------------------------------

    def customer_query(
        self, q: str, plan: str, status: str, sort: str, after: str = ""
    ) -> CustomerQuery:
        sort = sort if sort in SORTS else "newest"
        return CustomerQuery(
            q=(q or "").strip()[:254],
            plan=plan if plan in self.catalog.plans else "",
            status=status if status in SUBSCRIPTION_STATUSES else "",
            sort=sort,
            after=parse_cursor(after, sort),
        )

    async def search_customers(self, params: CustomerQuery) -> CustomerPage:
        """The customers after `params.after`: the count (up to `COUNT_CAP`) is of the whole
        search, not of the rows left after the cursor."""
        total = await self.repo.count_customers(params, COUNT_CAP)
        capped = total > COUNT_CAP
        rows = await self.repo.customers(params, limit=PER_PAGE + 1, many=capped)
        more = len(rows) > PER_PAGE
        rows = rows[:PER_PAGE]
        return CustomerPage(
            items=rows,
            total=min(total, COUNT_CAP),
            capped=capped,
            next_after=_cursor_text(rows[-1].cursor(params.sort)) if more else None,
            first=params.after is None,
        )

    async def customer(self, external_id: str) -> Customer:
        return await self.customers.get(external_id)

    async def customer_detail(self, external_id: str, invoice_page: Any = 1) -> CustomerDetail:
        customer = await self.customers.get(external_id)
        account = await self.pages.account(customer)
        rows, number, pages, total = await self.pages.invoices(customer, invoice_page)
        events: list[StripeEvent] = []
        if customer.stripe_customer_id:
            events = await self.repo.customer_events(customer.stripe_customer_id)
        audit = await self.repo.audit_for("customer", customer.external_id)
        return CustomerDetail(
            customer=customer,
            account=account,
            meters=await self.pages.meters(customer, plan=account.plan),
            ledger=await self.pages.ledger(customer),
            invoices=rows,
            invoice_page=number,
            invoice_pages=pages,
            invoice_total=total,
            cards=await self.pages.cards(customer, account),
            usage=await self.metering.recent_events(customer.id),
            events=events,
            history=self._history(customer, events, audit),
            audit=await self._customer_audit(customer, audit),
        )

    async def _customer_audit(self, customer: Customer, entries: list[AuditLog]) -> list[AuditRow]:
        """The admin actions on this customer in words (who as recorded at the time)."""
        names = await self.audit_names(entries)
        return [
            audit_row(
                AuditEntryRow(
                    entry, customer.email, customer.name, customer.deleted_at, entry.actor_email
                ),
                names,
            )
            for entry in entries
        ]

    def _history(
        self, customer: Customer, events: list[StripeEvent], audit: list[AuditLog]
    ) -> list[HistoryRow]:
        """Subscription and status history, derived from the Stripe event ledger and the audit
        log (there is no history table): newest first."""
        rows = [HistoryRow(customer.created_at, "Portal", "Customer created")]
        for event in events:
            if not event.type.startswith("customer.subscription."):
                continue
            obj = (event.payload.get("data") or {}).get("object") or {}
            item = plan_item(self.catalog, obj)
            lookup = (item.get("price") or {}).get("lookup_key") if item else None
            found = self.catalog.plan_for_lookup_key(lookup) if lookup else None
            plan = f"{found[0].name} ({found[1].interval}ly)" if found else (lookup or "?")
            text = f"{event.type.removeprefix('customer.subscription.')}: {obj.get('status')}"
            text += f" on {plan}"
            if obj.get("cancel_at_period_end"):
                text += ", cancels at period end"
            rows.append(
                HistoryRow(datetime.fromtimestamp(event.stripe_created, tz=UTC), "Stripe", text)
            )
        for entry in audit:
            if entry.action in ("change_plan", "cancel", "resume"):
                rows.append(
                    HistoryRow(
                        entry.created_at,
                        f"Admin {entry.actor_email}",
                        f"{ACTIONS[entry.action]}: {entry.details.get('result', '')}",
                    )
                )
        return sorted(rows, key=lambda r: r.at, reverse=True)

    async def portal_view(self, external_id: str, actor: Actor) -> dict[str, Any] | None:
        """The customer's dashboard data, read-only; None unless this admin confirmed (and
        audited) opening it within `PORTAL_VIEW_WINDOW`."""
        customer = await self.customers.get(external_id)
        opened = await self.repo.last_audit(
            actor.user_id, "view_portal", "customer", customer.external_id
        )
        if opened is None or utcnow() - opened.created_at > PORTAL_VIEW_WINDOW:
            return None
        account = await self.pages.account(customer)
        rows, _page, _pages, invoice_count = await self.pages.invoices(customer, 1, per_page=5)
        return {
            "customer": customer,
            "account": account,
            "plan": account.plan,
            "subscription": account.subscription,
            "status": account.status,
            "meters": await self.pages.meters(customer, plan=account.plan),
            "chart": await self.pages.chart(customer),
            "invoices": rows,
            "invoice_count": invoice_count,
            "cards": await self.pages.cards(customer, account),
            "ledger": await self.pages.ledger(customer, limit=10),
            "opened": opened,
        }

    def plan_choices(self) -> list[Plan]:
        return list(self.catalog.plans.values())

    # Lists -------------------------------------------------------------------------------

    async def audit_log(self, q: str, action: str, page: Any) -> Page[AuditRow]:
        """A page of the audit log in words: people by email, details as sentences."""
        action = action if action in ACTIONS else ""
        q = (q or "").strip()[:200]
        total = await self.repo.count_audit(q, action)
        pages = page_count(total, PER_PAGE)
        number = clamp_page(page, pages)
        rows = await self.repo.audit(q, action, offset=(number - 1) * PER_PAGE, limit=PER_PAGE)
        names = await self.audit_names([row.entry for row in rows])
        return Page([audit_row(row, names) for row in rows], number, pages, total)

    async def audit_names(self, entries: list[AuditLog]) -> Names:
        """The names the entries' details refer to: meters and plans, and refunded invoices'
        numbers."""
        refunded = {
            str(entry.details.get("object"))
            for entry in entries
            if entry.action == "invoice.refund" and entry.details.get("object")
        }
        return Names(
            meters={code: meter.name for code, meter in self.catalog.meters.items()},
            plans={slug: plan.name for slug, plan in self.catalog.plans.items()},
            invoices=await self.repo.invoice_numbers(refunded),
        )

    async def list_api_keys(self) -> list[ApiKey]:
        return await self.api_keys.list()

    async def api_key(self, key_id: int) -> ApiKey:
        for key in await self.api_keys.list():
            if key.id == key_id:
                return key
        raise NotFound("No such API key.")

    async def stripe_events(self, status: str, type_prefix: str, page: Any) -> Page[StripeEvent]:
        status = status if status in EVENT_STATUSES else ""
        type_prefix = (type_prefix or "").strip()[:100]
        total = await self.repo.count_events(status, type_prefix)
        pages = page_count(total, PER_PAGE)
        number = clamp_page(page, pages)
        rows = await self.repo.events(
            status, type_prefix, offset=(number - 1) * PER_PAGE, limit=PER_PAGE
        )
        return Page(rows, number, pages, total)

    async def stripe_event(self, stripe_event_id: str) -> tuple[StripeEvent, Customer | None]:
        event = await self.repo.event(stripe_event_id)
        if event is None:
            raise NotFound(f"No Stripe event {stripe_event_id!r}.", code="event_not_found")
        customer = None
        if event.stripe_customer_id:
            customer = await self.customers.by_stripe_id(event.stripe_customer_id)
        return event, customer

    # Invoices ------------------------------------------------------------------------------

    async def invoices(self, status: str, page: Any) -> tuple[Page[Any], list[Any]]:
        status = status if status in INVOICE_STATUSES else ""
        totals = await self.repo.invoice_totals(status)
        total = sum(n for _, n, _, _ in totals)
        pages = page_count(total, PER_PAGE)
        number = clamp_page(page, pages)
        rows = await self.repo.invoices(status, offset=(number - 1) * PER_PAGE, limit=PER_PAGE)
        return Page(rows, number, pages, total), totals
