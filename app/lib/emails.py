"""What counts as an email address: one rule for signup, admins and the customer API."""

from __future__ import annotations

import re

from app.lib.errors import ValidationFailed

EMAIL_MAX = 254
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def normalize_email(raw: str) -> str:
    """The address trimmed and lower-cased, or ValidationFailed naming the field `email`."""
    email = (raw or "").strip().lower()
    if not email:
        raise ValidationFailed("Enter your email address.", field="email")
    if len(email) > EMAIL_MAX:
        raise ValidationFailed(f"Email must be at most {EMAIL_MAX} characters.", field="email")
    if not _EMAIL.match(email):
        raise ValidationFailed("Enter a valid email address, like name@example.com.", field="email")
    return email
