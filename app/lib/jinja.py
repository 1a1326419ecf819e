"""The one Jinja environment of the pages and the emails: the template folder, autoescaping
of HTML, and the same filters (`money`, `cents`, `date`, `number`, `path_segment`) for both."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.lib.countries import address_lines
from app.lib.money import format_money
from app.lib.tax_ids import tax_id_label
from app.lib.urls import path_segment

PRODUCT_NAME = "Billing Portal"


def format_date(value: datetime | None, fmt: str = "%b %-d, %Y") -> str:
    return value.strftime(fmt) if value else "—"


def format_number(value: int | float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,}"


def format_amount(amount: int | None, currency: str = "usd") -> str:
    return format_money(int(amount or 0), currency)


def format_cents(amount: int | None, currency: str = "usd") -> str:
    return format_money(int(amount or 0), currency, cents=True)


def jinja_environment(templates_dir: Path, **options: Any) -> Environment:
    """The environment over `templates_dir`; `options` are Jinja's own (the emails pass
    `undefined=StrictUndefined` and `keep_trailing_newline=True`)."""
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
    env.filters["number"] = format_number
    env.filters["path_segment"] = path_segment
    env.filters["address_lines"] = address_lines
    env.filters["tax_id_label"] = tax_id_label
    env.globals["product_name"] = PRODUCT_NAME
    return env
