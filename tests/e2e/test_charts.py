"""The charts in real Chromium (issue 21, item 1): on the customer's dashboard and the admin
overview, at 1280 and 375 px, every axis label is drawn inside its chart and no two overlap,
nothing scrolls sideways, an unused meter says "No usage yet", and "Show as table" opens a
real table of the values (a <details>: no JavaScript needed)."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from app.demo import DEMO_ADMIN, DEMO_USERS
from tests.e2e.conftest import LiveServer
from tests.e2e.site_pages import DESKTOP, PHONE, log_in

# Every visible label of every chart: its box, and whether it lies inside its figure's.
LABELS_JS = """
() => {
  const problems = [];
  const figures = [...document.querySelectorAll("figure.bp-chart")];
  for (const figure of figures) {
    const box = figure.getBoundingClientRect();
    const name = figure.dataset.testid;
    for (const axis of figure.querySelectorAll("svg.bp-chart-x, svg.bp-chart-y")) {
      const labels = [...axis.querySelectorAll("text")]
        .filter((t) => getComputedStyle(t).display !== "none")
        .map((t) => ({ text: t.textContent, r: t.getBoundingClientRect() }));
      if (!labels.length) problems.push(`${name}: an axis without labels`);
      for (const { text, r } of labels) {
        if (r.width === 0) problems.push(`${name}: "${text}" not drawn`);
        if (r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 ||
            r.bottom > box.bottom + 0.5) {
          problems.push(`${name}: "${text}" outside its chart`);
        }
      }
      const horizontal = axis.classList.contains("bp-chart-x");
      labels.sort((a, b) => (horizontal ? a.r.left - b.r.left : a.r.top - b.r.top));
      for (let i = 1; i < labels.length; i++) {
        const [a, b] = [labels[i - 1].r, labels[i].r];
        if (horizontal ? a.right > b.left + 0.5 : a.bottom > b.top + 0.5) {
          problems.push(`${name}: "${labels[i - 1].text}" overlaps "${labels[i].text}"`);
        }
      }
    }
  }
  const wide = document.documentElement.scrollWidth > window.innerWidth;
  return { charts: figures.length, problems, wide };
}
"""


def check_labels(page: Page, least_charts: int) -> None:
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)  # type: ignore[arg-type]
        found = page.evaluate(LABELS_JS)
        assert found["charts"] >= least_charts, found
        assert found["problems"] == [], (viewport, found["problems"])
        assert not found["wide"], f"the page scrolls sideways at {viewport['width']} px"


def test_charts_are_labelled_fit_and_show_a_table(
    browser: Browser, live_server: LiveServer
) -> None:
    context = browser.new_context(base_url=live_server.url, viewport=DESKTOP)  # type: ignore[arg-type]
    try:
        page = context.new_page()
        _role, email, password, _name = DEMO_USERS[0]
        log_in(page, email, password)
        page.get_by_test_id("try-it").click()  # an AI request: today's bar
        page.goto("/billing")
        ai = page.get_by_test_id("chart-ai_requests")
        expect(ai.locator("rect.chart-bar")).to_have_count(1)
        # The free plan's AI requests reset daily: the last 7 days, against the daily limit.
        expect(ai).to_contain_text(re.compile(r"[1-9]\d* today"))  # the server is shared
        expect(ai).to_contain_text("Last 7 days · limit 20 a day")
        expect(page.get_by_test_id("chart-api_calls-empty")).to_have_text("No usage yet")
        check_labels(page, 3)

        table = page.get_by_test_id("chart-ai_requests-table")
        expect(table.get_by_role("table")).to_be_hidden()
        table.get_by_text("Show as table").click()
        expect(table.get_by_role("table")).to_be_visible()
        expect(table.get_by_role("row")).to_have_count(8)  # a header and 7 days
        expect(table.get_by_role("row").last).to_contain_text(re.compile(r"\d{4}\s*[1-9]"))
        # The chart refreshes itself (htmx): the open table stays open in the fresh copy.
        page.evaluate("document.getElementById('usage-chart').dataset.old = '1'")
        page.evaluate("document.body.dispatchEvent(new Event('usage-changed'))")
        expect(page.locator("#usage-chart:not([data-old])")).to_be_attached()
        expect(table.get_by_role("table")).to_be_visible()
        expect(table.locator("summary")).to_be_focused()  # and the focus stays on its toggle
    finally:
        context.close()

    context = browser.new_context(base_url=live_server.url, viewport=DESKTOP)  # type: ignore[arg-type]
    try:
        page = context.new_page()
        _role, email, password = DEMO_ADMIN
        log_in(page, email, password)
        page.goto("/admin/billing")
        usage = page.get_by_test_id("chart-usage-ai_requests")
        expect(usage).to_contain_text(re.compile(r"[1-9][\d,]* in total"))
        check_labels(page, 3)
    finally:
        context.close()
