"""Reading the account emails from the outbox, and the forms of the account pages."""

from __future__ import annotations

import re

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from app.notifications.models import EmailOutboxMessage
from tests.conftest import csrf_token
from tests.factories import database_session

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"
_LINK = re.compile(r"https?://[^\s]+/(?:reset|verify)/[A-Za-z0-9_-]+")


async def emails(
    client: AsyncTestClient[Litestar], to: str, kind: str | None = None
) -> list[EmailOutboxMessage]:
    """The outbox's emails to `to` (of `kind`), oldest first."""
    async with database_session(client.app.state["settings"].database_url) as session:
        query = select(EmailOutboxMessage).where(EmailOutboxMessage.to_address == to)
        if kind:
            query = query.where(EmailOutboxMessage.kind == kind)
        return list(await session.scalars(query.order_by(EmailOutboxMessage.id)))


async def link_in_email(client: AsyncTestClient[Litestar], to: str, kind: str) -> str:
    """The path of the link in the newest `kind` email to `to` (text and HTML agree)."""
    sent = await emails(client, to, kind)
    assert sent, f"no {kind} email to {to}"
    text_links = _LINK.findall(sent[-1].text_body)
    assert text_links and text_links[0] in sent[-1].html_body
    return "/" + text_links[0].split("/", 3)[3]


async def post(
    client: AsyncTestClient[Litestar], path: str, data: dict[str, str], *, csrf_from: str = "/login"
) -> httpx.Response:
    token = await csrf_token(client, csrf_from)
    return await client.post(path, data={**data, "_csrf_token": token}, follow_redirects=False)


async def log_in_with(
    client: AsyncTestClient[Litestar], email: str, password: str
) -> httpx.Response:
    return await post(client, "/login", {"email": email, "password": password})


async def logged_in(client: AsyncTestClient[Litestar]) -> bool:
    return (await client.get("/billing", follow_redirects=False)).status_code == 200
