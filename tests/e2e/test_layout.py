"""Layout at 1280 and 375 px (issue 21, items 2 and 3): no page scrolls past its footer or
sideways, no table is cut off on a phone, and the header's navigation folds into a "Menu"
disclosure on a phone (the admin sections too) that works without JavaScript, marks the
current page and holds the account (email, organization, account settings, log out)."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Browser, Page, expect

from app.demo import DEMO_ADMIN, DEMO_USERS
from tests.e2e.conftest import LiveServer
from tests.e2e.site_pages import DESKTOP, PHONE, logged_in, visit_all
from tests.e2e.test_accessibility import axe_violations

# How the page overruns: the document taller than the body (blank scroll under the footer),
# wider than the viewport, and every element whose right edge is past the viewport's (a
# table cut off inside its scrolling box counts) unless a box that hides overflow clips it.
MEASURE = """() => {
  const width = document.documentElement.clientWidth;
  const body = document.body.getBoundingClientRect().bottom + window.scrollY;
  const clipped = (el) => {
    for (let box = el; box && box !== document.body; box = box.parentElement) {
      const overflow = getComputedStyle(box).overflowX;
      if ((overflow === "hidden" || overflow === "clip") && box.getBoundingClientRect().right <= width + 1) {
        return true;
      }
    }
    return false;
  };
  const past = [];
  for (const el of document.body.querySelectorAll("*")) {
    const rect = el.getBoundingClientRect();
    if (rect.width > 0 && rect.height > 0 && rect.right > width + 1 && !clipped(el)) {
      const name = el.tagName.toLowerCase() + (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\\s+/).join(".") : "");
      const testid = el.closest("[data-testid]");
      past.push(`${name} in ${testid ? testid.dataset.testid : "page"}: right edge at ${Math.round(rect.right)}`);
    }
  }
  return {
    below_footer: Math.round(document.documentElement.scrollHeight - Math.ceil(body)),
    scroll_width: document.documentElement.scrollWidth,
    past_right_edge: past.slice(0, 5),
  };
}"""


def overruns(page: Page, width: int) -> dict[str, Any]:
    found = page.evaluate(MEASURE)
    problems: dict[str, Any] = {}
    if found["below_footer"] > 1:
        problems["blank scroll below the footer (px)"] = found["below_footer"]
    if found["scroll_width"] > width:
        problems["document wider than the viewport (px)"] = found["scroll_width"]
    if found["past_right_edge"]:
        problems["past the right edge"] = found["past_right_edge"]
    return problems


def test_every_page_fits_a_phone_and_ends_at_its_footer(
    browser: Browser, live_server: LiveServer
) -> None:
    problems: dict[str, Any] = {}
    seen = []
    for visit in visit_all(browser, live_server, "light", PHONE):
        seen.append(visit.name)
        found = overruns(visit.page, PHONE["width"])
        if found:
            problems[visit.name] = found
    assert len(seen) >= 20, seen
    assert "team" in seen and "account" in seen and "admin-overview" in seen
    assert problems == {}


def test_charted_pages_end_at_their_footer_at_1280(
    browser: Browser, live_server: LiveServer
) -> None:
    problems: dict[str, Any] = {}
    for (_role, email, password, *_rest), paths in (
        (DEMO_USERS[0], ["/billing"]),
        (DEMO_ADMIN, ["/admin/billing", "/admin/billing/reports/usage"]),
    ):
        with logged_in(browser, live_server, DESKTOP, email, password) as page:
            for path in paths:
                page.goto(path)
                page.wait_for_load_state("load")
                found = overruns(page, DESKTOP["width"])
                if found:
                    problems[path] = found
    assert problems == {}


ADMIN_LOGIN = DEMO_ADMIN[1:]


def _header_height(page: Page) -> float:
    box = page.locator("header.topbar").bounding_box()
    assert box is not None
    return box["height"]


def test_phone_menu_marks_the_page_holds_the_account_and_closes_on_escape(
    browser: Browser, live_server: LiveServer
) -> None:
    with logged_in(browser, live_server, PHONE, *ADMIN_LOGIN) as page:
        page.goto("/billing/invoices")
        nav = page.get_by_role("navigation", name="Main")
        menu = page.get_by_test_id("nav-menu")
        invoices = nav.get_by_role("link", name="Invoices")
        # Closed: one line (the product's name and the button), no link shown.
        expect(menu).to_be_visible()
        expect(invoices).to_be_hidden()
        assert _header_height(page) < 80
        menu.click()
        expect(invoices).to_be_visible()
        expect(invoices).to_have_attribute("aria-current", "page")
        mark = invoices.evaluate(
            "a => [getComputedStyle(a).fontWeight, getComputedStyle(a).boxShadow]"
        )
        assert int(mark[0]) >= 600 and mark[1] != "none", mark
        expect(nav.get_by_role("link", name="Plans")).not_to_have_attribute("aria-current", "page")
        # The account: who is logged in, account settings, log out.
        panel = page.locator("#account-panel")
        expect(panel).to_contain_text(DEMO_ADMIN[1])
        expect(panel.get_by_role("link", name="Account settings")).to_be_visible()
        expect(page.get_by_test_id("logout")).to_be_visible()
        assert axe_violations(page) == []
        # Escape closes it and gives the focus back to the button.
        invoices.focus()
        page.keyboard.press("Escape")
        expect(invoices).to_be_hidden()
        expect(menu).to_be_focused()
        # A link in the menu leads on; back again, the page comes back with the menu closed.
        menu.click()
        nav.get_by_role("link", name="Plans").click()
        expect(page).to_have_url(re.compile(r"/billing/upgrade$"))
        page.go_back()
        expect(page).to_have_url(re.compile(r"/billing/invoices$"))
        expect(menu).to_be_visible()
        expect(invoices).to_be_hidden()

        # The admin sections: one button naming the current one.
        page.goto("/admin/billing/audit")
        sections = page.get_by_role("navigation", name="Admin")
        toggle = page.get_by_test_id("admin-nav-menu")
        expect(toggle).to_have_text(re.compile(r"Admin:\s*Audit log"))
        expect(sections.get_by_role("link", name="Customers")).to_be_hidden()
        assert _header_height(page) < 80
        toggle.click()
        expect(sections.get_by_role("link", name="Customers")).to_be_visible()
        expect(sections.get_by_role("link", name="Audit log")).to_have_attribute(
            "aria-current", "page"
        )
        # Opening the main menu closes the admin one.
        page.get_by_test_id("nav-menu").click()
        expect(nav.get_by_role("link", name="Billing", exact=True)).to_be_visible()
        expect(sections.get_by_role("link", name="Customers")).to_be_hidden()


def test_phone_menu_works_without_javascript(browser: Browser, live_server: LiveServer) -> None:
    with logged_in(browser, live_server, PHONE, *ADMIN_LOGIN, javascript=False) as page:
        page.goto("/account")
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Billing", exact=True)).to_be_hidden()
        page.get_by_test_id("nav-menu").click()
        expect(nav.get_by_role("link", name="Billing", exact=True)).to_be_visible()
        expect(nav.get_by_role("link", name="Account settings")).to_have_attribute(
            "aria-current", "page"
        )
        page.get_by_test_id("nav-menu").click()
        expect(nav.get_by_role("link", name="Billing", exact=True)).to_be_hidden()


def test_desktop_navigation_is_one_line_with_an_account_menu(
    browser: Browser, live_server: LiveServer
) -> None:
    with logged_in(browser, live_server, DESKTOP, *ADMIN_LOGIN) as page:
        page.goto("/admin/billing/customers")
        nav = page.get_by_role("navigation", name="Main")
        expect(page.get_by_test_id("nav-menu")).to_be_hidden()
        expect(nav.get_by_role("link", name="Payment methods")).to_be_visible()
        expect(nav.get_by_role("link", name="Admin")).to_have_attribute("aria-current", "true")
        assert _header_height(page) < 70  # every link, the admin's too, on one line
        account = page.get_by_test_id("account-menu")
        expect(account).to_have_text(re.compile(re.escape(ADMIN_LOGIN[0])))
        expect(page.get_by_test_id("logout")).to_be_hidden()
        account.click()
        expect(page.get_by_test_id("logout")).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.get_by_test_id("logout")).to_be_hidden()
        expect(account).to_be_focused()
        account.click()
        page.locator("main h1").click()  # a click elsewhere closes it
        expect(page.get_by_test_id("logout")).to_be_hidden()
