"""The plans x features comparison in real Chromium (issue 20, item 2): readable on a 375 px
phone without sideways scrolling, each mark with words a screen reader reads."""

from __future__ import annotations

import secrets

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.test_billing_pages import api, api_key, portal_login  # noqa: F401 (fixtures)

PHONE = {"width": 375, "height": 780}


def test_the_feature_comparison_fits_a_phone(page: Page, api: httpx.Client):  # noqa: F811
    page.set_viewport_size(PHONE)
    portal_login(page, api, f"e2e_features_{secrets.token_hex(4)}", plan="pro")

    for path in ("/billing", "/billing/upgrade"):
        page.goto(path)
        table = page.get_by_test_id("feature-table")
        expect(table).to_be_visible()
        # What a screen reader reads: the words, not the mark (aria-hidden).
        yes, no = page.get_by_test_id("feature-export-pro"), page.get_by_test_id("feature-sso-pro")
        expect(yes).to_match_aria_snapshot('- cell "Included in Pro"')
        expect(no).to_match_aria_snapshot('- cell "Not included in Pro"')
        expect(yes).to_contain_text("✓")
        expect(table.get_by_role("columnheader", name="Pro (your plan)")).to_be_visible()
        # The whole table shows: it needs no scrolling inside its box, nor the page sideways.
        fits = table.evaluate(
            "t => t.getBoundingClientRect().right <= document.documentElement.clientWidth"
        )
        assert fits, f"{path}: the feature table is wider than the screen"
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 375px"
