"""Stripe's test card numbers and what each one does."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.stripe_emulator.errors import StripeError


@dataclass(frozen=True)
class Decline:
    code: str
    decline_code: str | None
    message: str

    def error(self, param: str | None = None, extra: dict[str, Any] | None = None) -> StripeError:
        return StripeError(
            402,
            self.message,
            type="card_error",
            code=self.code,
            decline_code=self.decline_code,
            param=param,
            extra=extra,
        )


GENERIC = Decline("card_declined", "generic_decline", "Your card was declined.")
INSUFFICIENT = Decline("card_declined", "insufficient_funds", "Your card has insufficient funds.")
EXPIRED = Decline("expired_card", None, "Your card has expired.")
INCORRECT_CVC = Decline("incorrect_cvc", None, "Your card's security code is incorrect.")

# number -> (decline when attached/confirmed, decline when charged later)
_BEHAVIOUR: dict[str, tuple[Decline | None, Decline | None]] = {
    "4000000000000002": (GENERIC, GENERIC),
    "4000000000009995": (INSUFFICIENT, INSUFFICIENT),
    "4000000000000069": (EXPIRED, EXPIRED),
    "4000000000000127": (INCORRECT_CVC, INCORRECT_CVC),
    "4000000000000341": (None, GENERIC),
}

# Stripe's test PaymentMethod tokens, usable wherever a pm_ id is accepted.
MAGIC_PAYMENT_METHODS = {
    "pm_card_visa": "4242424242424242",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_amex": "378282246310005",
    "pm_card_chargeCustomerFail": "4000000000000341",
    "pm_card_createDispute": "4000000000000259",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "tok_visa": "4242424242424242",
    "tok_chargeCustomerFail": "4000000000000341",
    # 3-D Secure (authentication.py): every payment / on-session until set up.
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_authenticationRequiredOnSetup": "4000002500003155",
    "tok_authenticationRequired": "4000002760003184",
    "tok_authenticationRequiredOnSetup": "4000002500003155",
}


def normalize(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit())


def luhn_ok(number: str) -> bool:
    digits = [int(ch) for ch in number]
    if len(digits) < 12:
        return False
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def brand(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"51", "52", "53", "54", "55"} or number[:2] == "22":
        return "mastercard"
    if number[:2] in {"34", "37"}:
        return "amex"
    if number.startswith("6011") or number.startswith("65"):
        return "discover"
    return "unknown"


def attach_decline(number: str) -> Decline | None:
    return _BEHAVIOUR.get(number, (None, None))[0]


def charge_decline(number: str) -> Decline | None:
    return _BEHAVIOUR.get(number, (None, None))[1]


def fingerprint(number: str) -> str:
    return hashlib.sha256(number.encode()).hexdigest()[:16]


def parse_expiry(text: str, now: int) -> tuple[int, int]:
    """Accept "MM / YY", "MM/YY", "MM/YYYY"; raise a card error when invalid or past."""
    cleaned = text.replace(" ", "")
    parts = cleaned.split("/") if "/" in cleaned else [cleaned[:2], cleaned[2:]]
    if len(parts) != 2 or not parts[0].isdigit() or not parts[1].isdigit():
        raise StripeError(
            402,
            "Your card's expiration date is incomplete.",
            type="card_error",
            code="incomplete_expiry",
            param="exp_date",
        )
    month, year = int(parts[0]), int(parts[1])
    if year < 100:
        year += 2000
    if not 1 <= month <= 12:
        raise StripeError(
            402,
            "Your card's expiration month is invalid.",
            type="card_error",
            code="invalid_expiry_month",
            param="exp_month",
        )
    today = datetime.fromtimestamp(now, UTC)
    if (year, month) < (today.year, today.month):
        raise StripeError(
            402,
            "Your card's expiration year is in the past.",
            type="card_error",
            code="invalid_expiry_year",
            param="exp_year",
        )
    return month, year


def validate(number: str, cvc: str) -> None:
    if not luhn_ok(number):
        raise StripeError(
            402,
            "Your card number is incorrect.",
            type="card_error",
            code="incorrect_number",
            param="number",
        )
    if cvc and (not cvc.isdigit() or len(cvc) not in (3, 4)):
        raise StripeError(
            402,
            "Your card's security code is invalid.",
            type="card_error",
            code="invalid_cvc",
            param="cvc",
        )
