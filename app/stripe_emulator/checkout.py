"""Checkout sessions: creation and what completing the hosted page does."""

from __future__ import annotations

from typing import Any

from app.stripe_emulator import (
    async_checkout,
    automatic_tax,
    billing_objects,
    cards,
    discounts,
    invoices,
    objects,
    payment_method_types,
    payments,
    subscriptions,
    tax_ids,
)
from app.stripe_emulator.core import (
    Emulator,
    bool_param,
    int_param,
    metadata_update,
    render,
    require,
)
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
    collection = _collection(p, customer, mode)
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
        **collection,
    )
    set_amounts(session)
    emu.save(session)
    return session


def _collection(p: dict[str, Any], customer: dict[str, Any] | None, mode: str) -> dict[str, Any]:
    """What the page collects besides the payment (the billing address, a tax ID, a
    promotion code) and automatic tax, checked as Stripe checks them."""
    address_collection = p.get("billing_address_collection") or None
    if address_collection not in (None, "auto", "required"):
        raise StripeError(
            400,
            "Invalid billing_address_collection: must be one of auto or required",
            param="billing_address_collection",
        )
    tax_id_collection = p.get("tax_id_collection") or {}
    collect_tax_id = bool(bool_param(tax_id_collection, "enabled", False))
    tax = bool(automatic_tax.enabled_param(p)) and mode != "setup"
    update = p.get("customer_update") or {}
    if not isinstance(update, dict):
        raise StripeError(400, "Invalid hash", param="customer_update")
    if update and customer is None:
        raise StripeError(
            400,
            "`customer_update` can only be used with `customer`.",
            param="customer_update",
        )
    if collect_tax_id and customer is not None and update.get("name") != "auto":
        raise StripeError(
            400,
            "tax_id_collection requires updating business name on the customer. To enable "
            "tax ID collection for an existing customer, please set `customer_update[name]` "
            "to `auto`.",
            param="customer_update[name]",
        )
    if (
        tax
        and customer is not None
        and not (customer.get("address") or {}).get("country")
        and "auto" not in (update.get("address"), update.get("shipping"))
    ):
        raise StripeError(
            400,
            "Automatic tax calculation in Checkout requires a valid address on the Customer. "
            "Add a valid address to the Customer or set either `customer_update[address]` to "
            "'auto' or `customer_update[shipping]` to 'auto' to save the address entered in "
            "Checkout to the Customer.",
            param="customer_update[address]",
        )
    return {
        "allow_promotion_codes": bool_param(p, "allow_promotion_codes"),
        "billing_address_collection": address_collection,
        "tax_id_collection": {"enabled": collect_tax_id, "required": "never"},
        "automatic_tax": {
            "enabled": tax,
            "liability": {"type": "self"} if tax else None,
            "provider": "stripe" if tax else None,
            "status": "complete" if tax else None,
        },
        "discounts": [],
        "_customer_update": {k: v for k, v in update.items() if v},
        "_discount": None,
    }


def asks_address(session: dict[str, Any], customer: dict[str, Any] | None) -> bool:
    """The page asks for the billing address: always with `required`; with `auto` only when
    automatic tax needs a location the customer lacks (as Stripe's page does)."""
    if session.get("billing_address_collection") == "required":
        return True
    has_address = bool(((customer or {}).get("address") or {}).get("country"))
    return bool(session["automatic_tax"]["enabled"]) and not has_address


def set_amounts(session: dict[str, Any]) -> None:
    """The line items' and the session's amounts: subtotal, the promotion code's discount,
    automatic tax on what is left, total (nothing due today in a trial)."""
    discount = session.get("_discount")
    tax = session["automatic_tax"]["enabled"]
    subtotal = discounted = taxed = 0
    for item in session["_line_items"]["data"]:
        amount = item["amount_subtotal"]
        off = discounts.amount_of(discount, amount) if discount else 0
        item_tax = automatic_tax.tax_on(amount - off) if tax else 0
        item.update(amount_discount=off, amount_tax=item_tax, amount_total=amount - off + item_tax)
        subtotal += amount
        discounted += off
        taxed += item_tax
    trial = bool(session.get("_trial_days"))
    session["amount_subtotal"] = subtotal
    session["amount_total"] = 0 if trial else subtotal - discounted + taxed
    session["total_details"] = {
        "amount_discount": 0 if trial else discounted,
        "amount_shipping": 0,
        "amount_tax": 0 if trial else taxed,
    }


def apply_promotion_code(emu: Emulator, session: dict[str, Any], code: str) -> dict[str, Any]:
    """The hosted page's "Apply" of a promotion code (or its removal, with an empty code)."""
    if session["status"] != "open":
        raise StripeError(400, "This Checkout Session is no longer active.")
    if not session.get("allow_promotion_codes"):
        raise StripeError(400, "This Checkout Session does not take promotion codes.")
    if not code.strip():
        session["discounts"], session["_discount"] = [], None
    else:
        promo = discounts.redeemable(emu, code)
        session["discounts"] = [
            {"coupon": promo["promotion"]["coupon"], "promotion_code": promo["id"]}
        ]
        session["_discount"] = _preview_discount(emu, promo)
    set_amounts(session)
    emu.save(session)
    return session


def _preview_discount(emu: Emulator, promo: dict[str, Any]) -> dict[str, Any]:
    """The discount the code will make, as far as amounts go (made for real on completion)."""
    coupon = emu.load(promo["promotion"]["coupon"], "coupon")
    return {
        "_promotion_code": promo["id"],
        "_percent_off": coupon.get("percent_off"),
        "_amount_off": coupon.get("amount_off"),
    }


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
    address = _collected_address(session, customer, form)
    tax_id = _collected_tax_id(session, form)
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
    business_name = form.get("business_name", "").strip() if tax_id else ""
    updates["customer_details"] = {
        "address": address,
        "email": email or (customer or {}).get("email"),
        "name": business_name or form.get("name") or (customer or {}).get("name"),
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [{"type": tax_id[0], "value": tax_id[1]}] if tax_id else [],
    }
    if customer:
        _update_customer(emu, session, customer, address, tax_id, business_name)
    mode = session["mode"]
    if session.get("_discount") and mode != "setup":
        promo = emu.load(session["_discount"]["_promotion_code"], "promotion_code")
        session["_discount"] = discounts.new_discount(
            emu,
            promo,
            customer=customer["id"] if customer else None,
            now=now,
            checkout_session=session["id"] if mode == "payment" else None,
        )
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


ADDRESS_FIELDS = ("line1", "line2", "city", "postal_code", "state", "country")


def _collected_address(
    session: dict[str, Any], customer: dict[str, Any] | None, form: dict[str, str]
) -> dict[str, Any] | None:
    """The billing address the page asked for, checked (line 1 and the country are
    required; the country as a two-letter ISO code)."""
    if not asks_address(session, customer):
        return None
    address: dict[str, Any] = {
        name: form.get(f"address_{name}", "").strip() or None for name in ADDRESS_FIELDS
    }
    if not address["line1"]:
        raise StripeError(400, "Your address is incomplete.", param="address_line1")
    country = (address["country"] or "").upper()
    if len(country) != 2 or not country.isalpha():
        raise StripeError(400, "Please select your country.", param="address_country")
    address["country"] = country
    return address


def _collected_tax_id(session: dict[str, Any], form: dict[str, str]) -> tuple[str, str] | None:
    """The tax ID typed on the page, if tax ID collection is on and one was given."""
    if not session["tax_id_collection"]["enabled"]:
        return None
    value = form.get("tax_id_value", "").strip()
    if not value:
        return None
    tax_type = form.get("tax_id_type", "")
    if tax_type not in tax_ids.FORMATS:
        raise StripeError(400, "Please select the type of your tax ID.", param="tax_id_type")
    tax_ids.check(tax_type, value, "tax_id_value")
    return tax_type, value


def _update_customer(
    emu: Emulator,
    session: dict[str, Any],
    customer: dict[str, Any],
    address: dict[str, Any] | None,
    tax_id: tuple[str, str] | None,
    business_name: str,
) -> None:
    """Save what the page collected on the customer, as `customer_update` allows."""
    allowed = session.get("_customer_update") or {}
    changes: dict[str, Any] = {}
    if address and allowed.get("address") == "auto":
        changes["address"] = address
    if business_name and allowed.get("name") == "auto":
        changes["name"] = business_name
    if changes:
        emu.update(
            emu.load(customer["id"], "customer"), lambda c: c.update(changes), "customer.updated"
        )
    if tax_id:
        tax_ids.create(emu, emu.load(customer["id"], "customer"), *tax_id)


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
        discount=session.get("_discount"),
        automatic_tax=session["automatic_tax"]["enabled"],
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
            "amount": item["amount_subtotal"],
            "currency": item["currency"],
            "description": item["description"],
            "period": (now, now),
            "price_obj": item["price"],
            "quantity": item["quantity"],
        }
        for item in session["_line_items"]["data"]
    ]
    invoice = invoices.create(
        emu,
        customer,
        lines,
        currency=session["currency"],
        billing_reason="manual",
        now=now,
        discount=session.get("_discount"),
        tax=session["automatic_tax"]["enabled"],
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
