"""Every page of the portal, as the screenshots (`make screenshots`) and the accessibility
check (test_accessibility.py) visit them (issue 21, "How to check"): the customer pages
logged in as the demo user, the admin pages as the demo admin, the logged-out pages, and
the error pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from playwright.sync_api import Browser, BrowserContext, Page, expect

from app.demo import DEMO_ADMIN, DEMO_USERS
from tests.e2e.conftest import LiveServer

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 800}
SCHEMES = ("light", "dark")

PUBLIC = [
    ("login", "/login"),
    ("signup", "/signup"),
    ("forgot", "/forgot"),
    ("404-logged-out", "/no-such-page"),
]
CUSTOMER = [
    ("billing", "/billing"),
    ("plans", "/billing/upgrade"),
    ("plans-yearly", "/billing/upgrade?interval=year"),
    ("credits", "/billing/credits"),
    ("invoices", "/billing/invoices"),
    ("payment-methods", "/billing/payment-methods"),
    ("billing-details", "/billing/details"),
    ("settings", "/billing/settings"),
    ("team", "/billing/team"),
    ("account", "/account"),
    ("two-factor", "/account/two-factor"),
    ("delete-account", "/account/delete"),
    ("404-logged-in", "/billing/no-such-page"),
]
ADMIN = [
    ("admin-overview", "/admin/billing"),
    ("admin-customers", "/admin/billing/customers"),
    ("admin-customer", "/admin/billing/customers?q=demo"),  # replaced by the first row's link
    ("admin-confirm", "/admin/billing/customers?q=demo"),  # that customer's grant confirm step
    ("admin-invoices", "/admin/billing/invoices"),
    ("admin-events", "/admin/billing/events"),
    ("admin-api-keys", "/admin/billing/api-keys"),
    ("admin-audit", "/admin/billing/audit"),
    ("admin-outbox", "/admin/billing/outbox"),
    ("admin-usage-report", "/admin/billing/reports/usage"),
    ("admin-credit-report", "/admin/billing/reports/credits"),
]
# Visible text must not show an ISO timestamp (issue 21, item 4: one date format).
ISO_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}")


@dataclass(frozen=True)
class Visit:
    name: str  # e.g. "billing", "admin-audit"
    page: Page


def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("logout")).to_be_attached()  # in the account menu


def open_account_menu(page: Page) -> None:
    """Open the header's account menu (email, organization, account settings, log out): a
    dropdown from 1080 px, inside the "Menu" panel below that (components/site_nav.html)."""
    toggle = page.get_by_test_id("account-menu")
    if not toggle.is_visible():
        toggle = page.get_by_test_id("nav-menu")
    if not toggle.evaluate("summary => summary.parentElement.open"):
        toggle.click()
    expect(page.get_by_test_id("logout")).to_be_visible()


def log_out(page: Page) -> None:
    open_account_menu(page)
    page.get_by_test_id("logout").click()


@contextmanager
def logged_in(
    browser: Browser,
    server: LiveServer,
    viewport: dict[str, int],
    email: str,
    password: str,
    *,
    javascript: bool = True,
) -> Iterator[Page]:
    """A page of a fresh browser context at `viewport`, logged in; the context closes after."""
    context = browser.new_context(
        base_url=server.url,
        viewport=viewport,  # type: ignore[arg-type]
        java_script_enabled=javascript,
    )
    try:
        page = context.new_page()
        log_in(page, email, password)
        yield page
    finally:
        context.close()


def _context(
    browser: Browser, server: LiveServer, scheme: str, viewport: dict[str, int]
) -> BrowserContext:
    return browser.new_context(
        base_url=server.url,
        color_scheme=scheme,  # type: ignore[arg-type]
        viewport=viewport,  # type: ignore[arg-type]
    )


def _open(page: Page, path: str) -> None:
    response = page.goto(path)
    assert response is not None
    assert response.status < 500, (path, response.status)
    page.wait_for_load_state("load")


def visit_all(
    browser: Browser, server: LiveServer, scheme: str, viewport: dict[str, int]
) -> Iterator[Visit]:
    """Open every page in turn (one browser context per role) and hand it over loaded."""
    context = _context(browser, server, scheme, viewport)
    try:
        page = context.new_page()
        for name, path in PUBLIC:
            _open(page, path)
            yield Visit(name, page)
    finally:
        context.close()

    context = _context(browser, server, scheme, viewport)
    try:
        page = context.new_page()
        _role, email, password, _name = DEMO_USERS[0]
        log_in(page, email, password)
        try_it = page.get_by_test_id("try-it")
        if try_it.count() and try_it.is_enabled():  # some usage on the bars and the chart
            try_it.click()
        for name, path in CUSTOMER:
            _open(page, path)
            yield Visit(name, page)
    finally:
        context.close()

    context = _context(browser, server, scheme, viewport)
    try:
        page = context.new_page()
        _role, email, password = DEMO_ADMIN
        log_in(page, email, password)
        for name, path in ADMIN:
            _open(page, path)
            if name in ("admin-customer", "admin-confirm"):
                link = page.locator("[data-testid=customer-table] tbody a").first
                if not link.count():
                    continue
                href = link.get_attribute("href") or "/admin/billing/customers"
                if name == "admin-confirm":
                    href += "/confirm?action=grant_credits&meter=ai_requests&amount=10"
                _open(page, href)
            yield Visit(name, page)
    finally:
        context.close()
