"""Usage reports in real Chromium (issue 20, item 6): the customer downloads their usage as
CSV from the dashboard; the admin opens the usage report for a date range and sees a chart
and the table."""

from __future__ import annotations

import csv
import io
import secrets
from datetime import UTC, datetime, timedelta

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import LiveServer, unique_email
from tests.e2e.test_admin import log_in
from tests.e2e.test_billing_pages import api, api_key, portal_login

PASSWORD = "correct horse battery"
__all__ = ["api", "api_key"]  # the fixtures, shared with test_billing_pages


def send(api: httpx.Client, external_id: str, events: list[tuple[str, dict]]) -> list[str]:
    ids = [f"e2e_rep_{secrets.token_hex(6)}" for _ in events]
    body = {
        "events": [
            {
                "transaction_id": tx,
                "external_customer_id": external_id,
                "code": code,
                "properties": props,
            }
            for tx, (code, props) in zip(ids, events, strict=True)
        ]
    }
    response = api.post("/api/v1/events/batch", json=body)
    assert response.status_code == 200, response.text
    assert not [e for e in response.json()["events"] if "error" in e]
    return ids


def read_download(page: Page, click: str) -> list[list[str]]:
    with page.expect_download() as info:
        page.get_by_test_id(click).click()
    download = info.value
    path = download.path()
    assert path is not None
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_the_customer_downloads_usage_and_the_admin_sees_the_report(
    page: Page, browser: Browser, live_server: LiveServer, api: httpx.Client
) -> None:
    external_id = f"e2e-reports-{secrets.token_hex(4)}"
    portal_login(page, api, external_id, email=unique_email("reports"), name="Report Customer")
    ids = send(
        api,
        external_id,
        [
            ("tokens", {"tokens": 40, "model": "small"}),
            ("tokens", {"tokens": 2}),
            ("api_calls", {}),
        ],
    )
    today = datetime.now(UTC).date().isoformat()

    page.reload()
    expect(page.get_by_test_id("download-usage")).to_have_text("Download usage (CSV)")
    rows = read_download(page, "download-usage")
    assert rows == [["day", "meter", "amount"], [today, "api_calls", "1"], [today, "tokens", "42"]]

    events = read_download(page, "download-events")
    assert events[0] == ["event_id", "transaction_id", "meter", "value", "timestamp", "properties"]
    assert [(r[1], r[2], r[3], r[5]) for r in events[1:]] == [
        (ids[0], "tokens", "40", '{"model":"small","tokens":40}'),
        (ids[1], "tokens", "2", '{"tokens":2}'),
        (ids[2], "api_calls", "1", "{}"),
    ]
    assert all(r[4].startswith(today) and r[4].endswith("+00:00") for r in events[1:])

    admin_email = unique_email("reports-admin")
    live_server.cli("create-admin", admin_email, "--password", PASSWORD)
    admin_context = browser.new_context(base_url=live_server.url)
    try:
        admin = admin_context.new_page()
        log_in(admin, admin_email, PASSWORD)
        expect(admin.get_by_role("link", name="Admin")).to_be_visible()
        admin.goto("/admin/billing")
        admin.get_by_role("navigation", name="Admin").get_by_role(
            "link", name="Usage report"
        ).click()
        expect(admin.get_by_role("heading", name="Usage report", level=1)).to_be_visible()
        yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
        admin.get_by_test_id("report-from").fill(yesterday)
        admin.get_by_test_id("report-to").fill(today)
        admin.get_by_test_id("report-show").click()
        expect(admin).to_have_url(
            f"{live_server.url}/admin/billing/reports/usage?from={yesterday}&to={today}"
        )
        chart = admin.get_by_test_id("chart-report-tokens")
        expect(chart).to_be_visible()
        expect(chart.locator("rect.chart-bar").first).to_be_attached()
        table = admin.get_by_test_id("usage-report-table")
        expect(table).to_be_visible()
        row = admin.get_by_test_id(f"usage-row-{external_id}-tokens")
        # The newest customer is on the last page of the table (ordered by customer).
        for _ in range(50):
            if row.count():
                break
            first_row = table.locator("tbody tr").first
            shown = first_row.get_attribute("data-testid") or ""
            admin.get_by_test_id("usage-report-rows-next").click()
            # The next page replaced this one (its rows are others).
            expect(table.locator("tbody tr").first).not_to_have_attribute("data-testid", shown)
        expect(row).to_contain_text("42")
        expect(admin.get_by_test_id(f"usage-row-{external_id}-api_calls")).to_contain_text("1")

        admin.get_by_test_id("report-to").fill(yesterday)
        admin.get_by_test_id("report-from").fill(today)
        admin.get_by_test_id("report-show").click()
        expect(admin.get_by_test_id("report-error")).to_have_text(
            "The to date must be on or after the from date."
        )
    finally:
        admin_context.close()
