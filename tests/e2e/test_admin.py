"""The admin page in a real browser: an admin finds a customer, grants credits (confirmed, with
a reason), and the customer's own dashboard shows them."""

from __future__ import annotations

import re
import secrets

import httpx
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select, update

from app.admin.models import AuditLog
from app.billing.models import Invoice
from app.customers.models import Customer, Subscription
from app.db.engine import create_engine, create_session_factory
from app.demo import DEMO_ADMIN
from app.stripe_sync.models import StripeEvent
from tests.e2e.conftest import LiveServer, run_async, unique_email

PASSWORD = "correct horse battery"


def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_test_id("login-submit").click()


def test_admin_finds_a_customer_grants_credits_and_the_customer_sees_them(
    page: Page, browser: Browser, live_server: LiveServer
) -> None:
    customer_email = unique_email("credits")
    page.goto("/signup")
    page.get_by_label("Name").fill("Credit Customer")
    page.get_by_label("Email").fill(customer_email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_test_id("signup-submit").click()
    expect(page.get_by_test_id("current-plan")).to_contain_text("Free")
    expect(page.get_by_test_id("meter-ai_requests-credits")).to_have_count(0)

    admin_email = unique_email("admin")
    live_server.cli("create-admin", admin_email, "--password", PASSWORD)
    admin_context = browser.new_context(
        base_url=live_server.url, permissions=["clipboard-read", "clipboard-write"]
    )
    try:
        admin = admin_context.new_page()
        log_in(admin, admin_email, PASSWORD)
        admin.get_by_role("link", name="Admin").click()
        expect(admin.get_by_test_id("mrr")).to_be_visible()

        customers = admin.get_by_role("navigation", name="Admin").get_by_role(
            "link", name="Customers"
        )
        expect(customers).to_have_attribute("href", "/admin/billing/customers")
        admin.goto("/admin/billing/customers")  # a full load: htmx is set up before we type
        admin.get_by_test_id("customer-search").fill(customer_email.split("@")[0].upper())
        rows = admin.get_by_test_id("customer-table").locator("tbody tr")
        expect(rows).to_have_count(1)  # the search narrows as one types (htmx)
        rows.get_by_role("link", name=customer_email).click()
        expect(admin.get_by_test_id("customer-title")).to_have_text(customer_email)

        admin.get_by_label("Meter").select_option("ai_requests")
        admin.get_by_test_id("grant-amount").fill("25")
        admin.get_by_test_id("grant-submit").click()
        expect(admin.get_by_test_id("confirm-summary")).to_contain_text(
            f"Grant 25 AI requests credits to {customer_email}."
        )
        admin.get_by_test_id("confirm-reason").fill("Sorry for the outage")
        admin.get_by_test_id("confirm-submit").click()
        expect(admin).to_have_url(re.compile(r"/admin/billing/customers/user_\d+$"))
        expect(admin.get_by_role("status")).to_contain_text("Granted 25 AI requests credits")
        expect(admin.get_by_test_id("meter-ai_requests-credits")).to_contain_text("25 credits")

        admin.get_by_role("navigation", name="Admin").get_by_role("link", name="Audit log").click()
        audit = admin.get_by_test_id("audit-table")
        expect(audit).to_contain_text("Sorry for the outage")
        # Issue 21, item 11: the customer by email (not user_N), the details in words.
        expect(audit.get_by_role("link", name=customer_email)).to_be_visible()
        expect(audit).to_contain_text("Granted 25 AI requests credits, no expiry")

        # A new API key (the emulator: a test key) is copied by its button.
        admin.get_by_role("navigation", name="Admin").get_by_role("link", name="API keys").click()
        admin.get_by_test_id("key-name").fill("e2e copy")
        admin.get_by_test_id("key-reason").fill("browser test")
        admin.get_by_test_id("key-create").click()
        key = admin.get_by_test_id("raw-key")
        expect(key).to_have_value(re.compile(r"^bp_test_"))
        key.focus()  # selects the whole key, for Ctrl+C without the button
        assert key.evaluate("f => [f.selectionStart, f.selectionEnd]") == [
            0,
            len(key.input_value()),
        ]
        admin.get_by_test_id("copy-key").click()
        expect(admin.get_by_test_id("copy-status")).to_have_text("Copied")
        assert admin.evaluate("navigator.clipboard.readText()") == key.input_value()
        # Its revoke confirm page keeps the admin navigation, "API keys" current.
        admin.get_by_test_id("key-table").get_by_role(
            "row", name=re.compile("e2e copy")
        ).get_by_role("link", name="Revoke…").click()
        expect(admin.get_by_test_id("confirm-revoke")).to_be_visible()
        expect(
            admin.get_by_role("navigation", name="Admin").get_by_role("link", name="API keys")
        ).to_have_attribute("aria-current", "page")
    finally:
        admin_context.close()

    page.goto("/billing")
    expect(page.get_by_test_id("meter-ai_requests-credits")).to_contain_text("25 credits left")


# --- narrow screens ------------------------------------------------------------------------

PHONE = {"width": 375, "height": 780}
# What sticks out past the right edge (not counting what scrolls inside its own box), to say
# what overflows when the assertion fails.
OVERFLOWING = """() => {
  const width = window.innerWidth;
  const clipped = (el) => {
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      if (getComputedStyle(up).overflowX !== 'visible') return true;
    }
    return false;
  };
  return [...document.querySelectorAll('body *')]
    .filter((el) => el.getBoundingClientRect().right > width + 0.5 && !clipped(el))
    .slice(0, 8)
    .map((el) => `${el.tagName.toLowerCase()}.${el.className} ${el.dataset.testid || ''}`
      + ` (${Math.round(el.getBoundingClientRect().right)}px)`);
}"""


def long_id(prefix: str, length: int = 58) -> str:
    """A Stripe-like id: one unbreakable word, as long as a real `cs_test_…` id."""
    return prefix + secrets.token_urlsafe(length)[:length].replace("-", "a").replace("_", "b")


def seed_long_ids(live_server: LiveServer) -> str:
    """A customer whose ids, events, invoices, usage and audit entries carry long unbreakable
    ids and text, as real Stripe data does; returns its external id."""
    external_id = long_id("org_", 40)
    email = f"accounts-payable-{secrets.token_hex(6)}@a-rather-long-company-domain.example.com"
    stripe_customer = long_id("cus_", 24)
    key = live_server.cli("create-api-key", f"e2e-narrow-{secrets.token_hex(3)}").split()[-1]
    with httpx.Client(
        base_url=live_server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as api:
        body = {"customer": {"external_id": external_id, "email": email, "name": "Long Ids"}}
        assert api.post("/api/v1/customers", json=body).status_code == 200
        events = [
            {
                "transaction_id": long_id("req_", 48),
                "external_customer_id": external_id,
                "code": "ai_requests",
            }
            for _ in range(3)
        ]
        response = api.post("/api/v1/events/batch", json={"events": events})
        assert response.status_code == 200, response.text

    async def write() -> None:
        engine = create_engine(live_server.database_url)
        try:
            async with create_session_factory(engine)() as session:
                customer = await session.scalar(
                    select(Customer).where(Customer.external_id == external_id)
                )
                assert customer is not None
                customer.stripe_customer_id = stripe_customer
                await session.execute(
                    update(Subscription)
                    .where(Subscription.customer_id == customer.id)
                    .values(
                        plan_slug="business",
                        interval="year",
                        status="past_due",
                        stripe_subscription_id=long_id("sub_", 24),
                    )
                )
                session_id = long_id("cs_test_", 58)
                for n, (kind, status) in enumerate(
                    [
                        ("checkout.session.completed", "failed"),
                        ("invoice.payment_failed", "processed"),
                    ]
                ):
                    session.add(
                        StripeEvent(
                            stripe_event_id=long_id("evt_", 24),
                            type=kind,
                            object_id=session_id if n == 0 else long_id("in_", 24),
                            stripe_customer_id=stripe_customer,
                            stripe_created=1_700_000_000 + n,
                            payload={"id": session_id, "customer": stripe_customer},
                            status=status,
                            attempts=3,
                            last_error=f"KeyError: {session_id} not found in {long_id('sub_', 40)}",
                        )
                    )
                session.add(
                    Invoice(
                        customer_id=customer.id,
                        stripe_invoice_id=long_id("in_", 24),
                        number=None,
                        status="open",
                        currency="usd",
                        total=149000,
                        amount_due=149000,
                        hosted_invoice_url=f"https://invoice.example/{long_id('i_', 40)}",
                    )
                )
                session.add(
                    AuditLog(
                        actor_email=email,
                        action="grant_credits",
                        target_type="customer",
                        target_id=external_id,
                        reason=f"Refund for checkout {session_id}",
                        details={"meter": "ai_requests", "transaction_id": session_id},
                    )
                )
                await session.commit()
        finally:
            await engine.dispose()

    run_async(write)
    return external_id


def test_admin_pages_fit_a_375px_screen(browser: Browser, live_server: LiveServer) -> None:
    """Long ids wrap and wide tables scroll inside their own box: the page itself never
    scrolls sideways on a phone."""
    external_id = seed_long_ids(live_server)
    context = browser.new_context(base_url=live_server.url, viewport=PHONE)
    try:
        page = context.new_page()
        log_in(page, DEMO_ADMIN[1], DEMO_ADMIN[2])
        expect(page.get_by_test_id("nav-user")).to_have_text(DEMO_ADMIN[1])
        page.goto("/admin/billing/events")
        event_id = page.locator("[data-testid=event-table] tbody a").first.get_attribute("href")
        assert event_id
        paths = [
            "/admin/billing",
            "/admin/billing/customers",
            f"/admin/billing/customers/{external_id}",
            "/admin/billing/invoices",
            "/admin/billing/events",
            event_id,
            "/admin/billing/api-keys",
            "/admin/billing/audit",
            "/admin/billing/outbox",
        ]
        too_wide = {}
        for path in paths:
            page.goto(path)
            expect(page.get_by_role("heading", level=1)).to_be_visible()
            width, scroll_width = page.evaluate(
                "[window.innerWidth, document.documentElement.scrollWidth]"
            )
            if scroll_width > width:
                too_wide[path] = (scroll_width, page.evaluate(OVERFLOWING))
        assert not too_wide, f"pages scroll sideways at {PHONE['width']}px: {too_wide}"
    finally:
        context.close()
