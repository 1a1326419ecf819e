"""Pages and emails render through one Jinja environment: the same filters, the same words."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from jinja2 import UndefinedError

from app.config import Settings
from app.notifications.service import email_environment
from app.web.templating import build_environment

WHEN = datetime(2026, 3, 5, 9, 30, tzinfo=UTC)
TEMPLATE = "{{ when | date }} {{ n | number }} {{ amount | money('usd') }} {{ product_name }}"


def test_pages_and_emails_share_filters_and_formats() -> None:
    pages = build_environment(Settings.from_env())
    emails = email_environment()
    values = {"when": WHEN, "n": 1234567, "amount": 2900}
    page_text = pages.from_string(TEMPLATE).render(values)
    email_text = emails.from_string(TEMPLATE).render(values)
    assert page_text == email_text == "Mar 5, 2026 1,234,567 $29 Billing Portal"
    assert set(pages.filters) >= {"date", "number", "money", "path_segment"}
    assert {name: pages.filters[name] for name in ("date", "number", "money")} == {
        name: emails.filters[name] for name in ("date", "number", "money")
    }


def test_emails_refuse_a_missing_variable_and_keep_their_last_newline() -> None:
    emails = email_environment()
    with pytest.raises(UndefinedError):
        emails.from_string("Hi {{ nobody }}").render()
    assert emails.from_string("line\n").render() == "line\n"
    text = emails.get_template("emails/_footer.txt")
    assert not text.environment.autoescape(text.name)  # plain-text bodies are not escaped
