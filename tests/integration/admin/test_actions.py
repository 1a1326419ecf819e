"""Each admin action: its confirm step, its effect, and its audit entry (who, what, why)."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.apikeys.models import ApiKey
from app.catalog.models import Catalog
from app.customers.models import Subscription
from app.metering.models import CreditGrant
from app.stripe_sync.models import StripeEvent
from tests.integration.admin.conftest import (
    Admin,
    audit_entries,
    csrf_of,
    make_customer,
    request_id_of,
)


async def _fresh(session: AsyncSession) -> None:
    await session.commit()  # end the read snapshot; queries below use populate_existing


async def test_grant_credits_is_confirmed_applied_once_and_audited(
    admin: Admin, catalog: Catalog, session: AsyncSession
) -> None:
    customer = await make_customer(session, catalog, "grace@example.com", "Grace")
    url = f"/admin/billing/customers/{customer.external_id}"
    confirm = await admin.client.get(
        f"{url}/confirm", params={"action": "grant_credits", "meter": "ai_requests", "amount": "75"}
    )
    assert confirm.status_code == 200
    assert "Grant 75 AI requests credits to grace@example.com." in confirm.text
    assert await audit_entries(session) == []  # the confirm page changes nothing

    form = {
        "_csrf_token": csrf_of(confirm.text),
        "request_id": request_id_of(confirm.text),
        "meter": "ai_requests",
        "amount": "75",
        "expires_days": "",
        "reason": "Outage on May 3",
    }
    response = await admin.client.post(f"{url}/grant-credits", data=form, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == url
    again = await admin.client.post(f"{url}/grant-credits", data=form, follow_redirects=False)
    assert again.status_code == 303  # a resubmitted form: no second grant, no second entry

    await _fresh(session)
    grants = list(
        await session.scalars(select(CreditGrant).where(CreditGrant.customer_id == customer.id))
    )
    assert [(g.amount, g.source, g.reason) for g in grants] == [(75, "admin", "Outage on May 3")]
    [entry] = await audit_entries(session, "grant_credits")
    assert (entry.actor_email, entry.target_type, entry.target_id, entry.reason) == (
        admin.email,
        "customer",
        customer.external_id,
        "Outage on May 3",
    )
    assert entry.details["amount"] == 75 and entry.details["meter"] == "ai_requests"
    assert entry.created_at is not None

    detail = (await admin.client.get(url)).text
    assert 'data-testid="meter-ai_requests-credits">75 credits left' in detail
    assert "Outage on May 3" in detail  # ledger and admin actions


async def test_an_action_without_a_reason_is_refused_and_changes_nothing(
    admin: Admin, catalog: Catalog, session: AsyncSession
) -> None:
    customer = await make_customer(session, catalog, "noreason@example.com")
    url = f"/admin/billing/customers/{customer.external_id}"
    response = await admin.confirm_and_post(
        f"{url}/confirm", reason="  ", action="grant_credits", meter="ai_requests", amount="5"
    )
    assert response.status_code == 422
    assert 'data-testid="confirm-error"' in response.text
    await _fresh(session)
    assert await session.scalar(select(CreditGrant.id)) is None
    assert await audit_entries(session) == []


async def test_change_plan_without_stripe_sets_it_and_audits(
    admin: Admin, catalog: Catalog, session: AsyncSession
) -> None:
    customer = await make_customer(session, catalog, "plan@example.com")
    url = f"/admin/billing/customers/{customer.external_id}"
    response = await admin.confirm_and_post(
        f"{url}/confirm", reason="Partner deal", action="change_plan", plan="pro", interval="month"
    )
    assert response.status_code == 303
    await _fresh(session)
    sub = await session.scalar(
        select(Subscription)
        .where(Subscription.customer_id == customer.id)
        .execution_options(populate_existing=True)
    )
    assert sub is not None and sub.plan_slug == "pro" and sub.stripe_subscription_id is None
    [entry] = await audit_entries(session, "change_plan")
    assert entry.details["from_plan"] == "free" and entry.details["to_plan"] == "pro"
    assert entry.details["through_stripe"] is False and entry.reason == "Partner deal"
    history = (await admin.client.get(url)).text
    assert "Change plan: Now on Pro (set directly)." in history


async def test_cancel_and_resume_without_a_stripe_subscription_say_so_and_are_audited(
    admin: Admin, catalog: Catalog, session: AsyncSession
) -> None:
    customer = await make_customer(session, catalog, "cancel@example.com")
    url = f"/admin/billing/customers/{customer.external_id}"
    for action in ("cancel", "resume"):
        response = await admin.confirm_and_post(f"{url}/confirm", reason="asked", action=action)
        assert response.status_code == 303
    entries = await audit_entries(session)
    assert [e.action for e in entries] == ["cancel", "resume"]
    assert entries[0].details["result"] == "You have no paid subscription to cancel."


async def test_read_only_portal_view_needs_a_confirmed_opening_and_keeps_the_admin_logged_in(
    admin: Admin, catalog: Catalog, session: AsyncSession
) -> None:
    customer = await make_customer(session, catalog, "viewed@example.com")
    url = f"/admin/billing/customers/{customer.external_id}"
    before = await admin.client.get(f"{url}/view", follow_redirects=False)
    assert before.status_code == 303 and "action=view_portal" in before.headers["location"]

    response = await admin.confirm_and_post(
        f"{url}/confirm", reason="Ticket 7: wrong bar", action="view_portal"
    )
    assert response.status_code == 303 and response.headers["location"] == f"{url}/view"
    view = await admin.client.get(f"{url}/view")
    assert view.status_code == 200
    assert "Read-only view of viewed@example.com." in view.text
    assert 'data-testid="meter-ai_requests"' in view.text
    body = view.text.split('id="main"', 1)[1]
    assert 'method="post"' not in body.split("</main>")[0]  # no action forms in the view
    assert admin.email in view.text  # still the admin in the navigation
    assert (await admin.client.get("/admin/billing")).status_code == 200
    [entry] = await audit_entries(session, "view_portal")
    assert entry.reason == "Ticket 7: wrong bar"


async def test_api_key_is_shown_once_audited_without_the_key_and_revocable(
    admin: Admin, session: AsyncSession
) -> None:
    page = await admin.client.get("/admin/billing/api-keys")
    response = await admin.client.post(
        "/admin/billing/api-keys",
        data={
            "_csrf_token": csrf_of(page.text),
            "request_id": request_id_of(page.text),
            "name": "Backend prod",
            "reason": "New backend deploy",
        },
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    raw = re.search(r'value="([^"]+)"[^>]*data-testid="raw-key"', response.text)[1]
    # Made against the emulator: a test key, with its badge in the list.
    assert raw.startswith("bp_test_")

    listing = await admin.client.get("/admin/billing/api-keys")
    assert raw not in listing.text and "Backend prod" in listing.text
    assert re.search(r'data-testid="key-mode-\d+">Test<', listing.text)
    [entry] = await audit_entries(session, "api_key.create")
    assert raw not in str(entry.details) and entry.details["name"] == "Backend prod"

    # The key works (same client: a second one would run the app's shutdown when closed).
    balances = await admin.client.get(
        "/api/v1/customers/nobody/balances", headers={"Authorization": f"Bearer {raw}"}
    )
    assert balances.status_code == 404

    key = await session.scalar(select(ApiKey).where(ApiKey.name == "Backend prod"))
    assert key is not None
    revoke = await admin.confirm_and_post(
        f"/admin/billing/api-keys/{key.id}/confirm", reason="Leaked in a log"
    )
    assert revoke.status_code == 303
    await _fresh(session)
    key = await session.get(ApiKey, key.id, populate_existing=True)
    assert key is not None and key.revoked_at is not None
    [revoked] = await audit_entries(session, "api_key.revoke")
    assert revoked.target_id == str(key.id) and revoked.reason == "Leaked in a log"


async def test_replay_of_a_failed_event_is_confirmed_and_audited(
    admin: Admin, session: AsyncSession
) -> None:
    event_id = f"evt_{secrets.token_hex(6)}"
    session.add(
        StripeEvent(
            stripe_event_id=event_id,
            type="radar.early_fraud_warning.created",  # no handler: a replay marks it ignored
            object_id="issfr_1",
            stripe_created=1_700_000_000,
            payload={"id": event_id, "type": "radar.early_fraud_warning.created"},
            status="failed",
            attempts=3,
            last_error="RuntimeError: boom",
        )
    )
    await session.commit()
    listing = await admin.client.get("/admin/billing/events", params={"status": "failed"})
    assert event_id in listing.text and "RuntimeError: boom" in listing.text
    detail = await admin.client.get(f"/admin/billing/events/{event_id}")
    assert "issfr_1" in detail.text and 'data-testid="event-payload"' in detail.text

    response = await admin.confirm_and_post(
        f"/admin/billing/events/{event_id}/confirm", reason="Handler fixed"
    )
    assert response.status_code == 303
    await _fresh(session)
    row = await session.scalar(
        select(StripeEvent)
        .where(StripeEvent.stripe_event_id == event_id)
        .execution_options(populate_existing=True)
    )
    assert row is not None and row.status == "ignored" and row.attempts == 4
    [entry] = await audit_entries(session, "stripe_event.replay")
    assert entry.details["before"] == "failed" and entry.details["after"] == "ignored"


async def test_audit_log_is_searchable(
    admin: Admin, catalog: Catalog, session: AsyncSession
) -> None:
    customer = await make_customer(session, catalog, "audited@example.com")
    url = f"/admin/billing/customers/{customer.external_id}"
    for reason in ("Goodwill after outage", "Sales promo"):
        await admin.confirm_and_post(
            f"{url}/confirm", reason=reason, action="grant_credits", meter="tokens", amount="10"
        )
    page = await admin.client.get("/admin/billing/audit", params={"q": "outage"})
    assert "Goodwill after outage" in page.text and "Sales promo" not in page.text
    partial = await admin.client.get(
        "/admin/billing/audit", params={"action": "grant_credits"}, headers={"HX-Request": "true"}
    )
    assert partial.text.lstrip().startswith('<section id="audit-rows"')
    assert "2 entries" in partial.text


def test_the_audit_log_has_no_update_or_delete_path() -> None:
    from app.admin.commands import AdminCommands
    from app.admin.metrics import AdminMetrics
    from app.admin.repository import AdminRepository
    from app.admin.service import AdminService

    classes = (AdminRepository, AdminService, AdminCommands, AdminMetrics)
    names = [n for cls in classes for n in dir(cls)]
    assert not [n for n in names if any(w in n for w in ("update", "delete", "remove_audit"))]


async def test_back_and_submit_again_does_not_grant_twice(
    admin: Admin, catalog: Catalog, session: AsyncSession
) -> None:
    """The confirm page's address carries its one-time id: Back (or a reload) after granting
    shows the same id, so submitting again is the same grant, not a second one."""
    customer = await make_customer(session, catalog, "back@example.com", "Back")
    url = f"/admin/billing/customers/{customer.external_id}"
    params = {"action": "grant_credits", "meter": "ai_requests", "amount": "12"}
    opened = await admin.client.get(f"{url}/confirm", params=params, follow_redirects=False)
    assert opened.status_code == 303
    confirm_url = opened.headers["location"]
    assert "request_id=" in confirm_url

    async def submit() -> None:
        confirm = await admin.client.get(confirm_url)  # Back re-fetches the same address
        form = {
            "_csrf_token": csrf_of(confirm.text),
            "request_id": request_id_of(confirm.text),
            "meter": "ai_requests",
            "amount": "12",
            "expires_days": "",
            "reason": "Goodwill",
        }
        response = await admin.client.post(f"{url}/grant-credits", data=form)
        assert response.status_code == 200

    await submit()
    await submit()
    await _fresh(session)
    grants = list(
        await session.scalars(select(CreditGrant).where(CreditGrant.customer_id == customer.id))
    )
    assert [g.amount for g in grants] == [12]
    assert len(await audit_entries(session, "grant_credits")) == 1
