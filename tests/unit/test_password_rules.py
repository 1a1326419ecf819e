"""Which new passwords are refused, and why the form says so."""

from __future__ import annotations

import pytest

from app.accounts.password_rules import check_new_password, common_passwords
from app.lib.errors import ValidationFailed


@pytest.mark.parametrize(
    ("password", "email", "message"),
    [
        (" " * 8, "", "only spaces"),
        ("\t \u00a0   \n ", "", "only spaces"),
        ("password", "", "most common"),
        ("12345678", "", "most common"),
        ("PassWord", "", "most common"),
        ("iloveyou", "", "most common"),
        ("ada@example.com", "Ada@Example.com", "your email"),
        ("short", "", "at least 8"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(password, email, message) -> None:
    with pytest.raises(ValidationFailed) as raised:
        check_new_password(password, email)
    assert message in raised.value.message
    assert raised.value.extra["field"] == "password"


@pytest.mark.parametrize("password", ["correct horse battery", "demo-password", "Tr0ub4dor&3x"])
def test_ordinary_passwords_are_accepted(password) -> None:
    assert check_new_password(password, "ada@example.com") == password


def test_the_shipped_list_holds_ten_thousand_passwords_the_length_rule_lets_through() -> None:
    passwords = common_passwords()
    assert len(passwords) == 10_000
    assert all(len(p) >= 8 for p in passwords)
