"""The usage downloads (issue 20, item 6) are the organization's: every member downloads the
organization's usage, and the owner of another organization gets only their own."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.customers.models import Customer
from tests.integration.billing.conftest import record
from tests.integration.organizations.conftest import Team


async def test_every_member_downloads_the_organizations_usage(
    team: Team, api: AsyncTestClient[Litestar], session: AsyncSession
) -> None:
    outsiders = await session.get(Customer, team.outsider.personal_id)
    assert outsiders is not None
    await record(api, team.org.external_id, count=3, note="acme")
    await record(api, outsiders.external_id, count=1)
    for person in (team.member, team.billing_admin, team.owner):
        days = await person.client.get("/billing/usage.csv")
        assert days.status_code == 200, days.text
        lines = days.text.splitlines()
        assert lines[0] == "day,meter,amount"
        assert [line.split(",")[1:] for line in lines[1:]] == [["ai_requests", "3"]]
        events = await person.client.get("/billing/usage/events.csv")
        assert events.status_code == 200
        rows = events.text.splitlines()[1:]
        assert len(rows) == 3 and all('""note"":""acme""' in row for row in rows)

    theirs = await team.outsider.client.get("/billing/usage/events.csv")
    assert theirs.status_code == 200
    assert "acme" not in theirs.text and len(theirs.text.splitlines()) == 2
    their_days = (await team.outsider.client.get("/billing/usage.csv")).text.splitlines()
    assert [line.split(",")[1:] for line in their_days[1:]] == [["ai_requests", "1"]]
