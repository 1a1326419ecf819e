"""One email rule for signup, admins and the customer API (app.lib.emails)."""

from __future__ import annotations

import pytest

from app.accounts import service as accounts
from app.customers import service as customers
from app.lib.emails import normalize_email
from app.lib.errors import ValidationFailed


def test_signup_and_the_customer_api_share_the_rule():
    assert accounts.normalize_email is customers.normalize_email is normalize_email


def test_an_address_is_trimmed_and_lower_cased():
    assert normalize_email("  Ada@Example.COM ") == "ada@example.com"


@pytest.mark.parametrize("raw", ["", "  ", "not-an-email", "a@b", "a b@example.com", "@x.io"])
def test_anything_else_is_refused_naming_the_field(raw):
    with pytest.raises(ValidationFailed) as refused:
        normalize_email(raw)
    assert refused.value.extra == {"field": "email"}
