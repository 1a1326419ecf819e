"""The SaaS's own name, logo, accent colour and support address on pages and in emails
(issue 21, item 13): `BRAND_NAME`, `BRAND_LOGO_URL`, `BRAND_COLOR`, `BRAND_SUPPORT_EMAIL`.

The accent is the primary button's background under white text, and the link colour: a
colour under WCAG AA's 4.5:1 against white (on the page background) is darkened until it
passes, and the log says which colour is used instead. Hover and dark-theme shades are
derived from it (`/brand.css`, app/web/site_files.py)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache

import structlog

DEFAULT_NAME = "Billing Portal"
DEFAULT_COLOR = "#3547d8"
AA = 4.5
# The light theme's page background and the dark theme's surface (static/app.css).
LIGHT_BACKGROUND = "#f6f7f9"
DARK_SURFACE = "#1c2128"

log = structlog.get_logger()

_HEX = re.compile(r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


def parse_hex(value: str, setting: str = "BRAND_COLOR") -> str:
    """'#abc', 'aabbcc' or '#AABBCC' as '#aabbcc'; anything else names the setting."""
    found = _HEX.fullmatch(value.strip())
    if not found:
        raise ValueError(f"{setting} must be a hex colour such as #3547d8, not {value!r}")
    digits = found.group(1).lower()
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return f"#{digits}"


def _channels(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def luminance(color: str) -> float:
    """WCAG 2 relative luminance of '#rrggbb'."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in _channels(color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(first: str, second: str) -> float:
    """WCAG 2 contrast ratio, 1 to 21."""
    a, b = sorted((luminance(first), luminance(second)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def mix(color: str, other: str, amount: float) -> str:
    """`amount` (0..1) of the way from `color` to `other`."""
    pairs = zip(_channels(color), _channels(other), strict=True)
    return "#" + "".join(f"{round(a + (b - a) * amount):02x}" for a, b in pairs)


def shade_for(color: str, background: str, toward: str, minimum: float = AA) -> str:
    """`color` moved toward `toward` (black or white) in small steps until it reaches
    `minimum` contrast with `background` (itself when it already does)."""
    step = 0.0
    candidate = color
    while contrast(candidate, background) < minimum and step < 1:
        step = min(1.0, step + 0.02)
        candidate = mix(color, toward, step)
    return candidate


@dataclass(frozen=True)
class Brand:
    name: str = DEFAULT_NAME
    logo_url: str | None = None
    color: str = DEFAULT_COLOR  # after any adjustment
    support_email: str | None = None
    # Set when BRAND_COLOR failed AA and was darkened: what was asked for.
    requested_color: str | None = field(default=None, compare=False)

    @classmethod
    def build(
        cls,
        name: str | None = None,
        logo_url: str | None = None,
        color: str | None = None,
        support_email: str | None = None,
    ) -> Brand:
        asked = parse_hex(color) if color else DEFAULT_COLOR
        # White text on the accent (buttons) and the accent as text on the light page.
        used = shade_for(shade_for(asked, "#ffffff", "#000000"), LIGHT_BACKGROUND, "#000000")
        if used != asked:
            log.warning(
                "BRAND_COLOR adjusted for contrast",
                requested=asked,
                contrast_with_white=round(contrast(asked, "#ffffff"), 2),
                used=used,
                used_contrast=round(contrast(used, "#ffffff"), 2),
            )
        if logo_url and not logo_url.startswith(("/", "https://")):
            raise ValueError(
                "BRAND_LOGO_URL must be a path on the portal (/static/...) or https://"
            )
        if support_email and "@" not in support_email:
            raise ValueError(f"BRAND_SUPPORT_EMAIL must be an email address, not {support_email!r}")
        return cls(
            name=name or DEFAULT_NAME,
            logo_url=logo_url or None,
            color=used,
            support_email=support_email or None,
            requested_color=asked if used != asked else None,
        )

    @classmethod
    def from_env(cls) -> Brand:
        """The BRAND_* settings (built once per distinct value: a colour adjusted for
        contrast is logged once, not at every email)."""

        def env(name: str) -> str | None:
            return (os.environ.get(name) or "").strip() or None

        return _built(
            env("BRAND_NAME"), env("BRAND_LOGO_URL"), env("BRAND_COLOR"), env("BRAND_SUPPORT_EMAIL")
        )

    @property
    def is_default_color(self) -> bool:
        return self.color == DEFAULT_COLOR

    @property
    def hover(self) -> str:
        return mix(self.color, "#000000", 0.15)

    @property
    def dark_link(self) -> str:
        """The accent as text on the dark theme's surfaces."""
        return shade_for(self.color, DARK_SURFACE, "#ffffff")

    @property
    def logo_origin(self) -> str | None:
        """An https logo's origin, for the pages' img-src (a path on the portal needs none)."""
        if not self.logo_url or not self.logo_url.startswith("https://"):
            return None
        return "https://" + self.logo_url.removeprefix("https://").split("/", 1)[0]

    def stylesheet(self) -> str:
        """`/brand.css`: the accent's custom properties over static/app.css's defaults."""
        return (
            f":root {{ --primary: {self.color}; --primary-hover: {self.hover}; "
            f"--link: {self.color}; }}\n"
            "@media (prefers-color-scheme: dark) {\n"
            f"  :root {{ --link: {self.dark_link}; }}\n"
            "}\n"
        )


@lru_cache(maxsize=8)
def _built(
    name: str | None, logo_url: str | None, color: str | None, support_email: str | None
) -> Brand:
    return Brand.build(name, logo_url, color, support_email)
