"""A real SMTP server (aiosmtpd on a free port), a usage writer, and helpers to make workers."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.catalog.models import Catalog
from app.config import Settings
from app.customers.models import Customer
from app.customers.service import CustomerInput, CustomerService
from app.metering.deps import provide_metering_service
from app.metering.writer import UsageWriter
from app.notifications.sender import Sender, sender_from_settings
from app.notifications.service import NotificationService
from app.notifications.worker import NotificationWorker
from tests.support import free_port

PUBLIC_URL = "http://testserver.local"
URL = re.compile(r"""https?://[^\s"'<>]+|(?:href|src)="([^"]*)\"""")


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        return str(body.get_content())


@dataclass
class SmtpServer:
    """aiosmtpd in its own thread; records every accepted message.

    `refuse_data` answers the next N DATA commands with a 451 (a transient failure)."""

    port: int
    received: list[Received] = field(default_factory=list)
    refuse_data: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            if self.refuse_data > 0:
                self.refuse_data -= 1
                return "451 4.3.0 Try again later"
            message = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(message, EmailMessage)
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"

    def messages(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def clear(self) -> None:
        with self.lock:
            self.received.clear()
            self.refuse_data = 0


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(port=free_port())
    controller = Controller(server, hostname="127.0.0.1", port=server.port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def smtp(smtp_server: SmtpServer) -> SmtpServer:
    smtp_server.clear()
    return smtp_server


@pytest.fixture
async def writer(engine: AsyncEngine, catalog: Catalog) -> AsyncIterator[UsageWriter]:
    writer = UsageWriter(engine, catalog, upgrade_url=f"{PUBLIC_URL}/billing/upgrade")
    yield writer
    await writer.close()


MakeWorker = Callable[..., NotificationWorker]


@pytest.fixture
def make_worker(
    engine: AsyncEngine, catalog: Catalog, writer: UsageWriter, smtp: SmtpServer
) -> MakeWorker:
    def make(sender: Sender | None = None, **options: Any) -> NotificationWorker:
        sender = sender or sender_from_settings(smtp.url, PUBLIC_URL)
        options.setdefault("scan_interval", 0)
        return NotificationWorker(
            engine,
            sender,
            notifications=lambda session: NotificationService(session, PUBLIC_URL, catalog),
            metering=lambda session: provide_metering_service(session, catalog, writer),
            **options,
        )

    return make


@pytest.fixture
def settings_with_smtp(settings: Settings, smtp: SmtpServer) -> Settings:
    from dataclasses import replace

    return replace(settings, smtp_url=smtp.url)


async def make_customer(
    session: AsyncSession,
    catalog: Catalog,
    external_id: str = "cus_mail",
    email: str | None = "ada@example.com",
    plan: str | None = None,
) -> Customer:
    customer, _ = await CustomerService(session, catalog).upsert(
        CustomerInput(external_id=external_id, email=email, name="Ada", plan=plan)
    )
    return customer


async def eventually(
    check: Callable[[], Awaitable[Any] | Any], timeout: float = 10.0, what: str = "condition"
) -> Any:
    """Poll `check` (sync or async) until truthy, with a deadline; no fixed sleeps."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(delay)  # polling interval of a condition wait
        delay = min(delay * 2, 0.1)


def links(text: str) -> list[str]:
    """Every URL in a text body and every href/src in an HTML body."""
    found = []
    for match in URL.finditer(text):
        found.append(match.group(1) if match.group(1) is not None else match.group(0))
    return found


def assert_links_absolute(received: Received, allowed_prefixes: tuple[str, ...] = ()) -> None:
    prefixes = (PUBLIC_URL + "/", *allowed_prefixes)
    for kind in ("plain", "html"):
        body = received.part(kind)
        found = [u for u in links(body) if not u.startswith(("http://www.w3.org",))]
        assert found, f"no links in the {kind} body"
        for url in found:
            assert url.startswith(prefixes), f"{kind} link {url!r} is not absolute under PUBLIC_URL"


SHORT_LEASE = timedelta(milliseconds=300)
