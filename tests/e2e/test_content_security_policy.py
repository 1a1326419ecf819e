"""Under the real Content-Security-Policy in Chromium: every page a user and an admin can reach,
the portal-link page, the error pages and the Stripe emulator's hosted pages load without a
single CSP violation (or htmx eval error), and htmx still works (live usage, Checkout status)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from app.db.engine import create_engine, create_session_factory
from app.notifications.models import EmailOutboxMessage
from tests.e2e.conftest import LiveServer, run_async, unique_email
from tests.e2e.emulator import serve_with_emulator
from tests.support import free_port

EMULATOR_PORT = free_port()
EMULATOR = f"http://127.0.0.1:{EMULATOR_PORT}"
PASSWORD = "correct horse battery"
WEBHOOK_TIMEOUT = 15_000

# Runs in every frame before the page's own scripts: CSP violations, and htmx refusing to eval
# (allowEval is off: an hx-trigger [filter] or hx-on would silently stop working).
REPORTER = """
document.addEventListener("securitypolicyviolation", (e) => window.__cspReport(
  `${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`));
for (const name of ["htmx:evalDisallowedError", "htmx:syntax:error"]) {
  document.addEventListener(name, () => window.__cspReport(`${name} on ${location.href}`));
}
"""


live_server_env, live_server_args, emulator_ready = serve_with_emulator(EMULATOR_PORT)


class Watched:
    """A browser context whose CSP violations and CSP console errors are collected, by page."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.problems: list[str] = []
        self.visited: list[str] = []
        context.expose_binding("__cspReport", lambda source, text: self._add(source, text))
        context.add_init_script(REPORTER)
        context.on("console", self._console)
        context.on("response", self._response)
        self.page = context.new_page()

    def _add(self, source: dict[str, Any], text: str) -> None:
        self.problems.append(f"{source['frame'].url}: {text}")

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.problems.append(f"console: {message.text}")

    def _response(self, response: Any) -> None:
        """Every page (the portal's and the emulator's) is sent with the policy."""
        document = response.request.resource_type == "document" and response.status < 300
        if document and "content-security-policy" not in response.headers:
            self.problems.append(f"{response.url}: sent without a Content-Security-Policy")

    def visit(self, url: str) -> None:
        self.page.goto(url)
        self.settle()

    def settle(self) -> None:
        """Let the page's queued tasks (violation events are dispatched as tasks) run."""
        self.page.wait_for_load_state("load")
        self.page.evaluate(
            "() => new Promise((done) => requestAnimationFrame(() => setTimeout(done)))"
        )
        self.visited.append(self.page.url)

    def assert_clean(self) -> None:
        assert not self.problems, "CSP problems:\n" + "\n".join(self.problems)


@pytest.fixture
def watched(browser: Browser, live_server: LiveServer) -> Iterator[Any]:
    contexts: list[Watched] = []

    def make() -> Watched:
        context = browser.new_context(base_url=live_server.url)
        contexts.append(Watched(context))
        return contexts[-1]

    yield make
    for each in contexts:
        each.context.close()


def _shape(url: str) -> str:
    """One visit per kind of page: ids and numbers collapse, query values are dropped."""
    parts = urlsplit(url)
    path = re.sub(r"/[^/]*\d[^/]*", "/*", parts.path)
    keys = sorted({key for key, _ in parse_qsl(parts.query)})
    return path + ("?" + "&".join(keys) if keys else "")


DOWNLOADS = ("/pdf", ".csv", ".json")


def _is_download(href: str) -> bool:
    """A file, not a page: the browser downloads it, and no CSP applies to what it saves."""
    return href.split("?", 1)[0].endswith(DOWNLOADS)


def crawl(w: Watched, origin: str, start: str, limit: int = 60) -> list[str]:
    """Open every kind of page reachable by links from `start` on `origin` (not /logout)."""
    queue, seen, opened = [start], {_shape(start)}, []
    while queue and len(opened) < limit:
        w.visit(queue.pop(0))
        opened.append(w.page.url)
        hrefs = w.page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
        for href in hrefs:
            href = href.split("#", 1)[0]
            if not href.startswith(origin + "/") or "/logout" in href or "/static/" in href:
                continue
            if _is_download(href) or _shape(href) in seen:
                continue
            seen.add(_shape(href))
            queue.append(href)
    return opened


def sign_up(page: Page) -> str:
    email = unique_email("csp")
    page.goto("/signup")
    page.get_by_label("Name").fill("Content Policy")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_test_id("signup-submit").click()
    expect(page.get_by_test_id("current-plan")).to_contain_text("Free")
    return email


def test_user_pages_and_checkout_have_no_csp_violation(watched: Any, live_server: LiveServer):
    w = watched()
    page = w.page
    w.visit("/login")
    sign_up(page)
    w.settle()

    # htmx under the CSP: "Run a fake AI request" updates the bar without a reload.
    bar = page.get_by_test_id("meter-ai_requests").get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuenow", "0")
    page.evaluate("window.__noReload = 1")
    for used in (1, 2, 3):
        page.get_by_test_id("try-it").click()
        expect(bar).to_have_attribute("aria-valuenow", str(used * 5))
    assert page.evaluate("window.__noReload") == 1
    fill = bar.locator(".progress-fill")  # the bar is drawn, styled by app.css alone
    track_width = bar.bounding_box()["width"]  # type: ignore[index]
    expect(fill).to_have_css("fill", "rgb(79, 107, 237)")
    assert fill.bounding_box()["width"] == pytest.approx(track_width * 0.15, abs=2)  # type: ignore[index]

    # Stripe Checkout on the emulator's page, then the success page's htmx polling.
    w.visit("/billing/upgrade")
    page.get_by_test_id("checkout-pro-monthly").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(EMULATOR)}/checkout/cs_"))
    w.settle()
    expect(page.locator("main")).to_have_css("background-color", "rgb(255, 255, 255)")
    page.locator("input[name=card_number]").fill("4000 0000 0000 0002")  # declined: the form again
    page.locator("input[name=exp_date]").fill("12 / 34")
    page.locator("input[name=cvc]").fill("123")
    page.get_by_test_id("checkout-pay").click()
    expect(page.get_by_test_id("checkout-error")).to_be_visible()
    w.settle()
    page.locator("input[name=card_number]").fill("4242 4242 4242 4242")
    page.locator("input[name=exp_date]").fill("12 / 34")
    page.locator("input[name=cvc]").fill("123")
    page.get_by_test_id("checkout-pay").click()
    expect(page.get_by_test_id("checkout-status")).to_have_attribute(
        "data-state", "done", timeout=WEBHOOK_TIMEOUT
    )
    w.settle()

    opened = crawl(w, live_server.url, live_server.url + "/billing")
    paths = {urlsplit(url).path for url in opened}
    for path in ("/billing/upgrade", "/billing/credits", "/billing/invoices", "/billing/settings"):
        assert path in paths, (path, sorted(paths))
    assert "/billing/subscription/cancel" in paths, sorted(paths)

    # The emulator's other page: the hosted invoice (the app opens no Stripe billing portal).
    w.visit("/billing/invoices")
    invoice = page.get_by_test_id("invoice-table").locator(f"a[href^='{EMULATOR}/invoice/']")
    w.visit(invoice.first.get_attribute("href") or "")

    # Error pages: someone else's admin area (403) and a page that does not exist (404).
    for path, status in (("/admin/billing", 403), ("/no/such/page", 404)):
        response = page.goto(path)
        assert response and response.status == status
        w.settle()
    w.assert_clean()


def add_email(live_server: LiveServer) -> str:
    """An outbox email whose HTML is styled inline, as emails are; its subject."""
    subject = f"Styled email {secrets.token_hex(3)}"

    async def write() -> None:
        engine = create_engine(live_server.database_url)
        try:
            async with create_session_factory(engine)() as session:
                session.add(
                    EmailOutboxMessage(
                        kind="usage_warning",
                        to_address="inbox@example.com",
                        subject=subject,
                        text_body="text",
                        html_body='<h1 style="color: rgb(1, 2, 3)">Inline styles</h1>',
                        dedupe_key=subject,
                        message_id=f"<{secrets.token_hex(4)}@example.com>",
                        status="skipped",
                    )
                )
                await session.commit()
        finally:
            await engine.dispose()

    run_async(write)
    return subject


def test_admin_pages_and_the_portal_link_page_have_no_csp_violation(
    watched: Any, live_server: LiveServer
):
    subject = add_email(live_server)
    customer = watched()
    customer_email = sign_up(customer.page)
    customer.page.get_by_test_id("try-it").click()  # some usage and an audit trail to show

    admin = watched()
    email = unique_email("csp-admin")
    live_server.cli("create-admin", email, "--password", PASSWORD)
    admin.visit("/login")
    admin.page.get_by_label("Email").fill(email)
    admin.page.get_by_label("Password").fill(PASSWORD)
    admin.page.get_by_test_id("login-submit").click()
    expect(admin.page.get_by_test_id("nav-user")).to_have_text(email)
    opened = crawl(admin, live_server.url, live_server.url + "/admin/billing")
    paths = {urlsplit(url).path for url in opened}
    for path in ("/admin/billing/customers", "/admin/billing/events", "/admin/billing/outbox"):
        assert path in paths, (path, sorted(paths))
    assert any(re.fullmatch(r"/admin/billing/customers/[^/]+", p) for p in paths), sorted(paths)
    assert any(re.fullmatch(r"/admin/billing/outbox/\d+", p) for p in paths), sorted(paths)

    # The email preview frame keeps the email's own inline styles (its own, looser policy).
    admin.visit("/admin/billing/outbox")
    admin.page.get_by_role("link", name=subject).click()
    heading = admin.page.frame_locator("[data-testid=outbox-html]").get_by_role("heading")
    expect(heading).to_have_css("color", "rgb(1, 2, 3)")

    # htmx under the CSP on an admin page: the customer search narrows as one types.
    admin.visit("/admin/billing/customers")
    admin.page.get_by_test_id("customer-search").fill(customer_email.split("@")[0])
    expect(admin.page.get_by_test_id("customer-count")).to_have_text("1 customer")

    # The portal-link page (no-referrer), which submits itself from static/portal-enter.js.
    key = live_server.cli("create-api-key", f"csp-{secrets.token_hex(3)}").split()[-1]
    external_id = f"csp_{secrets.token_hex(4)}"
    with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {key}"}) as api:
        created = api.post("/api/v1/customers", json={"customer": {"external_id": external_id}})
        assert created.status_code == 200, created.text
        link = api.get(f"/api/v1/customers/{external_id}/portal_url").json()["customer"]
    visitor = watched()
    visitor.visit(link["portal_url"])
    expect(visitor.page).to_have_url(live_server.url + "/billing")
    visitor.settle()

    for each in (customer, admin, visitor):
        each.assert_clean()
