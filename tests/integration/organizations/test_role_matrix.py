"""Every route of the app has a decision (issue 19, item 8), and every customer-facing route
and action answers each role as decided: owner, billing admin, member of the organization, and
an outsider (the owner of another organization), who reaches nothing of it, by id or otherwise.

The routes come from the app's route table: a new route under a customer-facing prefix fails
`test_every_route_has_a_decision` until it is added to `ROLE_ROUTES` (or `PER_USER`)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.guards import requires_admin, requires_user
from app.customers.models import RANK, Customer
from app.lib.clock import utcnow
from app.organizations.models import Invitation
from tests.integration.billing.conftest import add_card, add_invoice
from tests.integration.organizations.conftest import Team

MEMBER, BILLING_ADMIN, OWNER = "member", "billing_admin", "owner"

# (method, path) -> the least role in the current organization (docs/organizations.md).
ROLE_ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/billing"): MEMBER,
    ("GET", "/billing/meters"): MEMBER,
    ("GET", "/billing/chart"): MEMBER,
    ("POST", "/billing/try"): MEMBER,
    ("GET", "/billing/summary.json"): MEMBER,
    ("GET", "/billing/team"): MEMBER,
    ("GET", "/billing/usage.csv"): MEMBER,
    ("GET", "/billing/usage/events.csv"): MEMBER,
    ("POST", "/billing/team/leave"): MEMBER,
    ("GET", "/billing/upgrade"): BILLING_ADMIN,
    ("GET", "/billing/credits"): BILLING_ADMIN,
    ("GET", "/billing/invoices"): BILLING_ADMIN,
    ("GET", "/billing/invoices/{invoice_id:str}"): BILLING_ADMIN,
    ("GET", "/billing/payment-methods"): BILLING_ADMIN,
    ("POST", "/billing/payment-methods/add"): BILLING_ADMIN,
    ("GET", "/billing/payment-methods/{payment_method_id:str}/remove"): BILLING_ADMIN,
    ("POST", "/billing/payment-methods/{payment_method_id:str}/remove"): BILLING_ADMIN,
    ("POST", "/billing/payment-methods/{payment_method_id:str}/default"): BILLING_ADMIN,
    ("POST", "/billing/checkout"): BILLING_ADMIN,
    ("POST", "/billing/credits/checkout"): BILLING_ADMIN,
    ("POST", "/billing/credits/auto-top-up"): BILLING_ADMIN,
    ("POST", "/billing/credits/low-balance"): BILLING_ADMIN,
    ("GET", "/billing/checkout/success"): BILLING_ADMIN,
    ("GET", "/billing/checkout/status"): BILLING_ADMIN,
    ("GET", "/billing/checkout/canceled"): BILLING_ADMIN,
    ("GET", "/billing/subscription/cancel"): BILLING_ADMIN,
    ("POST", "/billing/subscription/cancel"): BILLING_ADMIN,
    ("POST", "/billing/subscription/resume"): BILLING_ADMIN,
    ("GET", "/billing/subscription/review"): BILLING_ADMIN,
    ("POST", "/billing/subscription/change"): BILLING_ADMIN,
    ("POST", "/billing/subscription/keep"): BILLING_ADMIN,
    ("GET", "/billing/settings"): BILLING_ADMIN,
    ("POST", "/billing/settings"): BILLING_ADMIN,
    ("GET", "/billing/details"): BILLING_ADMIN,
    ("POST", "/billing/details"): BILLING_ADMIN,
    ("POST", "/billing/details/tax-ids"): BILLING_ADMIN,
    ("POST", "/billing/details/tax-ids/{tax_id:int}/remove"): BILLING_ADMIN,
    ("POST", "/billing/team/invite"): OWNER,
    ("POST", "/billing/team/invitations/{invitation_id:int}/revoke"): OWNER,
    ("POST", "/billing/team/members/{user_id:int}/role"): OWNER,
    ("POST", "/billing/team/members/{user_id:int}/remove"): OWNER,
    ("POST", "/billing/team/members/{user_id:int}/transfer"): OWNER,
}
# Logged in, per user, not per organization (the switcher and invitations check membership
# and the invited address themselves: test_team.py, test_invitations.py).
PER_USER_PREFIXES = ("/account", "/org/switch", "/invitations/", "/login/two-factor")
# Public, admin (requires_admin) and machine (API key, Stripe signature) areas.
PUBLIC = {
    "/",
    "/login",
    "/logout",
    "/signup",
    "/forgot",
    "/health",
    "/schema",
    "/favicon.ico",
    "/brand.css",
    "/_not-found",  # answers every unknown browser path with the 404 page
    "/try",  # the demo for visitors: a guest of its own, never an organization's data
}
PUBLIC_PREFIXES = ("/verify/", "/reset/", "/portal/", "/static/", "/schema/", "/webhooks/")
ADMIN_PREFIX = "/admin/"
API_PREFIX = "/api/"


def _routes(app: Litestar) -> list[tuple[str, str, Any]]:
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                found.append((method, route.path, handler))
    return found


def _guards(handler: Any) -> list[Any]:
    return [guard for layer in handler.ownership_layers for guard in (layer.guards or [])]


def _least_role(handler: Any) -> str | None:
    roles = [g.minimum_role for g in _guards(handler) if hasattr(g, "minimum_role")]
    return max(roles, key=RANK.__getitem__) if roles else None


def test_every_route_has_a_decision(app: Litestar) -> None:
    undecided = []
    for method, path, handler in _routes(app):
        decided = ROLE_ROUTES.get((method, path))
        if decided is not None:
            assert _least_role(handler) == decided, (method, path, _least_role(handler))
            assert requires_user in _guards(handler), (method, path)
        elif path.startswith(ADMIN_PREFIX):
            assert requires_admin in _guards(handler), (method, path)
        elif (
            path.startswith(PER_USER_PREFIXES)
            or path.startswith(API_PREFIX)
            or path in PUBLIC
            or path.startswith(PUBLIC_PREFIXES)
        ):
            assert _least_role(handler) is None, (method, path)
        else:
            undecided.append((method, path))
        if path.startswith(("/billing", "/org")):  # customer-facing: decided one by one
            assert (method, path) in ROLE_ROUTES or path.startswith(PER_USER_PREFIXES), (
                method,
                path,
            )
    assert not undecided, f"routes without a role decision: {undecided}"


@pytest.fixture
async def acme_ids(team: Team, session: AsyncSession) -> dict[str, str]:
    """Rows of Acme that routes take by id."""
    await session.execute(
        update(Customer).where(Customer.id == team.org.id).values(stripe_customer_id="cus_acme")
    )
    invoice = await add_invoice(session, team.org.id, 1, number="ACME-INV-0001")
    card = await add_card(session, team.org.id, "4242", default=True)
    spare = await add_card(session, team.org.id, "1881")
    invitation = Invitation(
        customer_id=team.org.id,
        email="newcomer@example.com",
        role="member",
        token_hash="0" * 64,
        invited_by=team.owner.user_id,
        created_at=utcnow(),
        expires_at=utcnow().replace(year=utcnow().year + 1),
    )
    session.add(invitation)
    await session.commit()
    return {
        "invoice_id": invoice.stripe_invoice_id,
        "payment_method_id": spare.stripe_payment_method_id,
        "default_card": card.stripe_payment_method_id,
        "invitation_id": str(invitation.id),
        "user_id": str(team.member.user_id),
        "tax_id": "999999",
    }


_PARAM = re.compile(r"\{(\w+):\w+\}")
# The form fields an action needs to get past its parsing (the role check comes first anyway).
FORMS = {
    "/billing/team/members/{user_id:int}/role": {"role": "billing_admin"},
    "/billing/team/invite": {"email": "invitee@example.com", "role": "member"},
    "/billing/checkout": {"plan": "pro", "interval": "month"},
}
# A Checkout session id no one knows; a tax ID that is not there.
OWN_404 = {
    "/billing/checkout/status",
    "/billing/checkout/success",
    "/billing/details/tax-ids/{tax_id:int}/remove",
}
ROLES = ("outsider", "member", "billing_admin", "owner")  # owner last: its actions change things


@pytest.mark.parametrize(("method", "path"), sorted(ROLE_ROUTES))
async def test_each_role_on_each_route(
    team: Team, acme_ids: dict[str, str], method: str, path: str
) -> None:
    if (method, path) not in {(m, p) for m, p, _ in _routes(team.owner.client.app)}:
        pytest.skip(f"{method} {path} is not served")
    least = ROLE_ROUTES[(method, path)]
    url = _PARAM.sub(lambda m: acme_ids[m.group(1)], path)
    by_id = _PARAM.search(path) is not None
    for role in ROLES:
        person = team.by_role(role)
        if method == "GET":
            response = await person.client.get(url, follow_redirects=False)
        else:
            response = await person.post(url, FORMS.get(path, {}))
        status = response.status_code
        where = (role, method, url, status, response.text[:300])
        assert status != 500, where
        if role == "outsider":
            # Their own organization's pages, but nothing of Acme's by id.
            if by_id and path != "/billing/details/tax-ids/{tax_id:int}/remove":
                assert status == 404, where
            assert "ACME-INV" not in response.text and "Acme" not in response.text, where
        elif RANK[role] >= RANK[least]:
            assert status not in (401, 403), where
            # Past the role check: a 404 only where the route itself has nothing to show.
            assert status != 404 or path in OWN_404, where
        else:
            assert status == 403, where
            assert "Your role in Acme is" in response.text, where
