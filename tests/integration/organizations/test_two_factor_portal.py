"""A portal link that names a member with two-factor login on: after the code, the login
shows the organization the link is for (not the member's personal one)."""

from __future__ import annotations

from app.billing.portal_links import sign
from app.lib.clock import utcnow
from tests.integration.accounts.test_two_factor import code, enrol, post
from tests.integration.organizations.conftest import Team


async def test_the_code_step_keeps_the_links_organization(team: Team) -> None:
    mia = team.member
    secret, _ = await enrol(mia.client)
    await post(mia.client, "/logout", {}, "/login")
    key = mia.client.app.state["settings"].secret_key
    link = sign(key, team.org.public_id, utcnow(), member_id=mia.user_id)
    response = await mia.client.post(f"/portal/{link}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login/two-factor"
    ok = await post(mia.client, "/login/two-factor", {"code": code(secret, 1)})
    assert ok.status_code == 303, ok.text
    # Acme, where she is a member: no payment methods (her own organization would allow them).
    assert (await mia.client.get("/billing/payment-methods")).status_code == 403
