"""Organizations in real Chromium (issue 19, item 7): an owner invites a teammate by email
(the link read from the outbox), the teammate signs up from the invitation and accepts, then
sees usage on /billing but gets the 403 page on payment methods, and the navigation's switcher
shows both organizations (and switches, without JavaScript: a plain form)."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from app.notifications.models import EmailOutboxMessage
from tests.e2e.conftest import LiveServer, run_async, unique_email
from tests.e2e.site_pages import open_account_menu
from tests.factories import database_session

PASSWORD = "correct horse battery"
_LINK = re.compile(r"https?://\S+/invitations/[A-Za-z0-9_-]+")


def invitation_link(live_server: LiveServer, to: str) -> str:
    async def read() -> str:
        async with database_session(live_server.database_url) as session:
            message = await session.scalar(
                select(EmailOutboxMessage)
                .where(EmailOutboxMessage.to_address == to, EmailOutboxMessage.kind == "invitation")
                .order_by(EmailOutboxMessage.id.desc())
            )
            assert message is not None, f"no invitation email to {to}"
            return message.text_body

    match = _LINK.search(run_async(read))
    assert match, "no link in the invitation email"
    return match.group(0)


def sign_up(page: Page, email: str, name: str) -> None:
    page.get_by_label("Name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_test_id("signup-submit").click()


def test_invite_accept_member_sees_usage_not_payment_methods(
    page: Page, browser: Browser, live_server: LiveServer
) -> None:
    owner_email, mate_email = unique_email("owner"), unique_email("mate")
    page.goto("/signup")
    sign_up(page, owner_email, "Olivia")
    expect(page.get_by_test_id("current-plan")).to_be_visible()

    page.get_by_role("link", name="Team").click()
    expect(page.get_by_test_id("my-role")).to_contain_text("owner")
    page.get_by_test_id("invite-email").fill(mate_email)
    page.get_by_test_id("invite-role").select_option("member")
    page.get_by_test_id("invite-submit").click()
    expect(page.get_by_test_id("invitation-row")).to_contain_text(mate_email)

    link = invitation_link(live_server, mate_email)
    assert link.startswith(live_server.url + "/invitations/")

    mate_context = browser.new_context(base_url=live_server.url)
    try:
        mate = mate_context.new_page()
        mate.goto(link)  # logged out: to the login page, which leads to sign up and back
        expect(mate).to_have_url(re.compile(r"/login\?next=/invitations/"))
        mate.locator("main").get_by_role("link", name="Sign up").click()
        sign_up(mate, mate_email, "Mateo")
        expect(mate.get_by_test_id("invitation")).to_contain_text("You are invited as member")
        mate.get_by_test_id("accept-invitation").click()

        expect(mate).to_have_url(re.compile(r"/billing$"))
        expect(mate.locator("#meters")).to_be_visible()
        expect(mate.get_by_test_id("role-note")).to_contain_text("is member")
        expect(mate.get_by_role("link", name="Payment methods")).to_have_count(0)
        # The switcher: their own organization and the owner's, the owner's shown.
        options = mate.get_by_test_id("org-select").locator("option")
        expect(options).to_have_count(2)
        expect(mate.get_by_test_id("org-select").locator("option:checked")).to_have_text("Olivia")

        response = mate.goto("/billing/payment-methods")
        assert response is not None and response.status == 403
        expect(mate.get_by_test_id("error-403")).to_contain_text(
            "Your role in Olivia is member; ask an owner or a billing admin"
        )

        # Switch to their own organization (they own it): payment methods open.
        mate.goto("/billing")
        open_account_menu(mate)
        mate.get_by_test_id("org-select").select_option(label="Mateo")
        mate.get_by_test_id("org-switch").click()
        expect(mate.get_by_role("link", name="Payment methods")).to_be_visible()
        response = mate.goto("/billing/payment-methods")
        assert response is not None and response.status == 200

        # The owner sees the new member on the team page.
        page.goto("/billing/team")
        expect(page.locator(f'[data-email="{mate_email}"]')).to_contain_text("member")
    finally:
        mate_context.close()
