"""The account emails (links that prove the person reads the address) and what sends them.

Accounts sit below the notifications domain in the layers (pyproject's import contracts), so
`AccountFlows` names a `Mailer`, which the notification service is, rather than import it; the
notification service takes these kinds from here.
"""

from __future__ import annotations

from typing import Any, Protocol

from app.customers.models import Customer

PASSWORD_RESET = "password_reset"  # noqa: S105 (an email kind)
VERIFY_EMAIL = "verify_email"
EMAIL_CHANGE = "email_change"  # to the new address: confirm it
EMAIL_CHANGE_NOTICE = "email_change_notice"  # to the old address: it is being changed
ACCOUNT_KINDS = frozenset({PASSWORD_RESET, VERIFY_EMAIL, EMAIL_CHANGE, EMAIL_CHANGE_NOTICE})


class Mailer(Protocol):
    def url(self, path: str) -> str: ...

    def render(self, kind: str, subject: str, context: dict[str, Any]) -> object: ...

    async def enqueue(
        self,
        *,
        dedupe_key: str,
        kind: str,
        customer: Customer,
        subject: str,
        context: dict[str, Any],
        to_address: str | None = None,
    ) -> object: ...
