"""Customers whose external_id holds URL-special characters open from the admin pages: every
admin link percent-encodes the id as one path segment."""

from __future__ import annotations

import html
import re

import pytest
from httpx import Request
from litestar.testing import transport
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.apikeys.service import ApiKeyService
from app.metering.models import CreditGrant
from tests.integration.admin.conftest import Admin, audit_entries

ODD_IDS = ["x?y", "h#1", "pct%41", "sp ace", "Émile"]
_LINK = re.compile(r'<a href="([^"]+)" data-testid="customer-link">')
_GRANT_FORM = re.compile(r'<form method="get" action="([^"]+)"[^>]*data-testid="grant-form">')


@pytest.fixture(autouse=True)
def _path_decoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Litestar's test transport unquotes httpx's already-decoded path a second time
    (`/customers/pct%2541` arrives as `pctA`); servers (granian, uvicorn) decode it once.
    Starlette had the same bug: https://github.com/Kludex/starlette/issues/2587."""
    original = transport.TestClientTransport.parse_request

    def parse_request(self: transport.TestClientTransport, request: Request) -> dict:
        scope = original(self, request)
        scope["path"] = request.url.path
        return scope

    monkeypatch.setattr(transport.TestClientTransport, "parse_request", parse_request)


async def _create_by_api(admin: Admin, session: AsyncSession, external_ids: list[str]) -> None:
    """Through the server API, as the SaaS backend would (on the admin's client: a second
    client on the app would run its shutdown when closed)."""
    _key, raw = await ApiKeyService(session).create("tests")
    for n, external_id in enumerate(external_ids):
        response = await admin.client.post(
            "/api/v1/customers",
            json={"customer": {"external_id": external_id, "email": f"odd{n}@example.com"}},
            headers={"Authorization": f"Bearer {raw}"},
        )
        assert response.status_code == 200, response.text


async def _link_from_list(admin: Admin, external_id: str) -> str:
    listing = await admin.client.get("/admin/billing/customers", params={"q": external_id})
    assert listing.status_code == 200
    links = [html.unescape(href) for href in _LINK.findall(listing.text)]
    assert len(links) == 1, links
    return links[0]


def _shows(page: str, external_id: str) -> bool:
    return f'data-testid="customer-external-id">{html.escape(external_id)}<' in page


async def test_each_customer_opens_from_its_link_in_the_list(
    admin: Admin, session: AsyncSession
) -> None:
    await _create_by_api(admin, session, ODD_IDS)
    for external_id in ODD_IDS:
        href = await _link_from_list(admin, external_id)
        assert href.startswith("/admin/billing/customers/")
        assert not set(href.removeprefix("/admin/billing/customers/")) & set("/?# ")
        detail = await admin.client.get(href)
        assert detail.status_code == 200, (external_id, href)
        assert _shows(detail.text, external_id)


@pytest.mark.parametrize("external_id", ["x?y", "pct%41"])
async def test_the_grant_credits_confirm_step_and_action_work(
    admin: Admin, session: AsyncSession, external_id: str
) -> None:
    await _create_by_api(admin, session, [external_id])
    href = await _link_from_list(admin, external_id)
    detail = (await admin.client.get(href)).text
    form = _GRANT_FORM.search(detail)
    assert form, "no grant form"
    confirm_url = html.unescape(form.group(1))
    assert confirm_url == f"{href}/confirm"
    params = {"action": "grant_credits", "meter": "ai_requests", "amount": "7"}

    # Opened without a request id, the confirm page redirects to itself with one.
    bare = await admin.client.get(confirm_url, params=params, follow_redirects=False)
    assert bare.status_code == 303
    assert bare.headers["location"].startswith(f"{href}/confirm?")
    confirm = await admin.client.get(bare.headers["location"])
    assert confirm.status_code == 200
    assert "Grant 7 AI requests credits to" in confirm.text
    assert f'href="{href}"' in confirm.text  # its Back link

    response = await admin.confirm_and_post(confirm_url, reason="odd id", **params)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == href
    after = await admin.client.get(href)
    assert after.status_code == 200 and _shows(after.text, external_id)
    assert 'data-testid="meter-ai_requests-credits">7 credits left' in after.text

    await session.commit()
    assert [g.amount for g in await session.scalars(select(CreditGrant))] == [7]
    [entry] = await audit_entries(session, "grant_credits")
    assert entry.target_id == external_id
    audit = await admin.client.get("/admin/billing/audit", params={"action": "grant_credits"})
    assert f'<a href="{href}">' in audit.text
