"""`make screenshots`: every page (tests/e2e/site_pages.py) at 1280 and 375 px, light and
dark, into screenshots/ (gitignored), for a person to look at (issue 21, "How to check").

Skipped unless SCREENSHOTS_DIR is set (the Makefile target sets it): the normal run checks
the same pages with axe (test_accessibility.py) without writing files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.e2e.conftest import LiveServer
from tests.e2e.site_pages import DESKTOP, PHONE, SCHEMES, visit_all

TARGET = os.environ.get("SCREENSHOTS_DIR")


@pytest.mark.skipif(not TARGET, reason="set SCREENSHOTS_DIR (make screenshots)")
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("width", ["1280", "375"])
def test_screenshots(browser: Browser, live_server: LiveServer, scheme: str, width: str) -> None:
    folder = Path(TARGET or "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    viewport = DESKTOP if width == "1280" else PHONE
    taken = []
    for visit in visit_all(browser, live_server, scheme, viewport):
        path = folder / f"{visit.name}-{width}-{scheme}.png"
        visit.page.screenshot(path=str(path), full_page=True)
        taken.append(path)
    assert len(taken) >= 20
