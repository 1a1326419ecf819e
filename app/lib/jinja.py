"""The one Jinja environment of the pages and the emails: the template folder, autoescaping
of HTML, and the same filters (`money`, `cents`, `date`, `datetime`, `number`,
`path_segment`) for both.

Dates have one format everywhere (issue 21, item 4): `date` writes "Dec 18, 2026" and
`datetime` "Dec 18, 2026, 14:05 UTC" (always UTC). Either takes `relative=True` on pages:
"in 3 days", "2 hours ago" inside `<time datetime=... title=exact>` (emails keep the exact
form: an inbox is read days later)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from app.lib.branding import Brand
from app.lib.clock import utcnow
from app.lib.countries import address_lines
from app.lib.money import format_money
from app.lib.tax_ids import tax_id_label
from app.lib.urls import path_segment


def _utc(value: date) -> date:
    """A datetime in UTC (naive ones are UTC, as SQLite stores them); a date as it is."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def format_date(value: date | None, relative: bool = False) -> str:
    """'Dec 18, 2026' (a datetime's UTC day); '—' for none."""
    if value is None:
        return "—"
    moment = _utc(value)
    text = f"{moment:%b} {moment.day}, {moment.year}"
    return _relative(moment, text) if relative else text


def format_datetime(value: date | None, relative: bool = False) -> str:
    """'Dec 18, 2026, 14:05 UTC'; a plain date has no time ('Dec 18, 2026'); '—' for none."""
    if not isinstance(value, datetime):
        return format_date(value, relative)
    moment = _utc(value)
    assert isinstance(moment, datetime)
    text = f"{format_date(moment)}, {moment:%H:%M} UTC"
    return _relative(moment, text) if relative else text


def relative_time(value: date, now: datetime | None = None) -> str:
    """'just now', '5 minutes ago', 'in 2 hours', 'yesterday', 'in 3 days', '2 months ago'."""
    now = now or utcnow()
    moment = _utc(value)
    if not isinstance(moment, datetime):  # a day: counted in whole days from today (UTC)
        days = (moment - now.astimezone(UTC).date()).days
        seconds = days * 86400
    else:
        seconds = round((moment - now).total_seconds())
        days = round(seconds / 86400)
    size = abs(seconds)
    if size < 45:
        return "just now" if isinstance(moment, datetime) else "today"
    if size < 2700:
        count, unit = max(1, round(size / 60)), "minute"
    elif size < 79200:
        count, unit = max(1, round(size / 3600)), "hour"
    elif abs(days) == 1:
        return "tomorrow" if seconds > 0 else "yesterday"
    elif abs(days) < 45:
        count, unit = abs(days), "day"
    elif abs(days) < 320:
        count, unit = max(1, round(abs(days) / 30.44)), "month"
    else:
        count, unit = max(1, round(abs(days) / 365.25)), "year"
    words = f"{count} {unit}{'' if count == 1 else 's'}"
    return f"in {words}" if seconds > 0 else f"{words} ago"


def _relative(moment: date, exact: str) -> Markup:
    """The relative time, with the exact one in the `<time>` element's title and attribute."""
    stamp = moment.replace(microsecond=0) if isinstance(moment, datetime) else moment
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        stamp.isoformat(), exact, escape(relative_time(moment))
    )


def format_number(value: int | float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,}"


def format_amount(amount: int | None, currency: str = "usd") -> str:
    return format_money(int(amount or 0), currency)


def format_cents(amount: int | None, currency: str = "usd") -> str:
    return format_money(int(amount or 0), currency, cents=True)


def jinja_environment(
    templates_dir: Path, brand: Brand | None = None, **options: Any
) -> Environment:
    """The environment over `templates_dir`; `brand` names the product (`product_name`) and
    gives `brand` (logo, colour, support email): the pages pass their settings' one, the
    emails get the same `BRAND_*` settings read here; `options` are Jinja's own (the emails
    pass `undefined=StrictUndefined` and `keep_trailing_newline=True`)."""
    brand = brand or Brand.from_env()
    env = Environment(
        loader=FileSystemLoader(templates_dir),
        autoescape=select_autoescape(["html", "xml"]),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        **options,
    )
    env.filters["money"] = format_amount
    env.filters["cents"] = format_cents
    env.filters["date"] = format_date
    env.filters["datetime"] = format_datetime
    env.filters["number"] = format_number
    env.filters["path_segment"] = path_segment
    env.filters["address_lines"] = address_lines
    env.filters["tax_id_label"] = tax_id_label
    env.globals["product_name"] = brand.name
    env.globals["brand"] = brand
    return env
