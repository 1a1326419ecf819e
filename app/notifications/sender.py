"""Sending one email: SMTP (`SMTP_URL`), or the log when SMTP_URL is unset.

`SMTP_URL` forms:

- `smtp://[user:pass@]host[:port]` — plain SMTP (port 25); add `?starttls=1` for STARTTLS;
- `smtp+starttls://[user:pass@]host[:port]` — STARTTLS (port 587);
- `smtps://[user:pass@]host[:port]` — TLS from the start (port 465);
- `?from=billing@example.com` sets the sender (default `no-reply@<PUBLIC_URL host>`);
  `?timeout=20` the socket timeout in seconds.

The stdlib `smtplib` runs in a thread (`asyncio.to_thread`), so a slow server never blocks
the event loop. `send()` returns once the server accepted the message (250 after DATA).
"""

from __future__ import annotations

import asyncio
import ipaddress
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlparse

import structlog

from app.lib.branding import Brand
from app.notifications.models import EmailOutboxMessage

log = structlog.get_logger()

_TRUE = {"1", "true", "yes", "on"}
_DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


class PermanentSendError(Exception):
    """The server refused for good (5xx for the recipient): retrying will not help."""


class Sender(Protocol):
    async def send(self, message: EmailOutboxMessage) -> None: ...


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    implicit_tls: bool = False
    from_address: str | None = None
    timeout: float = 20.0


def parse_smtp_url(url: str) -> SmtpConfig:
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(
            f"SMTP_URL must start with smtp://, smtp+starttls:// or smtps:// ({url!r})"
        )
    if not parsed.hostname:
        raise ValueError(f"SMTP_URL has no host ({url!r})")
    query = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    return SmtpConfig(
        host=parsed.hostname,
        port=parsed.port or _DEFAULT_PORTS[scheme],
        username=unquote(parsed.username) if parsed.username else None,
        password=unquote(parsed.password) if parsed.password else None,
        starttls=scheme == "smtp+starttls" or query.get("starttls", "").lower() in _TRUE,
        implicit_tls=scheme == "smtps",
        from_address=query.get("from") or None,
        timeout=float(query.get("timeout") or 20.0),
    )


def default_from_address(public_url: str) -> str:
    host = urlparse(public_url).hostname or "localhost"
    try:
        ipaddress.ip_address(host)
        host = "localhost"  # an address literal is not a mail domain
    except ValueError:
        pass
    return formataddr((Brand.from_env().name, f"no-reply@{host}"))


def build_email(message: EmailOutboxMessage, from_address: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = from_address
    email["To"] = message.to_address
    email["Subject"] = message.subject
    email["Date"] = formatdate(localtime=False)
    # Derived from the dedupe key: a resend after a crash carries the same id.
    email["Message-ID"] = message.message_id
    email["Auto-Submitted"] = "auto-generated"
    support = Brand.from_env().support_email
    if support:  # BRAND_SUPPORT_EMAIL: a reply reaches people, not no-reply@
        email["Reply-To"] = support
    email.set_content(message.text_body)
    email.add_alternative(message.html_body, subtype="html")
    return email


class SmtpSender:
    def __init__(self, config: SmtpConfig, from_address: str) -> None:
        self.config = config
        self.from_address = config.from_address or from_address

    async def send(self, message: EmailOutboxMessage) -> None:
        email = build_email(message, self.from_address)
        await asyncio.to_thread(self._send, email)

    def _send(self, email: EmailMessage) -> None:
        config = self.config
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if config.implicit_tls:
            smtp = smtplib.SMTP_SSL(
                config.host, config.port, timeout=config.timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
        with smtp:
            if config.starttls:
                smtp.starttls(context=context)
            if config.username:
                smtp.login(config.username, config.password or "")
            try:
                smtp.send_message(email)
            except smtplib.SMTPRecipientsRefused as exc:
                codes = [code for code, _ in exc.recipients.values()]
                if codes and all(500 <= code < 600 for code in codes):
                    raise PermanentSendError(f"recipient refused: {exc.recipients}") from exc
                raise


class LogSender:
    """No SMTP_URL: the email is written to the log (and stays on the admin Outbox page)."""

    async def send(self, message: EmailOutboxMessage) -> None:
        log.info(
            "email not sent (SMTP_URL is unset); logged instead",
            to=message.to_address,
            subject=message.subject,
            kind=message.kind,
            message_id=message.message_id,
            text=message.text_body,
        )


def sender_from_settings(smtp_url: str | None, public_url: str) -> Sender:
    if not smtp_url:
        return LogSender()
    return SmtpSender(parse_smtp_url(smtp_url), default_from_address(public_url))
