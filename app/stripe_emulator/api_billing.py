"""Subscriptions, subscription items, invoices, payment methods and intents."""

from __future__ import annotations

from typing import Any, cast

from app.stripe_emulator import (
    automatic_tax,
    card_updates,
    cards,
    invoices,
    pausing,
    payment_actions,
    payment_method_types,
    payments,
    previews,
    subscriptions,
)
from app.stripe_emulator.core import Emulator, bool_param, int_param, paginate, render, require
from app.stripe_emulator.errors import StripeError, no_such
from app.stripe_emulator.routing import ApiRequest, route
from app.stripe_emulator.subscriptions import ItemSpec


@route("POST", "/v1/subscriptions")
def create_subscription(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    customer = payments.require_customer(emu, require(p, "customer"))
    raw_items = require(p, "items")
    if not isinstance(raw_items, list):
        raise StripeError(400, "Invalid array", param="items")
    now = emu.now_for(customer)
    specs = []
    for index, raw in enumerate(raw_items):
        price = subscriptions.recurring_price(
            emu, require(raw, "price") and raw["price"], f"items[{index}][price]"
        )
        specs.append(ItemSpec(price, int_param(raw, "quantity", 1) or 1, raw.get("metadata") or {}))
    default_pm = p.get("default_payment_method") or None
    if default_pm:
        default_pm = payments.owned_by(
            emu, default_pm, customer["id"], now, "default_payment_method"
        )["id"]
        customer = emu.load(customer["id"], "customer")
    trial_end = p.get("trial_end")
    return subscriptions.create(
        emu,
        customer,
        specs,
        now=now,
        trial_days=int_param(p, "trial_period_days"),
        trial_end=int(trial_end) if trial_end not in (None, "", "now") else None,
        default_pm=default_pm,
        metadata={k: str(v) for k, v in (p.get("metadata") or {}).items() if v != ""},
        cancel_at_period_end=bool_param(p, "cancel_at_period_end", False) or False,
        payment_behavior=p.get("payment_behavior") or "allow_incomplete",
        description=p.get("description") or None,
        billing_mode=subscriptions.billing_mode_param(p),
        trial_settings=pausing.trial_settings_param(p),
        automatic_tax=bool(automatic_tax.enabled_param(p)),
    )


@route("GET", "/v1/subscriptions/{id}")
def retrieve_subscription(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return emu.load(req["id"], "subscription")


@route("POST", "/v1/subscriptions/{id}")
def update_subscription(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    sub = emu.load(req["id"], "subscription")
    return subscriptions.update(emu, sub, req.params, emu.now_for(sub))


@route("DELETE", "/v1/subscriptions/{id}")
def cancel_subscription(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    sub = emu.load(req["id"], "subscription")
    return subscriptions.cancel(emu, sub, emu.now_for(sub))


@route("GET", "/v1/subscriptions")
def list_subscriptions(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    items = emu.store.all("subscription", p.get("customer") or None)
    status = p.get("status")
    if status == "ended":
        items = [s for s in items if s["status"] in {"canceled", "incomplete_expired"}]
    elif status and status != "all":
        items = [s for s in items if s["status"] == status]
    elif not status:
        items = [s for s in items if s["status"] not in {"canceled", "incomplete_expired"}]
    if p.get("price"):
        items = [
            s for s in items if any(i["price"]["id"] == p["price"] for i in s["items"]["data"])
        ]
    if p.get("test_clock"):
        items = [s for s in items if s.get("test_clock") == p["test_clock"]]
    return paginate(items, p, "/v1/subscriptions")


@route("GET", "/v1/subscription_items")
def list_subscription_items(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    sub = emu.load(require(req.params, "subscription"), "subscription", "subscription")
    return paginate(list(sub["items"]["data"]), req.params, "/v1/subscription_items")


@route("GET", "/v1/subscription_items/{id}")
def retrieve_subscription_item(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    for sub in emu.store.all("subscription"):
        for item in sub["items"]["data"]:
            if item["id"] == req["id"]:
                return cast(dict[str, Any], item)
    raise no_such("subscription_item", req["id"])


# Invoices


@route("POST", "/v1/invoices/create_preview")
def create_invoice_preview(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return previews.create_preview(emu, req.params)


@route("GET", "/v1/invoices")
def list_invoices(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    items = emu.store.all("invoice", p.get("customer") or None)
    if p.get("subscription"):
        items = [i for i in items if _invoice_subscription(i) == p["subscription"]]
    if p.get("status"):
        items = [i for i in items if i["status"] == p["status"]]
    return paginate(items, p, "/v1/invoices")


def _invoice_subscription(invoice: dict[str, Any]) -> str | None:
    parent = invoice.get("parent") or {}
    return (parent.get("subscription_details") or {}).get("subscription")


@route("GET", "/v1/invoices/{id}")
def retrieve_invoice(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return emu.load(req["id"], "invoice")


@route("GET", "/v1/invoices/{id}/lines")
def list_invoice_lines(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    invoice = emu.load(req["id"], "invoice")
    return paginate(invoice["lines"]["data"], req.params, f"/v1/invoices/{invoice['id']}/lines")


@route("POST", "/v1/invoices/{id}/pay")
def pay_invoice(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    invoice = emu.load(req["id"], "invoice")
    if invoice["status"] not in ("open", "uncollectible"):
        raise StripeError(
            400,
            "Invoice is already paid"
            if invoice["status"] == "paid"
            else f"You can only pay an open invoice (status: {invoice['status']}).",
            code="invoice_not_editable" if invoice["status"] == "paid" else None,
        )
    customer = emu.load(invoice["customer"], "customer")
    now = emu.now_for(invoice)
    sub_id = _invoice_subscription(invoice)
    sub = emu.store.get(sub_id) if sub_id else None
    pm_id = req.params.get("payment_method") or payments.default_payment_method(emu, customer, sub)
    if pm_id:
        pm_id = payments.owned_by(emu, pm_id, customer["id"], now, "payment_method")["id"]
    paid = invoices.pay(emu, invoice, pm_id, now)
    if not paid:
        pi = emu.store.get(invoices.payment_intent_of(invoice) or "") or {}
        if pi.get("status") == "requires_action":
            raise StripeError(
                402,
                "This payment requires additional user action before it can be completed "
                "successfully. Payment can be completed using the PaymentIntent associated "
                "with the invoice.",
                code="invoice_payment_intent_requires_action",
                extra={"payment_intent": render(pi)},
            )
        error = pi.get("last_payment_error") or {}
        raise StripeError(
            402,
            error.get("message", "Your card was declined."),
            type="card_error",
            code=error.get("code"),
            decline_code=error.get("decline_code"),
        )
    payment_actions.invoice_paid(emu, emu.load(invoice["id"], "invoice"))
    return emu.load(invoice["id"], "invoice")


# Payment methods


@route("POST", "/v1/payment_methods")
def create_payment_method(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    if require(p, "type") != "card":
        return emu.save(payment_method_types.from_params(p, emu.now()))
    card = require(p, "card")
    if not isinstance(card, dict):
        raise StripeError(400, "Invalid hash", param="card")
    now = emu.now()
    if card.get("token"):
        return payments.resolve(emu, card["token"], now, "card[token]")
    number = require(card, "number")
    month = int_param(card, "exp_month") or 12
    year = int_param(card, "exp_year") or 2034
    cards.parse_expiry(f"{month}/{year}", now)
    pm = payments.create_card(emu, number, month, year, str(card.get("cvc") or ""), now)
    if p.get("billing_details"):
        pm["billing_details"] = payment_method_types.billing_details(p["billing_details"])
    return emu.save(pm)


@route("GET", "/v1/payment_methods/{id}")
def retrieve_payment_method(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return payments.resolve(emu, req["id"], emu.now(), "id")


@route("POST", "/v1/payment_methods/{id}")
def update_payment_method(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return card_updates.update(emu, emu.load(req["id"], "payment_method"), req.params)


@route("POST", "/v1/payment_methods/{id}/attach")
def attach_payment_method(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    customer = payments.require_customer(emu, require(req.params, "customer"))
    pm = payments.resolve(emu, req["id"], emu.now_for(customer))
    return payments.attach(emu, pm, customer["id"])


@route("POST", "/v1/payment_methods/{id}/detach")
def detach_payment_method(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return payments.detach(emu, emu.load(req["id"], "payment_method"))


@route("GET", "/v1/payment_methods")
def list_payment_methods(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    p = req.params
    customer_id = p.get("customer") or None
    if customer_id:
        payments.require_customer(emu, customer_id)
    items = [
        pm
        for pm in emu.store.all("payment_method", customer_id)
        if customer_id is None or pm.get("customer") == customer_id
    ]
    if p.get("type"):
        items = [pm for pm in items if pm["type"] == p["type"]]
    return paginate(items, p, "/v1/payment_methods")


@route("GET", "/v1/customers/{id}/payment_methods")
def list_customer_payment_methods(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    customer = emu.load(req["id"], "customer")
    items = [
        pm
        for pm in emu.store.all("payment_method", customer["id"])
        if pm.get("customer") == customer["id"] and req.params.get("type") in (None, "", pm["type"])
    ]
    return paginate(items, req.params, f"/v1/customers/{customer['id']}/payment_methods")


@route("GET", "/v1/customers/{id}/payment_methods/{pm}")
def retrieve_customer_payment_method(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    pm = emu.load(req["pm"], "payment_method")
    if pm.get("customer") != req["id"]:
        raise no_such("payment_method", req["pm"])
    return pm


# Intents


@route("GET", "/v1/payment_intents/{id}")
def retrieve_payment_intent(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return emu.load(req["id"], "payment_intent")


@route("GET", "/v1/payment_intents")
def list_payment_intents(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    items = emu.store.all("payment_intent", req.params.get("customer") or None)
    return paginate(items, req.params, "/v1/payment_intents")


@route("GET", "/v1/setup_intents/{id}")
def retrieve_setup_intent(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return emu.load(req["id"], "setup_intent")


@route("GET", "/v1/setup_intents")
def list_setup_intents(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    items = emu.store.all("setup_intent", req.params.get("customer") or None)
    return paginate(items, req.params, "/v1/setup_intents")
