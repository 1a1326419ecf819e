"""Every page passes axe-core with no serious or critical violation, light and dark, and
shows no ISO timestamp in its visible text (issue 21: "How to check", items 4 and 12).

axe-core is vendored (tests/e2e/vendor/axe.min.js, MPL-2.0, its licence beside it). The
pages' Content-Security-Policy allows no inline script, so `add_script_tag` (an inline
<script>) would be refused; Playwright's `evaluate` runs the source through the DevTools
protocol, which the page's CSP does not govern, and axe itself needs no eval."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Response

from tests.e2e.conftest import LiveServer
from tests.e2e.site_pages import DESKTOP, ISO_TIMESTAMP, SCHEMES, visit_all

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text(encoding="utf-8")
RUN_AXE = """async () => {
  const results = await axe.run(document, {
    runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
    resultTypes: ["violations"],
  });
  return results.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({id: v.id, impact: v.impact, help: v.help,
                  nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + " :: " + n.failureSummary)}));
}"""


def _record_failure(response: Response, failed: list[str]) -> None:
    if response.status >= 400 and response.request.resource_type != "document":
        failed.append(f"{response.status} {response.url}")


def axe_violations(page: Page) -> list[dict[str, Any]]:
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE)
    violations: list[dict[str, Any]] = page.evaluate(RUN_AXE)
    return violations


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_page_passes_axe_and_shows_no_iso_timestamp(
    browser: Browser, live_server: LiveServer, scheme: str
) -> None:
    problems: dict[str, Any] = {}
    seen = []
    failed: list[str] = []  # sub-resources (the favicon, styles, scripts) that did not load
    watched: list[Page] = []
    for visit in visit_all(browser, live_server, scheme, DESKTOP):
        if visit.page not in watched:
            watched.append(visit.page)
            visit.page.on("response", lambda r: _record_failure(r, failed))
        seen.append(visit.name)
        visit.page.wait_for_load_state("networkidle")
        violations = axe_violations(visit.page)
        if violations:
            problems[visit.name] = violations
        text = visit.page.inner_text("body")
        if ISO_TIMESTAMP.search(text):
            problems[f"{visit.name} (ISO timestamp)"] = ISO_TIMESTAMP.findall(text)[:3]
    assert len(seen) >= 20, seen
    assert problems == {}
    assert failed == []
