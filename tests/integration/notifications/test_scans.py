"""Usage thresholds and expiring credits, found by the worker's scan and delivered by SMTP."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Catalog
from app.lib.clock import utcnow
from app.metering.service import EventInput, UsageApi
from app.metering.writer import UsageWriter
from app.notifications.models import EmailOutboxMessage
from tests.integration.notifications.conftest import (
    PUBLIC_URL,
    MakeWorker,
    SmtpServer,
    assert_links_absolute,
    make_customer,
)

_tx = iter(range(10**6))


async def _use_tokens(writer: UsageWriter, catalog: Catalog, customer: str, tokens: int) -> None:
    metering = UsageApi(catalog, writer, writer.upgrade_url)
    await metering.record(
        EventInput(
            transaction_id=f"tx-{next(_tx)}",
            code="tokens",
            external_customer_id=customer,
            properties={"tokens": tokens},
        )
    )


async def _kinds(session: AsyncSession) -> list[tuple[str, str]]:
    rows = await session.execute(
        select(EmailOutboxMessage.kind, EmailOutboxMessage.dedupe_key).order_by(
            EmailOutboxMessage.id
        )
    )
    result = [(kind, key) for kind, key in rows.all()]
    await session.commit()
    return result


async def test_80_and_100_percent_emails_once_per_meter_and_period(
    session: AsyncSession,
    catalog: Catalog,
    writer: UsageWriter,
    smtp: SmtpServer,
    make_worker: MakeWorker,
) -> None:
    customer = await make_customer(session, catalog, "cus_usage")  # free: 100,000 tokens
    worker = make_worker()
    await _use_tokens(writer, catalog, "cus_usage", 79_000)
    await worker.run_once()
    assert smtp.messages() == []  # below 80 %

    await _use_tokens(writer, catalog, "cus_usage", 2_000)  # 81 %
    await worker.run_once()
    await _use_tokens(writer, catalog, "cus_usage", 1_000)  # 82 %: no second warning
    await worker.run_once()
    await make_worker().run_once()  # a fresh worker (first scan looks back) adds nothing
    [warning] = smtp.messages()
    assert warning.rcpt_tos == ["ada@example.com"]
    assert warning.subject == "You have used 80% of your included Tokens"
    assert "81,000 of 100,000 tokens" in warning.part("plain")  # as of the scan that found it
    assert f"{PUBLIC_URL}/billing/upgrade" in warning.part("plain")
    assert f'href="{PUBLIC_URL}/billing/settings"' in warning.part("html")
    assert_links_absolute(warning)

    await _use_tokens(writer, catalog, "cus_usage", 18_000)  # 100 %
    await worker.run_once()
    await worker.run_once()
    _, exhausted = smtp.messages()
    assert exhausted.subject == "You have used all your included Tokens"
    assert f"{PUBLIC_URL}/billing/credits" in exhausted.part("plain")
    assert_links_absolute(exhausted)
    kinds = await _kinds(session)
    assert [k for k, _ in kinds] == ["usage_warning", "usage_exhausted"]
    assert all(key.startswith(f"usage:{customer.id}:tokens:") for _, key in kinds)


async def test_a_jump_past_100_percent_sends_only_the_100_email(
    session: AsyncSession,
    catalog: Catalog,
    writer: UsageWriter,
    smtp: SmtpServer,
    make_worker: MakeWorker,
) -> None:
    await make_customer(session, catalog, "cus_jump")
    await _use_tokens(writer, catalog, "cus_jump", 100_000)
    await make_worker().run_once()
    assert [m.subject for m in smtp.messages()] == ["You have used all your included Tokens"]


async def test_no_usage_emails_when_turned_off(
    session: AsyncSession,
    catalog: Catalog,
    writer: UsageWriter,
    smtp: SmtpServer,
    make_worker: MakeWorker,
) -> None:
    customer = await make_customer(session, catalog, "cus_quiet")
    customer.usage_emails = False
    await session.commit()
    await _use_tokens(writer, catalog, "cus_quiet", 90_000)
    await make_worker().run_once()
    assert await _kinds(session) == []
    assert smtp.messages() == []


async def test_turning_usage_emails_off_after_queueing_skips_the_email(
    session: AsyncSession,
    catalog: Catalog,
    writer: UsageWriter,
    smtp: SmtpServer,
    make_worker: MakeWorker,
) -> None:
    customer = await make_customer(session, catalog, "cus_late")
    await _use_tokens(writer, catalog, "cus_late", 90_000)
    worker = make_worker()
    assert await worker.scan() == 1
    customer.usage_emails = False
    await session.commit()
    assert await worker.drain() == 0
    row = await session.scalar(select(EmailOutboxMessage))
    assert row is not None and row.status == "skipped"
    assert smtp.messages() == []


async def test_credits_about_to_expire_are_announced_once(
    session: AsyncSession,
    catalog: Catalog,
    writer: UsageWriter,
    smtp: SmtpServer,
    make_worker: MakeWorker,
) -> None:
    await make_customer(session, catalog, "cus_credits")
    metering = UsageApi(catalog, writer, writer.upgrade_url)
    soon = utcnow() + timedelta(days=3)
    await metering.grant_credits(
        "cus_credits", "ai_requests", 50, "promo", "g-soon", expires_at=soon
    )
    await metering.grant_credits(
        "cus_credits",
        "ai_requests",
        70,
        "promo",
        "g-later",
        expires_at=utcnow() + timedelta(days=30),
    )
    await metering.grant_credits("cus_credits", "ai_requests", 90, "promo", "g-never")
    worker = make_worker()
    await worker.run_once()
    await worker.run_once()
    await make_worker().run_once()
    [mail] = smtp.messages()
    assert mail.subject.startswith("50 AI requests credits expire on ")
    assert f"{PUBLIC_URL}/billing/credits" in mail.part("plain")
    assert_links_absolute(mail)
