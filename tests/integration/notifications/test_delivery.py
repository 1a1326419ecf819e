"""The email outbox against a real SMTP server: content, idempotency, retries, exactly once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Catalog
from app.lib.clock import utcnow
from app.notifications.models import EmailOutboxMessage
from app.notifications.sender import SmtpSender, parse_smtp_url
from app.notifications.service import PAYMENT_SUCCEEDED, NotificationService
from tests.integration.notifications.conftest import (
    PUBLIC_URL,
    SHORT_LEASE,
    MakeWorker,
    SmtpServer,
    eventually,
    make_customer,
)


async def _enqueue(session: AsyncSession, catalog: Catalog, key: str = "test:1", **kw) -> None:
    customer = kw.pop("customer", None) or await make_customer(session, catalog)
    service = NotificationService(session, PUBLIC_URL, catalog)
    await service.enqueue(
        dedupe_key=key,
        kind=PAYMENT_SUCCEEDED,
        customer=customer,
        subject=f"Payment received ({key})",
        context={
            "invoice": _Invoice(),
            "amount": "$29",
        },
    )
    await session.commit()


class _Invoice:
    number = "INV-0001"
    hosted_invoice_url = "https://invoice.stripe.test/i/abc"
    invoice_pdf = None


async def _rows(session: AsyncSession) -> list[EmailOutboxMessage]:
    query = select(EmailOutboxMessage).order_by(EmailOutboxMessage.id)
    rows = list(await session.scalars(query.execution_options(populate_existing=True)))
    await session.commit()  # no read transaction left open (SQLite snapshots)
    return rows


class BlockingSender:
    """Claims happen, then the send never completes: a worker 'crashing' mid-send."""

    def __init__(self, inner: SmtpSender | None = None) -> None:
        self.inner = inner
        self.entered = asyncio.Event()

    async def send(self, message: EmailOutboxMessage) -> None:
        if self.inner is not None:  # accepted by the server, then the crash
            await self.inner.send(message)
        self.entered.set()
        await asyncio.Event().wait()  # forever, until cancelled


async def test_a_queued_email_reaches_the_smtp_server(
    session: AsyncSession, catalog: Catalog, smtp: SmtpServer, make_worker: MakeWorker
) -> None:
    await _enqueue(session, catalog)
    assert await make_worker().drain() == 1

    [mail] = smtp.messages()
    assert mail.rcpt_tos == ["ada@example.com"]
    assert mail.subject == "Payment received (test:1)"
    assert "no-reply@" in mail.mail_from
    assert (
        mail.message["Message-ID"].startswith("<")
        and "@testserver.local>" in mail.message["Message-ID"]
    )
    assert "$29" in mail.part("plain") and "$29" in mail.part("html")
    [row] = await _rows(session)
    assert (row.status, row.attempts, row.message_id) == ("sent", 1, mail.message["Message-ID"])
    assert row.sent_at is not None and row.claimed_until is None
    # Nothing more is due.
    assert await make_worker().drain() == 0
    assert len(smtp.messages()) == 1


async def test_enqueueing_the_same_key_twice_makes_one_email(
    session: AsyncSession, catalog: Catalog, smtp: SmtpServer, make_worker: MakeWorker
) -> None:
    customer = await make_customer(session, catalog)
    await _enqueue(session, catalog, customer=customer)
    await _enqueue(session, catalog, customer=customer)
    assert len(await _rows(session)) == 1
    await make_worker().drain()
    await _enqueue(session, catalog, customer=customer)  # even after it was sent
    await make_worker().drain()
    assert len(smtp.messages()) == 1


async def test_a_worker_that_dies_before_sending_is_replaced_and_the_email_goes_once(
    session: AsyncSession, catalog: Catalog, smtp: SmtpServer, make_worker: MakeWorker
) -> None:
    await _enqueue(session, catalog)
    blocked = BlockingSender()
    first = make_worker(blocked, lease=SHORT_LEASE)
    first.start()
    await asyncio.wait_for(blocked.entered.wait(), 10)
    [row] = await _rows(session)
    assert row.status == "sending" and row.attempts == 1
    await first.stop(grace=0)  # killed mid-send: the row stays claimed

    restarted = make_worker(lease=SHORT_LEASE)
    # Until the dead worker's lease runs out nobody else touches the row; then it goes.
    await eventually(restarted.drain, what="the restarted worker to send the email")
    await make_worker().drain()
    assert len(smtp.messages()) == 1
    [row] = await _rows(session)
    assert (row.status, row.attempts) == ("sent", 2)


async def test_the_remaining_window_resends_with_the_same_message_id(
    session: AsyncSession, catalog: Catalog, smtp: SmtpServer, make_worker: MakeWorker
) -> None:
    """A crash after the server accepted but before `sent` is committed resends once (SMTP has
    no idempotency); both copies carry the same Message-ID so receivers can dedupe."""
    await _enqueue(session, catalog)
    crashed = BlockingSender(SmtpSender(parse_smtp_url(smtp.url), "x <no-reply@localhost>"))
    first = make_worker(crashed, lease=SHORT_LEASE)
    first.start()
    await asyncio.wait_for(crashed.entered.wait(), 10)
    await first.stop(grace=0)
    await eventually(make_worker(lease=SHORT_LEASE).drain, what="the resend")
    one, two = smtp.messages()
    assert one.message["Message-ID"] == two.message["Message-ID"]


async def test_a_transient_failure_backs_off_then_sends_once(
    session: AsyncSession, catalog: Catalog, smtp: SmtpServer, make_worker: MakeWorker
) -> None:
    await _enqueue(session, catalog)
    smtp.refuse_data = 1
    worker = make_worker()
    assert await worker.drain() == 0
    [row] = await _rows(session)
    assert row.status == "pending" and row.attempts == 1
    assert "451" in (row.last_error or "")
    assert row.next_attempt_at > utcnow() + timedelta(seconds=20)  # backing off
    assert await worker.drain() == 0  # not due yet
    await session.execute(
        update(EmailOutboxMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1))
    )
    await session.commit()
    assert await worker.drain() == 1
    assert len(smtp.messages()) == 1
    [row] = await _rows(session)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)


async def test_give_up_after_max_attempts(
    session: AsyncSession, catalog: Catalog, smtp: SmtpServer, make_worker: MakeWorker
) -> None:
    from app.notifications import worker as worker_module

    await _enqueue(session, catalog)
    await session.execute(
        update(EmailOutboxMessage).values(attempts=worker_module.MAX_ATTEMPTS - 1)
    )
    await session.commit()
    smtp.refuse_data = 1
    assert await make_worker().drain() == 0
    [row] = await _rows(session)
    assert row.status == "failed" and "451" in (row.last_error or "")
    assert await make_worker().drain() == 0
    assert smtp.messages() == []


async def test_concurrent_workers_send_each_email_once(
    session: AsyncSession, catalog: Catalog, smtp: SmtpServer, make_worker: MakeWorker
) -> None:
    customer = await make_customer(session, catalog)
    for i in range(12):
        await _enqueue(session, catalog, key=f"test:{i}", customer=customer)
    results = await asyncio.gather(*(make_worker().drain() for _ in range(3)))
    assert sum(results) == 12
    subjects = sorted(m.subject for m in smtp.messages())
    assert subjects == sorted(f"Payment received (test:{i})" for i in range(12))
    count = await session.scalar(
        select(func.count()).where(
            EmailOutboxMessage.status == "sent", EmailOutboxMessage.attempts == 1
        )
    )
    assert count == 12


async def test_serve_drains_the_email_outbox_in_process(
    session: AsyncSession, catalog: Catalog, smtp: SmtpServer, settings_with_smtp
) -> None:
    """With RUN_WORKER on, the app's lifespan runs the email worker (SMTP_URL set)."""
    from dataclasses import replace

    from litestar.testing import AsyncTestClient

    from app.main import create_app

    await _enqueue(session, catalog)
    app = create_app(replace(settings_with_smtp, run_worker=True), catalog)
    async with AsyncTestClient(app, base_url=PUBLIC_URL):
        await eventually(smtp.messages, what="the in-process worker to send")
    [mail] = smtp.messages()
    assert mail.rcpt_tos == ["ada@example.com"]
