"""Money is integer minor units with a currency; formatting is for display only."""

from __future__ import annotations

_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}
# Stripe's zero-decimal currencies: amounts are whole units, not hundredths
# (https://docs.stripe.com/currencies#zero-decimal).
ZERO_DECIMAL_CURRENCIES = frozenset(
    {
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
)


def per_month(yearly_minor: int) -> int:
    """A yearly amount as its monthly equivalent, rounded half up to the minor unit:
    29000 → 2417 ($290 a year is $24.17 a month, not the truncated $24.16)."""
    return (yearly_minor + 6) // 12


def format_money(amount_minor: int, currency: str, *, cents: bool = False) -> str:
    """ "$29", "$24.17", "¥500", "12 CHF"; with `cents` always the minor digits ("$29.00"),
    as invoices show amounts (a zero-decimal currency has none)."""
    currency = currency.lower()
    sign = "-" if amount_minor < 0 else ""
    amount_minor = abs(amount_minor)
    symbol = _SYMBOLS.get(currency)
    if currency in ZERO_DECIMAL_CURRENCIES:
        number = f"{amount_minor:,}"
    else:
        major, minor = divmod(amount_minor, 100)
        number = f"{major:,}" if minor == 0 and not cents else f"{major:,}.{minor:02d}"
    if symbol:
        return f"{sign}{symbol}{number}"
    return f"{sign}{number} {currency.upper()}"


def parse_money(text: str, currency: str) -> int:
    """An amount typed in major units ("12.50", "1,000", "12") as minor units (1250): at most
    the currency's decimals (none for a zero-decimal one). ValueError when it is not one."""
    value = (text or "").strip().replace(",", "")
    for symbol in _SYMBOLS.values():
        value = value.removeprefix(symbol)
    decimals = 0 if currency.lower() in ZERO_DECIMAL_CURRENCIES else 2
    major, dot, minor = value.partition(".")
    if not major.isdigit() and not (dot and major == "" and minor):
        raise ValueError(f"{text!r} is not an amount")
    if dot and (not minor.isdigit() or len(minor) > decimals):
        raise ValueError(f"{text!r} has more than {decimals} decimals")
    scale = 100 if decimals else 1
    return int(major or "0") * scale + int(minor.ljust(decimals, "0") or "0")
