"""The hosted pages' Jinja environment (templates/ beside this module) and its filters."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader

from app.lib.money import ZERO_DECIMAL_CURRENCIES

_HERE = Path(__file__).parent

# Served at STYLESHEET_PATH: the pages' Content-Security-Policy allows no inline style.
STYLESHEET_PATH = "/assets/emulator.css"
STYLESHEET = (_HERE / "static" / "emulator.css").read_text(encoding="utf-8")
# Its icon (linked from base.html, and at /favicon.ico for browsers that ask anyway).
FAVICON_PATH = "/assets/favicon.svg"
FAVICON = (_HERE / "static" / "favicon.svg").read_bytes()


def money(amount: int | None, currency: str | None) -> str:
    """Stripe's hosted-page style: `1,500 JPY`, `-15.00 USD`."""
    currency = (currency or "usd").lower()
    value = amount or 0
    if currency in ZERO_DECIMAL_CURRENCIES:
        return f"{value:,} {currency.upper()}"
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value) / 100:,.2f} {currency.upper()}"


def date(timestamp: int | None) -> str:
    if not timestamp:
        return "—"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def interval(price: dict[str, Any]) -> str:
    """` / month`, ` / 3 months`, or nothing for a one-time price."""
    recurring = price.get("recurring")
    if not recurring:
        return ""
    count = recurring.get("interval_count") or 1
    return f" / {recurring['interval']}" if count == 1 else f" / {count} {recurring['interval']}s"


_environment = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)
_environment.filters.update(money=money, date=date, interval=interval)
_environment.globals["stylesheet_path"] = STYLESHEET_PATH
_environment.globals["favicon_path"] = FAVICON_PATH


def render_page(template: str, **context: Any) -> str:
    return _environment.get_template(template).render(**context)
