"""The customer's usage downloads (issue 20, item 6): `/billing/usage.csv` (per day per meter,
`?from=YYYY-MM-DD&to=YYYY-MM-DD`, default the current billing period) and
`/billing/usage/events.csv` (the current period's raw events). Every member of the
organization may download them; streamed, never cached (not in the page cache's paths,
`Cache-Control: no-store`)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Stream

from app.accounts.guards import requires_user
from app.billing.usage_export import UsageExport
from app.customers.models import MEMBER, Customer
from app.lib.date_ranges import parse_range
from app.organizations.guards import requires_role
from app.web.downloads import download

FromParam = Annotated[str, QueryParameter(name="from")]
ToParam = Annotated[str, QueryParameter(name="to")]


class UsageExportController(Controller):
    path = "/billing"
    include_in_schema = False
    guards = [requires_user, requires_role(MEMBER)]

    @get("/usage.csv")
    async def usage_per_day(
        self,
        usage_export: NamedDependency[UsageExport],
        current_customer: NamedDependency[Customer],
        first: FromParam = "",
        last: ToParam = "",
    ) -> Stream:
        export = usage_export
        chosen = None
        if first.strip() or last.strip():
            period = await export.period_range(current_customer)
            chosen = parse_range(first, last, default=period)
        name = "usage-per-day"
        if chosen is not None:
            name += f"-{chosen.first.isoformat()}-to-{chosen.last.isoformat()}"
        return download(export.day_chunks(current_customer.id, chosen), f"{name}.csv")

    @get("/usage/events.csv")
    async def usage_events(
        self,
        usage_export: NamedDependency[UsageExport],
        current_customer: NamedDependency[Customer],
    ) -> Stream:
        export = usage_export
        chunks = export.event_chunks(current_customer.id)
        return download(chunks, "usage-events.csv")


__all__ = ["UsageExportController"]
