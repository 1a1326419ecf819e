"""Issue 21, item 12: static/app.css's colours are custom properties, with a dark theme
under `prefers-color-scheme: dark`; every text/background pair the pages use meets WCAG AA
(4.5:1) in both themes, computed from the variables themselves."""

from __future__ import annotations

import re

import pytest

from app.lib.branding import DARK_SURFACE, LIGHT_BACKGROUND, Brand, contrast
from app.web.templating import STATIC_DIR

CSS = (STATIC_DIR / "app.css").read_text(encoding="utf-8")
# (text, background) as the rules use them.
PAIRS = [
    ("text", "bg"),
    ("text", "surface"),
    ("text", "input-bg"),
    ("text", "subtle"),
    ("text", "badge-bg"),
    ("text", "highlight"),
    ("text", "warning-bg"),
    ("text", "warning-panel"),
    ("text", "danger-bg"),
    ("text", "info-bg"),
    ("text", "success-bg"),
    ("text", "error-bg"),
    ("muted", "bg"),
    ("muted", "surface"),
    ("muted", "subtle"),
    ("link", "bg"),
    ("link", "surface"),
    ("link", "highlight"),
    ("primary-text", "primary"),
    ("primary-text", "primary-hover"),
    ("on-danger", "danger"),
    ("danger", "surface"),
    ("warning", "surface"),
    ("success", "surface"),
    ("error-text", "error-bg"),
    ("warning-text", "warning-bg"),
    ("info-text", "info-bg"),
    ("success", "success-bg"),
    ("warning", "warning-bg"),
    ("danger", "error-bg"),
]


def _variables(block: str) -> dict[str, str]:
    return dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{3,6})\b", block))


def themes() -> dict[str, dict[str, str]]:
    light_block = CSS[CSS.index(":root {") : CSS.index("}", CSS.index(":root {"))]
    dark_at = CSS.index("@media (prefers-color-scheme: dark)")
    dark_block = CSS[dark_at : CSS.index("}", dark_at)]
    light = _variables(light_block)
    return {"light": light, "dark": {**light, **_variables(dark_block)}}


def _hex6(color: str) -> str:
    return "#" + "".join(c * 2 for c in color[1:]) if len(color) == 4 else color


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_text_and_background_pairs_meet_aa(theme: str) -> None:
    colors = themes()[theme]
    failing = {
        f"{text} on {background}": round(
            contrast(_hex6(colors[text]), _hex6(colors[background])), 2
        )
        for text, background in PAIRS
        if contrast(_hex6(colors[text]), _hex6(colors[background])) < 4.5
    }
    assert failing == {}


def test_the_dark_theme_changes_the_surfaces_and_text() -> None:
    light, dark = themes()["light"], themes()["dark"]
    for name in ("bg", "surface", "text", "muted", "border", "link", "input-bg"):
        assert dark[name] != light[name], name
    assert "color-scheme: dark" in CSS


def test_colours_are_variables_outside_the_theme_blocks() -> None:
    """No rule sets a literal colour (the QR code keeps its white quiet zone on purpose)."""
    rules = re.sub(r":root \{.*?\n\}", "", CSS, count=1, flags=re.S)
    rules = re.sub(r"@media \(prefers-color-scheme: dark\) \{.*?\n\}", "", rules, flags=re.S)
    literals = [
        line.strip()
        for line in rules.splitlines()
        if re.search(r"#[0-9a-fA-F]{3,6}\b|rgba?\(", line) and ".qr-code" not in line
    ]
    assert literals == []


def test_the_brand_and_theme_defaults_agree() -> None:
    light, dark = themes()["light"], themes()["dark"]
    assert light["primary"] == light["link"] == Brand().color
    assert light["bg"] == LIGHT_BACKGROUND and dark["surface"] == DARK_SURFACE
    assert contrast(Brand().dark_link, dark["bg"]) >= 4.5
