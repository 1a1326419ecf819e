"""The admin's reports (issue 20, item 6), HTTP only; the queries are in usage_reports.py.

- `/admin/billing/reports/usage?from=&to=&after=`: usage per customer and meter for a date
  range (at most 366 days), a chart per meter and a table paged by keyset (`after`: the
  last row's `customer id:meter`); `usage.csv` streams it all.
- `/admin/billing/reports/credits?from=&to=`: credits granted, used, expired and refunded
  per pack and month, charted, with a table; `credits.csv`.

A bad range (not a date, `to` before `from`, too long) shows the page again with the error
and status 422; the CSVs answer the 422 error page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter
from litestar.response import Stream, Template

from app.accounts.guards import requires_admin
from app.admin.usage_reports import UsageReports
from app.lib.clock import add_months, start_of_month, utcnow
from app.lib.date_ranges import MAX_DAYS, DateRange, parse_range
from app.lib.errors import ValidationFailed
from app.web.downloads import download
from app.web.responses import page

BASE = "/admin/billing/reports"
USAGE_DAYS = 30
CREDIT_MONTHS = 12
FromParam = Annotated[str, QueryParameter(name="from")]
ToParam = Annotated[str, QueryParameter(name="to")]


def default_usage_range() -> DateRange:
    today = utcnow().date()
    return DateRange(today - timedelta(days=USAGE_DAYS - 1), today)


def default_credit_range() -> DateRange:
    now = utcnow()
    first = add_months(start_of_month(now), -(CREDIT_MONTHS - 1))
    return DateRange(first.date(), now.date())


def _form(first: str, last: str, chosen: DateRange | None) -> dict[str, str]:
    if chosen is not None:
        return {"from": chosen.first.isoformat(), "to": chosen.last.isoformat()}
    return {"from": first, "to": last}


async def _report_page(
    request: Request[Any, Any, Any],
    template: str,
    first: str,
    last: str,
    default: DateRange,
    build: Callable[[DateRange], Awaitable[Any]],
    fragment: str | None = None,
) -> Template:
    """The report for the range asked for, or the form again with the range's error (422)."""
    context: dict[str, Any] = {"max_days": MAX_DAYS, "report": None, "error": None}
    try:
        chosen = parse_range(first, last, default=default)
    except ValidationFailed as exc:
        context.update(
            form=_form(first, last, None), error=exc.message, field=exc.extra.get("field")
        )
        return page(request, template, context, status_code=422)
    context.update(form=_form(first, last, chosen), report=await build(chosen))
    return page(request, template, context, fragment=fragment)


def _csv(
    kind: str, first: str, last: str, default: DateRange, chunks: Callable[[DateRange], Any]
) -> Stream:
    chosen = parse_range(first, last, default=default)
    name = f"{kind}-report-{chosen.first.isoformat()}-to-{chosen.last.isoformat()}.csv"
    return download(chunks(chosen), name)


class UsageReportController(Controller):
    path = BASE
    guards = [requires_admin]
    include_in_schema = False

    @get("/usage")
    async def usage(
        self,
        request: Request[Any, Any, Any],
        usage_reports: NamedDependency[UsageReports],
        first: FromParam = "",
        last: ToParam = "",
        after: FromQuery[str] = "",
    ) -> Template:
        reports = usage_reports
        return await _report_page(
            request,
            "admin/usage_report.html",
            first,
            last,
            default_usage_range(),
            lambda chosen: reports.usage(chosen, after),
            fragment="admin/_usage_report_rows.html",
        )

    @get("/usage.csv")
    async def usage_csv(
        self,
        usage_reports: NamedDependency[UsageReports],
        first: FromParam = "",
        last: ToParam = "",
    ) -> Stream:
        reports = usage_reports
        return _csv("usage", first, last, default_usage_range(), reports.usage_csv)

    @get("/credits")
    async def credits(
        self,
        request: Request[Any, Any, Any],
        usage_reports: NamedDependency[UsageReports],
        first: FromParam = "",
        last: ToParam = "",
    ) -> Template:
        reports = usage_reports
        return await _report_page(
            request,
            "admin/credit_report.html",
            first,
            last,
            default_credit_range(),
            reports.credits,
        )

    @get("/credits.csv")
    async def credits_csv(
        self,
        usage_reports: NamedDependency[UsageReports],
        first: FromParam = "",
        last: ToParam = "",
    ) -> Stream:
        reports = usage_reports
        return _csv("credit", first, last, default_credit_range(), reports.credits_csv)
