"""Issue 21, item 11: quiet (secondary) buttons look like buttons in both themes: an outline of
3:1 against every surface they sit on (WCAG 1.4.11, non-text contrast), a hover fill and a
pressed state; the focus ring stays the global one."""

from __future__ import annotations

import re

import pytest

from app.lib.branding import contrast
from tests.unit.test_theme_contrast import CSS, _hex6, themes

SURFACES = ("bg", "surface", "subtle", "warning-panel", "danger-bg", "info-bg")


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_outline_of_a_secondary_button_stands_out(theme: str) -> None:
    colors = themes()[theme]
    border = _hex6(colors["control-border"])
    weak = {
        surface: round(contrast(border, _hex6(colors[surface])), 2)
        for surface in SURFACES
        if contrast(border, _hex6(colors[surface])) < 3
    }
    assert weak == {}


def test_quiet_buttons_have_an_outline_hover_and_pressed_state() -> None:
    secondary = ".button:where(:not(.button-primary, .button-danger"
    outline = re.search(re.escape(secondary) + r"\)\) \{([^}]*)\}", CSS)
    assert outline and "var(--control-border)" in outline.group(1)
    hover = re.search(re.escape(secondary) + r"[^{]*\)\):hover \{([^}]*)\}", CSS)
    assert hover and "background: var(--subtle)" in hover.group(1)
    assert re.search(re.escape(secondary) + r"[^{]*\)\):active \{", CSS)
    quiet = re.search(r"\n\.button-quiet \{([^}]*)\}", CSS)
    assert quiet and "transparent" not in quiet.group(1).split("background:", 1)[0]
    assert "border-color: transparent" not in quiet.group(1)
    assert ":focus-visible { outline: 3px solid var(--focus)" in CSS
