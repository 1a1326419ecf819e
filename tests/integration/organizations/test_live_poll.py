"""The live-usage poll answered before the app (app/billing/live_poll.py) follows the session's
organization as the pages do: a member polls the organization's usage, and after a switch
their own; usage of one organization never answers the other's poll."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.integration.billing.conftest import HX, record
from tests.integration.organizations.conftest import Person, Team


async def version(person: Person) -> str:
    page = await person.client.get("/billing")
    found = re.search(r'data-version="(\w+)"', page.text)
    assert found, page.text
    return found.group(1)


async def test_the_poll_follows_the_current_organization(
    team: Team, api: AsyncTestClient[Litestar]
) -> None:
    mia = team.member
    acme = await version(mia)
    assert (await mia.client.get(f"/billing/meters?v={acme}", headers=HX)).status_code == 204
    await record(api, team.org.external_id, count=3)
    changed = await mia.client.get(f"/billing/meters?v={acme}", headers=HX)
    assert changed.status_code == 200 and "<strong>3</strong> / 20" in changed.text

    switched = await mia.post("/org/switch", {"org": str(mia.personal_id)})
    assert switched.status_code == 303
    own = await version(mia)
    assert (await mia.client.get(f"/billing/meters?v={own}", headers=HX)).status_code == 204
    await record(api, team.org.external_id, count=2)  # Acme's usage: not hers now
    assert (await mia.client.get(f"/billing/meters?v={own}", headers=HX)).status_code == 204
