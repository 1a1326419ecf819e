"""Checkout sessions: creation and what completing the hosted page does."""

from __future__ import annotations

from typing import Any

from app.stripe_emulator import (
    async_checkout,
    billing_objects,
    cards,
    invoices,
    objects,
    payment_method_types,
    payments,
    subscriptions,
)
from app.stripe_emulator.core import Emulator, int_param, metadata_update, render, require
from app.stripe_emulator.errors import StripeError
from app.stripe_emulator.store import new_id
from app.stripe_emulator.subscriptions import ItemSpec

MODES = {"payment", "subscription", "setup"}


def create_session(emu: Emulator, p: dict[str, Any]) -> dict[str, Any]:
    mode = require(p, "mode")
    if mode not in MODES:
        raise StripeError(
            400,
            f"Invalid mode: must be one of {', '.join(sorted(MODES))}",
            code="parameter_invalid",
            param="mode",
        )
    if (p.get("ui_mode") or "hosted_page") != "hosted_page":
        raise StripeError(
            400,
            f"The emulator serves only ui_mode=hosted_page (Stripe's default), not {p['ui_mode']}.",
            param="ui_mode",
        )
    if p.get("customer") and p.get("customer_email"):
        raise StripeError(
            400,
            "You may only specify one of these parameters: customer, customer_email.",
            param="customer_email",
        )
    customer = payments.require_customer(emu, p["customer"]) if p.get("customer") else None
    now = emu.now_for(customer) if customer else emu.now()
    line_items = _line_items(emu, p, mode)
    subscription_data = p.get("subscription_data") or {}
    trial_days = (
        int_param(subscription_data, "trial_period_days") if mode == "subscription" else None
    )
    billing_mode = (
        subscriptions.billing_mode_param(subscription_data, "subscription_data[billing_mode]")
        if mode == "subscription"
        else None
    )
    subtotal = sum(item["amount_subtotal"] for item in line_items)
    currency = line_items[0]["currency"] if line_items else (p.get("currency") or None)
    payment_method_types = async_checkout.check_payment_method_types(p, mode, currency)
    session_id = new_id("cs_test", 58)
    session = billing_objects.checkout_session(
        now,
        session_id,
        mode=mode,
        customer=customer["id"] if customer else None,
        customer_email=p.get("customer_email") or None,
        customer_creation=p.get("customer_creation")
        or (None if customer or mode == "subscription" else "if_required"),
        success_url=p.get("success_url") or None,
        cancel_url=p.get("cancel_url") or None,
        client_reference_id=p.get("client_reference_id") or None,
        metadata=metadata_update({}, p),
        currency=currency,
        payment_method_types=payment_method_types,
        allowed_payment_method_types=p.get("allowed_payment_method_types") or None,
        amount_subtotal=subtotal,
        amount_total=0 if trial_days else subtotal,
        payment_status="unpaid",
        url=f"{emu.options.base_url}/checkout/{session_id}",
        invoice_creation=_invoice_creation(p, mode),
        _line_items={
            "object": "list",
            "data": line_items,
            "has_more": False,
            "url": f"/v1/checkout/sessions/{session_id}/line_items",
        },
        _trial_days=trial_days,
        _billing_mode=billing_mode,
        _subscription_metadata=metadata_update({}, subscription_data),
        _payment_intent_data=p.get("payment_intent_data") or {},
    )
    emu.save(session)
    return session


def _invoice_creation(p: dict[str, Any], mode: str) -> dict[str, Any] | None:
    if mode != "payment":
        return None
    enabled = (p.get("invoice_creation") or {}).get("enabled") == "true"
    return {
        "enabled": enabled,
        "invoice_data": {
            "account_tax_ids": None,
            "custom_fields": None,
            "description": None,
            "footer": None,
            "issuer": None,
            "metadata": {},
            "rendering_options": None,
        },
    }


def _line_items(emu: Emulator, p: dict[str, Any], mode: str) -> list[dict[str, Any]]:
    raw_items = p.get("line_items") or []
    if mode == "setup":
        return []
    if not raw_items:
        raise StripeError(
            400,
            f"`line_items` is required in `{mode}` mode.",
            code="parameter_missing",
            param="line_items",
        )
    if not isinstance(raw_items, list):
        raise StripeError(400, "Invalid array", param="line_items")
    result = []
    for index, raw in enumerate(raw_items):
        param = f"line_items[{index}][price]"
        if isinstance(raw.get("price_data"), dict):
            from app.stripe_emulator.api_catalog import _new_price

            price = _new_price(emu, raw["price_data"])
        else:
            price = emu.load(require(raw, "price"), "price", param)
        if mode == "payment" and price["type"] == "recurring":
            raise StripeError(
                400,
                "You specified `payment` mode but passed a recurring price. Either switch to "
                "`subscription` mode or use only one-time prices.",
                param=param,
            )
        if mode == "subscription" and price["type"] != "recurring":
            raise StripeError(
                400,
                "You must specify at least one recurring price in `subscription` mode when "
                "using prices.",
                param=param,
            )
        product = emu.store.get(price["product"]) or {}
        result.append(
            billing_objects.checkout_line_item(
                render(price), int_param(raw, "quantity", 1) or 1, product.get("name", "")
            )
        )
    return result


def complete(emu: Emulator, session: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    """Pay the hosted Checkout page with one of its forms (`payment_method_type`: card, or
    one of `payment_method_types.py`'s); raises a StripeError and changes nothing on a
    decline or a wrong field."""
    if session["status"] != "open":
        raise StripeError(400, "This Checkout Session is no longer active.")
    kind = form.get("payment_method_type") or ("sepa_debit" if form.get("iban") else "card")
    if kind not in session["payment_method_types"]:
        raise StripeError(400, f"This Checkout Session does not take {kind} payments.")
    customer = emu.load(session["customer"], "customer") if session["customer"] else None
    now = emu.now_for(customer) if customer else emu.now()
    email = form.get("email") or session.get("customer_email")
    other: dict[str, Any] | None = None
    if kind == "card":
        card = _checked_card(session, form, now)
    else:
        other = payment_method_types.from_form(
            kind, form, email or (customer or {}).get("email"), now
        )
        email = email or other["billing_details"]["email"]
    if customer is None and (
        session["mode"] == "subscription" or session.get("customer_creation") == "always"
    ):
        from app.stripe_emulator.api_catalog import create_customer
        from app.stripe_emulator.routing import ApiRequest

        customer = create_customer(emu, ApiRequest("POST", "/v1/customers", {"email": email or ""}))
    if other is None:
        pm = payments.create_card(emu, *card, now)
        pm["billing_details"]["email"] = email
    else:
        pm = other
    emu.save(pm)
    updates: dict[str, Any] = {"status": "complete"}
    if customer:
        updates["customer"] = customer["id"]
    updates["customer_details"] = {
        "address": None,
        "email": email or (customer or {}).get("email"),
        "name": form.get("name") or (customer or {}).get("name"),
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }
    mode = session["mode"]
    if mode == "payment" and kind in payment_method_types.DELAYED:
        updates.update(async_checkout.complete_delayed(emu, session, customer, pm, now))
    elif mode == "subscription":
        assert customer is not None  # created above for a subscription
        updates.update(_complete_subscription(emu, session, customer, pm, now))
    elif mode == "payment":
        updates.update(_complete_payment(emu, session, customer, pm, now))
    else:
        updates.update(_complete_setup(emu, session, customer, pm, now))
    session.update(updates)
    emu.save(session)
    emu.emit("checkout.session.completed", session)
    return session


def _checked_card(
    session: dict[str, Any], form: dict[str, str], now: int
) -> tuple[str, int, int, str]:
    """The card form's number, expiry and CVC, checked as Stripe's page checks them, and
    the test card's decline raised before anything is saved."""
    number = cards.normalize(form.get("card_number", ""))
    if not number:
        raise StripeError(
            402,
            "Your card number is incomplete.",
            type="card_error",
            code="incomplete_number",
            param="card_number",
        )
    exp_month, exp_year = cards.parse_expiry(form.get("exp_date", ""), now)
    cvc = form.get("cvc", "").strip()
    if not cvc:
        raise StripeError(
            402,
            "Your card's security code is incomplete.",
            type="card_error",
            code="incomplete_cvc",
            param="cvc",
        )
    cards.validate(number, cvc)
    decline = cards.attach_decline(number)
    charges_now = session["mode"] == "payment" or (
        session["mode"] == "subscription" and session["amount_total"] > 0
    )
    if decline is None and charges_now:
        decline = cards.charge_decline(number)
    if decline:
        raise decline.error()
    return number, exp_month, exp_year, cvc


def _complete_subscription(
    emu: Emulator, session: dict[str, Any], customer: dict[str, Any], pm: dict[str, Any], now: int
) -> dict[str, Any]:
    payments.attach(emu, pm, customer["id"])
    customer = emu.load(customer["id"], "customer")
    emu.update(
        customer,
        lambda c: c["invoice_settings"].update(default_payment_method=pm["id"]),
        "customer.updated",
    )
    specs = [
        ItemSpec(emu.load(item["price"]["id"], "price"), item["quantity"])
        for item in session["_line_items"]["data"]
    ]
    sub = subscriptions.create(
        emu,
        emu.load(customer["id"], "customer"),
        specs,
        now=now,
        trial_days=session.get("_trial_days"),
        default_pm=pm["id"],
        metadata=session.get("_subscription_metadata") or {},
        billing_mode=session.get("_billing_mode") or "flexible",
    )
    return {
        "subscription": sub["id"],
        "invoice": sub["latest_invoice"],
        "payment_status": "no_payment_required" if sub["status"] == "trialing" else "paid",
    }


def _complete_payment(
    emu: Emulator,
    session: dict[str, Any],
    customer: dict[str, Any] | None,
    pm: dict[str, Any],
    now: int,
) -> dict[str, Any]:
    data = async_checkout.payment_intent_data(emu, session, customer, pm)
    pi, decline = payments.charge(
        emu,
        customer_id=customer["id"] if customer else None,
        pm_id=pm["id"],
        amount=session["amount_total"],
        currency=session["currency"],
        now=now,
        description=data.get("description"),
        metadata=metadata_update({}, data),
    )
    if decline:
        raise decline.error()
    result: dict[str, Any] = {"payment_intent": pi["id"], "payment_status": "paid"}
    if customer and (session.get("invoice_creation") or {}).get("enabled"):
        result["invoice"] = paid_invoice(emu, session, customer, pi, now)
    return result


def paid_invoice(
    emu: Emulator,
    session: dict[str, Any],
    customer: dict[str, Any],
    pi: dict[str, Any],
    now: int,
) -> str:
    """The paid invoice `invoice_creation[enabled]` asks for, for a payment-mode session's
    line items paid by `pi`; returns its id."""
    lines = [
        {
            "amount": item["amount_total"],
            "currency": item["currency"],
            "description": item["description"],
            "period": (now, now),
            "price_obj": item["price"],
            "quantity": item["quantity"],
        }
        for item in session["_line_items"]["data"]
    ]
    invoice = invoices.create(
        emu, customer, lines, currency=session["currency"], billing_reason="manual", now=now
    )
    invoices.finalize(emu, invoice, now)
    invoices.record_payment(emu, invoice, pi, now)
    return str(invoice["id"])


def _complete_setup(
    emu: Emulator,
    session: dict[str, Any],
    customer: dict[str, Any] | None,
    pm: dict[str, Any],
    now: int,
) -> dict[str, Any]:
    if customer:
        payments.attach(emu, pm, customer["id"])
    seti = objects.setup_intent(
        now,
        customer=customer["id"] if customer else None,
        payment_method=pm["id"],
        status="succeeded",
    )
    emu.save(seti)
    emu.emit("setup_intent.succeeded", seti)
    return {"setup_intent": seti["id"], "payment_status": "no_payment_required"}


def expire(emu: Emulator, session: dict[str, Any]) -> dict[str, Any]:
    if session["status"] != "open":
        raise StripeError(
            400,
            f"Only Checkout Sessions with a status of `open` can be expired. This "
            f"Checkout Session has a status of `{session['status']}`.",
        )
    session["status"] = "expired"
    emu.save(session)
    emu.emit("checkout.session.expired", session)
    return session
