"""The pages' Jinja environment (app/lib/jinja.py, shared with the emails) with the
settings as globals, and the template folders."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from app.config import PROJECT_ROOT, Settings
from app.lib.jinja import jinja_environment
from app.web.page_tokens import fresh_token

TEMPLATES_DIR = PROJECT_ROOT / "templates"
STATIC_DIR = PROJECT_ROOT / "static"


def build_environment(settings: Settings) -> Environment:
    env = jinja_environment(TEMPLATES_DIR, settings.brand)
    env.globals["settings"] = settings
    env.globals["demo_mode"] = settings.demo_mode
    env.globals["form_attempt"] = form_attempt
    return env


def form_attempt() -> str:
    """A fresh id per rendered form (its hidden `attempt` field): the action's Stripe
    idempotency key includes it, so a double submit of that form is one action at Stripe,
    while the next page's form is a new one (a page served from the page cache too:
    app/web/page_tokens.py)."""
    return fresh_token()


def template_config(settings: Settings) -> TemplateConfig[Any]:
    engine = JinjaTemplateEngine.from_environment(build_environment(settings))
    return TemplateConfig(instance=engine)
