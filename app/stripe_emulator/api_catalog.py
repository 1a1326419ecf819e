"""Customers, products and prices."""

from __future__ import annotations

from typing import Any

from app.stripe_emulator import objects, payments, subscriptions
from app.stripe_emulator.core import (
    Emulator,
    bool_param,
    int_param,
    metadata_update,
    paginate,
    render,
    require,
)
from app.stripe_emulator.errors import StripeError, invalid
from app.stripe_emulator.routing import ApiRequest, route

_CUSTOMER_FIELDS = ("email", "name", "description", "phone")
MAX_LOOKUP_KEYS = 10  # "You can specify up to 10 lookup_keys" (API reference, list prices)


def _str_or_none(value: Any) -> Any:
    return None if value == "" else value


@route("POST", "/v1/customers")
def create_customer(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    clock_id = p.get("test_clock") or None
    if clock_id:
        emu.load(clock_id, "test_helpers.test_clock", "test_clock")
    now = emu.now(clock_id)
    customer = objects.customer(
        now,
        test_clock=clock_id,
        metadata=metadata_update({}, p),
        **{name: _str_or_none(p.get(name)) for name in _CUSTOMER_FIELDS},
    )
    if isinstance(p.get("address"), dict):
        customer["address"] = {**objects._ADDRESS, **p["address"]}
    emu.save(customer)
    emu.emit("customer.created", customer)
    if p.get("payment_method"):
        pm = payments.resolve(emu, p["payment_method"], now)
        payments.attach(emu, pm, customer["id"])
    default_pm = (p.get("invoice_settings") or {}).get("default_payment_method")
    if default_pm:
        pm = payments.owned_by(
            emu, default_pm, customer["id"], now, "invoice_settings[default_payment_method]"
        )
        customer = emu.load(customer["id"], "customer")
        customer["invoice_settings"]["default_payment_method"] = pm["id"]
        emu.save(customer)
    return emu.load(customer["id"], "customer")


@route("GET", "/v1/customers/{id}")
def retrieve_customer(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    customer = emu.store.get(req["id"])
    if customer and customer.get("object") == "customer" and customer.get("deleted"):
        return {"id": customer["id"], "object": "customer", "deleted": True}
    return emu.load(req["id"], "customer")


@route("POST", "/v1/customers/{id}")
def update_customer(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    customer = emu.load(req["id"], "customer")
    p = req.params
    now = emu.now_for(customer)
    settings = p.get("invoice_settings")
    pm_id = None
    if isinstance(settings, dict) and "default_payment_method" in settings:
        pm_id = settings["default_payment_method"] or None
        if pm_id:
            pm_id = payments.owned_by(
                emu, pm_id, customer["id"], now, "invoice_settings[default_payment_method]"
            )["id"]
        customer = emu.load(req["id"], "customer")

    def change(c: dict[str, Any]) -> None:
        for name in _CUSTOMER_FIELDS:
            if name in p:
                c[name] = _str_or_none(p[name])
        if isinstance(p.get("address"), dict):
            given = {k: _str_or_none(v) for k, v in p["address"].items()}
            c["address"] = {**objects._ADDRESS, **(c.get("address") or {}), **given}
        elif p.get("address") == "":
            c["address"] = None
        c["metadata"] = metadata_update(c["metadata"], p)
        if isinstance(settings, dict) and "default_payment_method" in settings:
            c["invoice_settings"]["default_payment_method"] = pm_id

    return emu.update(customer, change, "customer.updated")


@route("DELETE", "/v1/customers/{id}")
def delete_customer(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    customer = emu.load(req["id"], "customer")
    # As Stripe: deleting a customer cancels its subscriptions at once.
    for sub in emu.store.all("subscription", customer["id"]):
        subscriptions.cancel(emu, sub, emu.now_for(sub))
    emu.emit("customer.deleted", customer)  # the customer as it was
    customer["deleted"] = True
    emu.save(customer)
    return {"id": customer["id"], "object": "customer", "deleted": True}


@route("GET", "/v1/customers")
def list_customers(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    items = [c for c in emu.store.all("customer") if not c.get("deleted")]
    if p.get("email"):
        items = [c for c in items if c.get("email") == p["email"]]
    if p.get("test_clock"):
        items = [c for c in items if c.get("test_clock") == p["test_clock"]]
    return paginate(items, p, "/v1/customers")


# Products


@route("POST", "/v1/products")
def create_product(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    name = require(p, "name")
    fields: dict[str, Any] = {"name": name, "metadata": metadata_update({}, p)}
    if p.get("id"):
        if emu.store.get(p["id"]):
            raise StripeError(
                400,
                f"Product already exists: {p['id']}",
                code="resource_already_exists",
                param="id",
            )
        fields["id"] = p["id"]
    for name_ in ("description", "unit_label", "statement_descriptor", "tax_code", "url"):
        if p.get(name_):
            fields[name_] = p[name_]
    fields["active"] = bool_param(p, "active", True)
    product = objects.product(emu.now(), **fields)
    emu.save(product)
    emu.emit("product.created", product)
    if isinstance(p.get("default_price_data"), dict):
        price = _new_price(emu, {**p["default_price_data"], "product": product["id"]})
        product["default_price"] = price["id"]
        emu.save(product)
    return product


@route("GET", "/v1/products/{id}")
def retrieve_product(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return emu.load(req["id"], "product")


@route("POST", "/v1/products/{id}")
def update_product(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    product = emu.load(req["id"], "product")
    p = req.params

    def change(o: dict[str, Any]) -> None:
        for name in ("name", "description", "unit_label", "statement_descriptor", "url"):
            if name in p:
                o[name] = _str_or_none(p[name])
        if "active" in p:
            o["active"] = bool_param(p, "active")
        if "default_price" in p:
            o["default_price"] = emu.load(p["default_price"], "price", "default_price")["id"]
        o["metadata"] = metadata_update(o["metadata"], p)
        o["updated"] = emu.now()

    return emu.update(product, change, "product.updated")


@route("GET", "/v1/products")
def list_products(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    items = emu.store.all("product")
    active = bool_param(p, "active")
    if active is not None:
        items = [o for o in items if o["active"] == active]
    if isinstance(p.get("ids"), list):
        items = [o for o in items if o["id"] in p["ids"]]
    return paginate(items, p, "/v1/products")


# Prices


def _new_price(emu: Emulator, p: dict[str, Any]) -> dict[str, Any]:
    currency = str(require(p, "currency")).lower()
    product_id = p.get("product")
    if not product_id and isinstance(p.get("product_data"), dict):
        data = p["product_data"]
        product = objects.product(
            emu.now(),
            name=require(data, "name"),
            metadata=metadata_update({}, data),
        )
        emu.save(product)
        emu.emit("product.created", product)
        product_id = product["id"]
    if not product_id:
        raise StripeError(
            400,
            "You must specify either `product` or `product_data` when creating a price.",
            code="parameter_missing",
            param="product",
        )
    emu.load(product_id, "product", "product")
    unit_amount = int_param(p, "unit_amount")
    if unit_amount is None and p.get("unit_amount_decimal"):
        unit_amount = int(float(p["unit_amount_decimal"]))
    if unit_amount is None:
        raise StripeError(
            400,
            "You must pass either `unit_amount` or `unit_amount_decimal`.",
            code="parameter_missing",
            param="unit_amount",
        )
    recurring = None
    if isinstance(p.get("recurring"), dict):
        r = p["recurring"]
        interval = require(r, "interval")
        if interval not in {"day", "week", "month", "year"}:
            raise invalid(
                "recurring[interval]",
                f"Invalid recurring[interval]: {interval}",
                "parameter_invalid",
            )
        usage_type = r.get("usage_type") or "licensed"
        meter_id = r.get("meter") or None
        if usage_type == "metered":
            # Since 2025-03-31.basil a metered price bills a billing meter's usage; the
            # legacy usage records are gone, so Stripe requires the meter.
            emu.load(meter_id, "billing.meter", "recurring[meter]")
        recurring = objects.recurring(
            interval, int(r.get("interval_count") or 1), usage_type, meter_id
        )
    lookup_key = p.get("lookup_key") or None
    if lookup_key:
        _claim_lookup_key(emu, lookup_key, bool(bool_param(p, "transfer_lookup_key", False)))
    price = objects.price(
        emu.now(),
        currency=currency,
        product=product_id,
        unit_amount=unit_amount,
        recurring=recurring,
        type="recurring" if recurring else "one_time",
        lookup_key=lookup_key,
        nickname=p.get("nickname") or None,
        metadata=metadata_update({}, p),
        active=bool_param(p, "active", True),
        tax_behavior=p.get("tax_behavior") or "unspecified",
    )
    emu.save(price)
    emu.emit("price.created", price)
    return price


def _claim_lookup_key(emu: Emulator, lookup_key: str, transfer: bool, keep: str = "") -> None:
    for other in emu.store.all("price"):
        if other.get("lookup_key") != lookup_key or other["id"] == keep:
            continue
        if not transfer:
            raise StripeError(
                400,
                f"A price (`{other['id']}`) already uses that lookup key.",
                param="lookup_key",
            )
        emu.update(other, lambda o: o.update(lookup_key=None), "price.updated")


@route("POST", "/v1/prices")
def create_price(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return _new_price(emu, req.params)


@route("GET", "/v1/prices/{id}")
def retrieve_price(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return emu.load(req["id"], "price")


@route("POST", "/v1/prices/{id}")
def update_price(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    price = emu.load(req["id"], "price")
    p = req.params
    if p.get("lookup_key"):
        _claim_lookup_key(
            emu, p["lookup_key"], bool(bool_param(p, "transfer_lookup_key", False)), price["id"]
        )
        price = emu.load(req["id"], "price")

    def change(o: dict[str, Any]) -> None:
        if "lookup_key" in p:
            o["lookup_key"] = p["lookup_key"] or None
        if "active" in p:
            o["active"] = bool_param(p, "active")
        if "nickname" in p:
            o["nickname"] = p["nickname"] or None
        o["metadata"] = metadata_update(o["metadata"], p)

    return emu.update(price, change, "price.updated")


@route("GET", "/v1/prices")
def list_prices(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    items = emu.store.all("price")
    active = bool_param(p, "active")
    if active is not None:
        items = [o for o in items if o["active"] == active]
    if p.get("product"):
        items = [o for o in items if o["product"] == p["product"]]
    if p.get("type"):
        items = [o for o in items if o["type"] == p["type"]]
    if p.get("currency"):
        items = [o for o in items if o["currency"] == p["currency"]]
    if "lookup_keys" in p:
        keys = p["lookup_keys"] if isinstance(p["lookup_keys"], list) else [p["lookup_keys"]]
        if len(keys) > MAX_LOOKUP_KEYS:
            raise StripeError(
                400,
                f"You can only pass up to {MAX_LOOKUP_KEYS} lookup_keys.",
                param="lookup_keys",
            )
        items = [o for o in items if o.get("lookup_key") in keys]
    return paginate([render(o) for o in items], p, "/v1/prices")
