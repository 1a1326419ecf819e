"""Small HTML helpers shared by the hosted pages (no template engine needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

ZERO_DECIMAL = {
    "bif",
    "clp",
    "djf",
    "gnf",
    "jpy",
    "kmf",
    "krw",
    "mga",
    "pyg",
    "rwf",
    "ugx",
    "vnd",
    "vuv",
    "xaf",
    "xof",
    "xpf",
}

# Served at STYLESHEET_PATH: the pages' Content-Security-Policy allows no inline style.
STYLESHEET_PATH = "/assets/emulator.css"
STYLESHEET = """
body{font-family:system-ui,sans-serif;background:#f6f9fc;color:#1a1f36;margin:0}
main{max-width:640px;margin:2rem auto;background:#fff;padding:2rem;border-radius:8px;
box-shadow:0 1px 4px rgba(0,0,0,.1)}
label{display:block;margin:.75rem 0 .25rem;font-weight:600}
input{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}
button{margin-top:1rem;padding:.6rem 1.2rem;font-size:1rem;background:#635bff;color:#fff;
border:0;border-radius:4px;cursor:pointer}
button.secondary{background:#e3e8ee;color:#1a1f36}
.error{color:#df1b41;background:#fff0f3;padding:.75rem;border-radius:4px}
.muted{color:#697386;font-size:.9rem}
table{width:100%;border-collapse:collapse}td,th{text-align:left;padding:.4rem;
border-bottom:1px solid #e3e8ee}
.badge{background:#e3e8ee;border-radius:4px;padding:0 .4rem;font-size:.85rem}
"""


def money(amount: int | None, currency: str | None) -> str:
    currency = (currency or "usd").lower()
    value = amount or 0
    if currency in ZERO_DECIMAL:
        return f"{value:,} {currency.upper()}"
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value) / 100:,.2f} {currency.upper()}"


def date(timestamp: int | None) -> str:
    if not timestamp:
        return "—"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{escape(title)}</title><link rel="stylesheet" href="{STYLESHEET_PATH}"></head>'
        f'<body><main>{body}<p class="muted">Stripe emulator · test mode</p></main>'
        "</body></html>"
    )


def card_fields() -> str:
    return (
        '<label for="card_number">Card number</label>'
        '<input id="card_number" name="card_number" data-testid="card-number" '
        'inputmode="numeric" autocomplete="cc-number" placeholder="4242 4242 4242 4242" required>'
        '<label for="exp_date">Expiry (MM / YY)</label>'
        '<input id="exp_date" name="exp_date" data-testid="card-expiry" autocomplete="cc-exp" '
        'placeholder="12 / 34" required>'
        '<label for="cvc">CVC</label>'
        '<input id="cvc" name="cvc" data-testid="card-cvc" inputmode="numeric" '
        'autocomplete="cc-csc" placeholder="123" required>'
    )


TEST_CARDS = (
    '<details class="muted"><summary>Test cards</summary><ul>'
    "<li>4242 4242 4242 4242 — succeeds</li>"
    "<li>4000 0000 0000 0002 — declined</li>"
    "<li>4000 0000 0000 9995 — insufficient funds</li>"
    "<li>4000 0000 0000 0341 — attaches, later charges fail</li>"
    "</ul>Any future expiry date and any 3-digit CVC.</details>"
)


def error_box(message: str | None) -> str:
    if not message:
        return ""
    return f'<p class="error" role="alert" data-testid="checkout-error">{escape(message)}</p>'
