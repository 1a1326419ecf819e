"""Payment methods other than cards: SEPA Direct Debit, US bank accounts (ACH) and Link.

One builder per type, shaped as the SDK's `PaymentMethod` (`sepa_debit`, `us_bank_account`,
`link` blocks), used by `POST /v1/payment_methods` (`from_params`) and by the hosted
Checkout page (`from_form`). Stripe's test numbers: the IBAN `DE89 3704 0044 0532 0130 00`
and the US account `000123456789` (routing `110000000`) succeed; `DE62 3704 0044 0532 0130 01`
and `000222222227` fail when a delayed Checkout payment settles (`async_checkout.settle`).
Attached, made the default and charged for a subscription they behave as a working card.
"""

from __future__ import annotations

import hashlib
from typing import Any

from app.stripe_emulator.errors import StripeError, missing
from app.stripe_emulator.store import new_id

# What `POST /v1/payment_methods` and Checkout's `allowed_payment_method_types` take.
SUPPORTED_TYPES = ("card", "link", "sepa_debit", "us_bank_account")
# A delayed-notification method's currency (Checkout refuses the type in another currency).
CURRENCY = {"sepa_debit": "eur", "us_bank_account": "usd"}
# Payment mode: the payment is `processing` until settled (the other types pay at once).
DELAYED = ("sepa_debit", "us_bank_account")
FAILING_IBANS = {"DE62370400440532013001"}
FAILING_US_ACCOUNTS = {"000222222227"}
TEST_BANKS = {"110000000": "STRIPE TEST BANK"}
NAMES = {
    "card": "card",
    "link": "Link",
    "sepa_debit": "SEPA Direct Debit",
    "us_bank_account": "US bank account",
}


def normalize_iban(text: str, param: str = "iban") -> str:
    """The IBAN without spaces, upper case; Stripe's error when its check digits are wrong."""
    iban = "".join(text.split()).upper()
    digits = "".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4]) if iban.isalnum() else ""
    if len(iban) < 15 or not iban[:2].isalpha() or not digits or int(digits) % 97 != 1:
        raise StripeError(
            400,
            "The IBAN you entered is invalid.",
            code="invalid_bank_account_iban",
            param=param,
        )
    return iban


def _routing_number(text: str, param: str) -> str:
    """A US ABA routing number: nine digits and its checksum."""
    routing = "".join(text.split())
    weights = (3, 7, 1) * 3
    if (
        len(routing) != 9
        or not routing.isdigit()
        or sum(int(d) * w for d, w in zip(routing, weights, strict=True)) % 10
    ):
        raise StripeError(
            400,
            "Routing number must have 9 digits and be valid.",
            code="routing_number_invalid",
            param=param,
        )
    return routing


def _account_number(text: str, param: str) -> str:
    account = "".join(text.split())
    if not account.isdigit() or not 4 <= len(account) <= 17:
        raise StripeError(
            400,
            "The account number you entered is invalid.",
            code="account_number_invalid",
            param=param,
        )
    return account


def _choice(value: Any, allowed: tuple[str, ...], default: str, param: str) -> str:
    chosen = str(value or default)
    if chosen not in allowed:
        raise StripeError(
            400,
            f"Invalid {param.rsplit('[', 1)[-1].rstrip(']')}: must be one of "
            + " or ".join(allowed),
            param=param,
        )
    return chosen


def _fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def billing_details(raw: Any = None, **given: str | None) -> dict[str, Any]:
    """`billing_details` from a request's hash (or the page's fields), Stripe's full shape."""
    raw = raw if isinstance(raw, dict) else {}
    address = raw.get("address") if isinstance(raw.get("address"), dict) else {}
    keys = ("city", "country", "line1", "line2", "postal_code", "state")
    details = {
        "address": {key: address.get(key) or None for key in keys},
        "email": raw.get("email") or None,
        "name": raw.get("name") or None,
        "phone": raw.get("phone") or None,
        "tax_id": raw.get("tax_id") or None,
    }
    details.update({key: value for key, value in given.items() if value})
    return details


def _payment_method(
    now: int, kind: str, block: dict[str, Any], details: dict[str, Any], **private: Any
) -> dict[str, Any]:
    return {
        "id": new_id("pm"),
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": details,
        "created": now,
        "customer": None,
        "livemode": False,
        "metadata": {},
        kind: block,
        "type": kind,
        **private,
    }


def sepa_debit(now: int, iban: str, details: dict[str, Any]) -> dict[str, Any]:
    """A SEPA Direct Debit payment method for a checked IBAN (`normalize_iban`)."""
    block = {
        "bank_code": iban[4:12],
        "branch_code": "",
        "country": iban[:2],
        "fingerprint": _fingerprint(iban),
        "generated_from": {"charge": None, "setup_attempt": None},
        "last4": iban[-4:],
    }
    return _payment_method(now, "sepa_debit", block, details, _fails=iban in FAILING_IBANS)


def us_bank_account(
    now: int,
    routing: str,
    account: str,
    details: dict[str, Any],
    holder_type: str = "individual",
    account_type: str = "checking",
) -> dict[str, Any]:
    block = {
        "account_holder_type": holder_type,
        "account_type": account_type,
        "bank_name": TEST_BANKS.get(routing),
        "financial_connections_account": None,
        "fingerprint": _fingerprint(routing + account),
        "last4": account[-4:],
        "networks": {"preferred": "ach", "supported": ["ach"]},
        "routing_number": routing,
        "status_details": {},
    }
    return _payment_method(
        now, "us_bank_account", block, details, _fails=account in FAILING_US_ACCOUNTS
    )


def link(now: int, email: str, details: dict[str, Any]) -> dict[str, Any]:
    details = {**details, "email": details.get("email") or email}
    return _payment_method(now, "link", {"email": email, "persistent_token": None}, details)


def fails_later(pm: dict[str, Any]) -> bool:
    """Stripe's failing test account: a delayed payment from it fails when it settles."""
    return bool(pm.get("_fails"))


def from_params(p: dict[str, Any], now: int) -> dict[str, Any]:
    """`POST /v1/payment_methods` for `type` sepa_debit, us_bank_account or link."""
    kind = p["type"]
    details = billing_details(p.get("billing_details"))
    if kind == "sepa_debit":
        raw = _hash(p, "sepa_debit")
        return sepa_debit(now, normalize_iban(_field(raw, "iban", kind), f"{kind}[iban]"), details)
    if kind == "us_bank_account":
        raw = _hash(p, "us_bank_account")
        if not details["name"]:
            raise missing("billing_details[name]")
        return us_bank_account(
            now,
            _routing_number(_field(raw, "routing_number", kind), f"{kind}[routing_number]"),
            _account_number(_field(raw, "account_number", kind), f"{kind}[account_number]"),
            details,
            _choice(
                raw.get("account_holder_type"),
                ("company", "individual"),
                "individual",
                "us_bank_account[account_holder_type]",
            ),
            _choice(
                raw.get("account_type"),
                ("checking", "savings"),
                "checking",
                "us_bank_account[account_type]",
            ),
        )
    if kind == "link":
        if not details["email"]:
            raise missing("billing_details[email]")
        return link(now, details["email"], details)
    raise StripeError(
        400,
        f"The emulator creates {', '.join(SUPPORTED_TYPES)} payment methods, not {kind}.",
        param="type",
    )


def _field(raw: dict[str, Any], name: str, kind: str) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not value:
        raise missing(f"{kind}[{name}]")
    return value


def _hash(p: dict[str, Any], name: str) -> dict[str, Any]:
    raw = p.get(name)
    if not isinstance(raw, dict) or not raw:
        raise missing(name)
    return raw


def from_form(kind: str, form: dict[str, str], email: str | None, now: int) -> dict[str, Any]:
    """The hosted Checkout page's fields for `kind` (not card) as a payment method."""
    name = (form.get("name") or "").strip()
    if kind == "link":
        link_email = (form.get("link_email") or email or "").strip()
        if "@" not in link_email:
            raise StripeError(
                400, "Enter the email address of your Link account.", param="link_email"
            )
        return link(now, link_email, billing_details(email=link_email, name=name or None))
    if not name:
        raise StripeError(400, "Enter the account holder's name.", param="name")
    details = billing_details(email=email, name=name)
    if kind == "sepa_debit":
        return sepa_debit(now, normalize_iban(form.get("iban", "")), details)
    if kind == "us_bank_account":
        return us_bank_account(
            now,
            _routing_number(form.get("routing_number", ""), "routing_number"),
            _account_number(form.get("account_number", ""), "account_number"),
            details,
            _choice(
                form.get("account_holder_type"),
                ("company", "individual"),
                "individual",
                "account_holder_type",
            ),
            _choice(form.get("account_type"), ("checking", "savings"), "checking", "account_type"),
        )
    raise StripeError(400, f"This Checkout Session does not take {kind}.")


def label(pm: dict[str, Any]) -> str:
    """How the emulator's portal lists a saved payment method."""
    kind = pm["type"]
    block = pm.get(kind) or {}
    if kind == "card":
        return (
            f"{block['brand'].title()} •••• {block['last4']} (exp {block['exp_month']:02d}/"
            f"{block['exp_year']})"
        )
    if kind == "link":
        return f"Link ({block.get('email')})"
    bank = block.get("bank_name")
    return f"{NAMES.get(kind, kind)} •••• {block.get('last4')}" + (f" ({bank})" if bank else "")
