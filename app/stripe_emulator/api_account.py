"""The account behind the key and its payment method configurations.

`GET /v1/account` answers the emulator's one account (made on first use): an activated test
account (`charges_enabled`, `details_submitted`) named "Emulator test business". Its public
details are Dashboard settings with no API for one's own account, so the helper
`POST /_emulator/account` stands in for the Dashboard (`business_name`, `support_email`,
`charges_enabled`, `details_submitted`).

`GET /v1/payment_method_configurations` (and `/{id}`) answers the account's default
configuration, the one Checkout uses when a session names none: cards on, as the emulator's
Checkout takes only cards; Link, SEPA Direct Debit and US bank accounts listed, off.
"""

from __future__ import annotations

from typing import Any

from app.stripe_emulator.core import Emulator, bool_param, paginate
from app.stripe_emulator.errors import no_such
from app.stripe_emulator.routing import ApiRequest, helper, route
from app.stripe_emulator.store import new_id

BUSINESS_NAME = "Emulator test business"
# The types the default payment method configuration lists, and whether each is on.
PAYMENT_METHOD_TYPES = {"card": True, "link": False, "sepa_debit": False, "us_bank_account": False}


def account(emu: Emulator) -> dict[str, Any]:
    """The emulator's account, made the first time it is asked for."""
    found = emu.store.all("account")
    if found:
        return found[0]
    now = emu.global_now()
    created = {
        "id": new_id("acct", 16),
        "object": "account",
        "business_profile": {
            "mcc": None,
            "name": BUSINESS_NAME,
            "product_description": None,
            "support_address": None,
            "support_email": "support@example.com",
            "support_phone": None,
            "support_url": None,
            "url": None,
        },
        "business_type": "company",
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": True,
        "country": "US",
        "created": now,
        "default_currency": "usd",
        "details_submitted": True,
        "email": None,
        "external_accounts": {
            "object": "list",
            "data": [],
            "has_more": False,
            "url": "/v1/accounts/external_accounts",
        },
        "metadata": {},
        "payouts_enabled": True,
        "requirements": {
            "current_deadline": None,
            "currently_due": [],
            "disabled_reason": None,
            "errors": [],
            "eventually_due": [],
            "past_due": [],
            "pending_verification": [],
        },
        "settings": {
            "branding": {
                "icon": None,
                "logo": None,
                "primary_color": None,
                "secondary_color": None,
            },
            "card_payments": {
                "decline_on": {"avs_failure": False, "cvc_failure": False},
                "statement_descriptor_prefix": None,
            },
            "dashboard": {"display_name": BUSINESS_NAME, "timezone": "Etc/UTC"},
            "payments": {
                "statement_descriptor": "EMULATOR TEST",
                "statement_descriptor_kana": None,
                "statement_descriptor_kanji": None,
            },
        },
        "tos_acceptance": {"date": now},
        "type": "standard",
    }
    emu.save(created)
    return created


@route("GET", "/v1/account")
def retrieve_account(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return account(emu)


@helper("POST", "/_emulator/account")
def change_account(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    """The Dashboard's account settings: public business name and support email, and
    whether the account is activated (charges enabled, details submitted)."""
    found = account(emu)
    p = req.params
    if "business_name" in p:
        name = p["business_name"] or None
        found["business_profile"]["name"] = name
        found["settings"]["dashboard"]["display_name"] = name
    if "support_email" in p:
        found["business_profile"]["support_email"] = p["support_email"] or None
    for flag in ("charges_enabled", "details_submitted"):
        value = bool_param(p, flag)
        if value is not None:
            found[flag] = value
    return emu.save(found)


# Payment method configurations


def _preference(on: bool) -> dict[str, Any]:
    value = "on" if on else "off"
    return {
        "available": on,
        "display_preference": {"overridable": None, "preference": value, "value": value},
    }


def default_payment_method_configuration(emu: Emulator) -> dict[str, Any]:
    found = emu.store.all("payment_method_configuration")
    if found:
        return found[0]
    created: dict[str, Any] = {
        "id": new_id("pmc"),
        "object": "payment_method_configuration",
        "active": True,
        "application": None,
        "created": emu.global_now(),
        "is_default": True,
        "livemode": False,
        "name": "Default",
        "parent": None,
        **{kind: _preference(on) for kind, on in PAYMENT_METHOD_TYPES.items()},
    }
    emu.save(created)
    return created


@route("GET", "/v1/payment_method_configurations")
def list_payment_method_configurations(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    items = [default_payment_method_configuration(emu)]
    active = bool_param(req.params, "active")
    if active is not None:
        items = [item for item in items if item["active"] == active]
    return paginate(items, req.params, "/v1/payment_method_configurations")


@route("GET", "/v1/payment_method_configurations/{id}")
def retrieve_payment_method_configuration(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    found = default_payment_method_configuration(emu)
    if req["id"] != found["id"]:
        raise no_such("payment_method_configuration", req["id"])
    return found
