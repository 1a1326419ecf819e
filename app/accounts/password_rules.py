"""What makes a new password acceptable: length, not blank, not common, not the email."""

from __future__ import annotations

import functools
from pathlib import Path

from app.lib.errors import ValidationFailed

PASSWORD_MIN = 8
PASSWORD_MAX = 128
COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list (lowercase), read once per process on first use."""
    with COMMON_PASSWORDS_FILE.open(encoding="utf-8") as handle:
        return frozenset(
            line.strip() for line in handle if line.strip() and not line.startswith("#")
        )


def check_new_password(password: str, email: str = "") -> str:
    """The password when it may be set; `ValidationFailed` on `password` saying why not."""
    if not password:
        raise ValidationFailed("Enter a password.", field="password")
    if len(password) < PASSWORD_MIN:
        raise ValidationFailed(
            f"Password must be at least {PASSWORD_MIN} characters.", field="password"
        )
    if len(password) > PASSWORD_MAX:
        raise ValidationFailed(
            f"Password must be at most {PASSWORD_MAX} characters.", field="password"
        )
    if not password.strip():
        raise ValidationFailed("Password cannot be only spaces.", field="password")
    folded = password.strip().casefold()
    if email and folded == email.strip().casefold():
        raise ValidationFailed("Password cannot be your email address.", field="password")
    if folded in common_passwords():
        raise ValidationFailed(
            "This password is one of the most common ones and easy to guess. Choose another.",
            field="password",
        )
    return password
