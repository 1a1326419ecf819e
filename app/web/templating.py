"""The Jinja environment: template folders, filters and globals shared by every page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from app.config import PROJECT_ROOT, Settings
from app.lib.money import format_money
from app.lib.urls import path_segment

TEMPLATES_DIR = PROJECT_ROOT / "templates"
STATIC_DIR = PROJECT_ROOT / "static"


def format_date(value: datetime | None, fmt: str = "%b %-d, %Y") -> str:
    return value.strftime(fmt) if value else "—"


def format_number(value: int | float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,}"


def build_environment(settings: Settings) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html", "xml"]),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters["money"] = lambda amount, currency="usd": format_money(int(amount or 0), currency)
    env.filters["date"] = format_date
    env.filters["number"] = format_number
    env.filters["path_segment"] = path_segment
    env.globals["settings"] = settings
    env.globals["demo_mode"] = settings.demo_mode
    env.globals["product_name"] = "Billing Portal"
    return env


def template_config(settings: Settings) -> TemplateConfig[Any]:
    engine = JinjaTemplateEngine.from_environment(build_environment(settings))
    return TemplateConfig(instance=engine)
