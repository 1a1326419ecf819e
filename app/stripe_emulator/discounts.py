"""Coupons, promotion codes and the discounts they make, with Stripe's shapes.

At start the emulator has one test promotion code, `TEST20` (coupon `test20`: 20 % off,
`forever`), so a Checkout with `allow_promotion_codes` can be tried at once; more can be made
through `POST /v1/coupons` and `POST /v1/promotion_codes`. A code redeemed on a Checkout
Session becomes a `discount` on the subscription it starts (every invoice of it is discounted)
or on the one-off invoice of a payment.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from app.stripe_emulator.core import (
    Emulator,
    bool_param,
    int_param,
    list_of,
    metadata_update,
    paginate,
    require,
)
from app.stripe_emulator.errors import StripeError
from app.stripe_emulator.routing import ApiRequest, route
from app.stripe_emulator.store import new_id

TEST_CODE = "TEST20"
TEST_COUPON = "test20"
TEST_PERCENT_OFF = 20


def coupon(now: int, coupon_id: str | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "id": coupon_id
        or "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(8)),
        "object": "coupon",
        "amount_off": None,
        "applies_to": None,
        "created": now,
        "currency": None,
        "duration": "once",
        "duration_in_months": None,
        "livemode": False,
        "max_redemptions": None,
        "metadata": {},
        "name": None,
        "percent_off": None,
        "redeem_by": None,
        "times_redeemed": 0,
        "valid": True,
        **fields,
    }


def promotion_code(now: int, coupon_id: str, code: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": new_id("promo"),
        "object": "promotion_code",
        "active": True,
        "code": code,
        "created": now,
        "customer": None,
        "expires_at": None,
        "livemode": False,
        "max_redemptions": None,
        "metadata": {},
        "promotion": {"type": "coupon", "coupon": coupon_id},
        "restrictions": {
            "first_time_transaction": False,
            "minimum_amount": None,
            "minimum_amount_currency": None,
        },
        "times_redeemed": 0,
        **fields,
    }


def seed(emu: Emulator) -> None:
    """The test promotion code, made once per emulator database."""
    if emu.store.get(TEST_COUPON) is not None:
        return
    now = emu.now()
    with emu.store.transaction():
        emu.save(
            coupon(
                now,
                TEST_COUPON,
                name="Test: 20 % off",
                percent_off=float(TEST_PERCENT_OFF),
                duration="forever",
            )
        )
        emu.save(promotion_code(now, TEST_COUPON, TEST_CODE))


def find_code(emu: Emulator, code: str) -> dict[str, Any] | None:
    """An active promotion code by its customer-facing code (case-insensitive, as Stripe's
    Checkout takes it)."""
    wanted = code.strip().upper()
    for promo in emu.store.all("promotion_code"):
        if promo["code"].upper() == wanted and promo["active"]:
            return promo
    return None


def redeemable(emu: Emulator, code: str, param: str = "promotion_code") -> dict[str, Any]:
    """The active promotion code `code` names, with its valid coupon; Checkout's message when
    there is none."""
    promo = find_code(emu, code) if code.strip() else None
    coupon_obj = emu.store.get(promo["promotion"]["coupon"]) if promo else None
    if promo is None or coupon_obj is None or not coupon_obj.get("valid"):
        raise StripeError(400, "This code is invalid.", code="promotion_code_invalid", param=param)
    return promo


def new_discount(
    emu: Emulator,
    promo: dict[str, Any],
    *,
    customer: str | None,
    now: int,
    subscription: str | None = None,
    checkout_session: str | None = None,
) -> dict[str, Any]:
    """A discount made by redeeming `promo`; the coupon's percentage rides along privately
    (`_percent_off`, `_amount_off`), so invoices can be built from it alone."""
    coupon_obj = emu.load(promo["promotion"]["coupon"], "coupon")
    for obj in (coupon_obj, promo):
        obj["times_redeemed"] += 1
        emu.save(obj)
    return {
        "id": new_id("di"),
        "object": "discount",
        "checkout_session": checkout_session,
        "customer": customer,
        "end": None,
        "invoice": None,
        "invoice_item": None,
        "promotion_code": promo["id"],
        "source": {"type": "coupon", "coupon": coupon_obj["id"]},
        "start": now,
        "subscription": subscription,
        "subscription_item": None,
        "_percent_off": coupon_obj.get("percent_off"),
        "_amount_off": coupon_obj.get("amount_off"),
        "_duration": coupon_obj.get("duration"),
    }


def amount_of(discount: dict[str, Any], amount: int) -> int:
    """What `discount` takes off a line of `amount` (nothing off a credit line)."""
    if amount <= 0:
        return 0
    if discount.get("_percent_off"):
        return round(amount * float(discount["_percent_off"]) / 100)
    return min(amount, int(discount.get("_amount_off") or 0))


# API


@route("POST", "/v1/coupons")
def create_coupon(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    percent = p.get("percent_off")
    amount = int_param(p, "amount_off")
    if percent in (None, "") and amount is None:
        raise StripeError(
            400, "Must provide either `percent_off` or `amount_off`.", code="parameter_missing"
        )
    if p.get("id") and emu.store.get(p["id"]):
        raise StripeError(400, "Coupon already exists.", code="resource_already_exists", param="id")
    obj = coupon(
        emu.now(),
        p.get("id") or None,
        name=p.get("name") or None,
        percent_off=float(percent) if percent not in (None, "") else None,
        amount_off=amount,
        currency=p.get("currency") or None,
        duration=p.get("duration") or "once",
        metadata=metadata_update({}, p),
    )
    if obj["percent_off"] is not None and not 0 < obj["percent_off"] <= 100:
        raise StripeError(
            400, "Invalid percent_off: must be between 0 and 100", param="percent_off"
        )
    if amount is not None and not obj["currency"]:
        raise StripeError(400, "You must pass currency when passing amount_off", param="currency")
    emu.save(obj)
    emu.emit("coupon.created", obj)
    return obj


@route("GET", "/v1/coupons/{id}")
def retrieve_coupon(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return emu.load(req["id"], "coupon")


@route("GET", "/v1/coupons")
def list_coupons(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return list_of(emu, "coupon", req.params, "/v1/coupons")


@route("POST", "/v1/promotion_codes")
def create_promotion_code(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    promotion = require(p, "promotion")
    if not isinstance(promotion, dict):
        raise StripeError(400, "Invalid hash", param="promotion")
    coupon_obj = emu.load(require(promotion, "coupon"), "coupon", "promotion[coupon]")
    code = str(p.get("code") or "").strip() or secrets.token_hex(4).upper()
    if find_code(emu, code) is not None:
        raise StripeError(
            400,
            "An active promotion code with `code` already exists.",
            code="resource_already_exists",
            param="code",
        )
    obj = promotion_code(
        emu.now(),
        coupon_obj["id"],
        code,
        active=bool_param(p, "active", True),
        metadata=metadata_update({}, p),
    )
    emu.save(obj)
    emu.emit("promotion_code.created", obj)
    return obj


@route("GET", "/v1/promotion_codes/{id}")
def retrieve_promotion_code(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return emu.load(req["id"], "promotion_code")


@route("GET", "/v1/promotion_codes")
def list_promotion_codes(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    items = emu.store.all("promotion_code")
    if p.get("code"):
        items = [i for i in items if i["code"] == p["code"]]
    if p.get("coupon"):
        items = [i for i in items if i["promotion"]["coupon"] == p["coupon"]]
    active = bool_param(p, "active")
    if active is not None:
        items = [i for i in items if i["active"] == active]
    return paginate(items, p, "/v1/promotion_codes")
