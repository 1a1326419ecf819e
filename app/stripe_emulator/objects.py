"""Builders for Stripe object shapes (see /work/shared/stripe/fixtures3.json)."""

from __future__ import annotations

import secrets
from typing import Any

from app.stripe_emulator.cards import brand, fingerprint
from app.stripe_emulator.store import new_id

_ADDRESS = {
    "city": None,
    "country": None,
    "line1": None,
    "line2": None,
    "postal_code": None,
    "state": None,
}


def customer(now: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": new_id("cus", 14),
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": now,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": None,
        "invoice_prefix": secrets.token_hex(4).upper()[:8],
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
        **fields,
    }


def product(now: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": new_id("prod", 14),
        "object": "product",
        "active": True,
        "created": now,
        "default_price": None,
        "description": None,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": {},
        "name": "",
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": now,
        "url": None,
        **fields,
    }


def price(now: int, **fields: Any) -> dict[str, Any]:
    obj = {
        "id": new_id("price"),
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": now,
        "currency": "usd",
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": None,
        "recurring": None,
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "one_time",
        "unit_amount": None,
        "unit_amount_decimal": None,
        **fields,
    }
    if obj["unit_amount"] is not None:
        obj["unit_amount_decimal"] = str(obj["unit_amount"])
    return obj


def recurring(interval: str, count: int, usage_type: str, meter: str | None) -> dict[str, Any]:
    return {
        "interval": interval,
        "interval_count": count,
        "meter": meter,
        "trial_period_days": None,
        "usage_type": usage_type,
    }


def payment_method(now: int, number: str, exp_month: int, exp_year: int, **fields: Any) -> dict:
    card_brand = brand(number)
    return {
        "id": new_id("pm"),
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": dict(_ADDRESS),
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "card": {
            "brand": card_brand,
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "pass",
            },
            "country": "US",
            "display_brand": card_brand,
            "exp_month": exp_month,
            "exp_year": exp_year,
            "fingerprint": fingerprint(number),
            "funding": "credit",
            "generated_from": None,
            "last4": number[-4:],
            "networks": {"available": [card_brand], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": now,
        "customer": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
        "_number": number,
        **fields,
    }


def payment_intent(now: int, amount: int, currency: str, **fields: Any) -> dict[str, Any]:
    pi_id = new_id("pi")
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{pi_id}_secret_{secrets.token_urlsafe(18)}",
        "confirmation_method": "automatic",
        "created": now,
        "currency": currency,
        "customer": None,
        "description": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
        **fields,
    }


def setup_intent(now: int, **fields: Any) -> dict[str, Any]:
    seti_id = new_id("seti")
    return {
        "id": seti_id,
        "object": "setup_intent",
        "application": None,
        "automatic_payment_methods": None,
        "cancellation_reason": None,
        "client_secret": f"{seti_id}_secret_{secrets.token_urlsafe(24)}",
        "created": now,
        "customer": None,
        "description": None,
        "flow_directions": None,
        "last_setup_error": None,
        "latest_attempt": None,
        "livemode": False,
        "mandate": None,
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "single_use_mandate": None,
        "status": "requires_payment_method",
        "usage": "off_session",
        **fields,
    }


def subscription_item(
    now: int, subscription_id: str, price_obj: dict, quantity: int, start: int, end: int
) -> dict[str, Any]:
    return {
        "id": new_id("si", 14),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": now,
        "current_period_end": end,
        "current_period_start": start,
        "discounts": [],
        "metadata": {},
        "plan": plan_from_price(price_obj),
        "price": price_obj,
        "quantity": quantity,
        "subscription": subscription_id,
        "tax_rates": [],
    }


def plan_from_price(price_obj: dict[str, Any]) -> dict[str, Any]:
    rec = price_obj.get("recurring") or {}
    return {
        "id": price_obj["id"],
        "object": "plan",
        "active": price_obj["active"],
        "amount": price_obj["unit_amount"],
        "amount_decimal": price_obj["unit_amount_decimal"],
        "billing_scheme": price_obj["billing_scheme"],
        "created": price_obj["created"],
        "currency": price_obj["currency"],
        "interval": rec.get("interval"),
        "interval_count": rec.get("interval_count"),
        "livemode": False,
        "metadata": price_obj["metadata"],
        "meter": rec.get("meter"),
        "nickname": price_obj["nickname"],
        "product": price_obj["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": rec.get("usage_type", "licensed"),
    }


def subscription(now: int, sub_id: str, customer_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": now,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"type": "classic"},
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": now,
        "currency": "usd",
        "customer": customer_id,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": {
            "object": "list",
            "data": [],
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={sub_id}",
        },
        "latest_invoice": None,
        "livemode": False,
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": now,
        "status": "incomplete",
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
        **fields,
    }


def invoice_line(
    invoice_id: str,
    amount: int,
    currency: str,
    description: str,
    period: tuple[int, int],
    *,
    price_obj: dict[str, Any] | None = None,
    quantity: int = 1,
    subscription_id: str | None = None,
    item_id: str | None = None,
    proration: bool = False,
) -> dict[str, Any]:
    parent = None
    if subscription_id:
        parent = {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": subscription_id,
                "subscription_item": item_id,
            },
        }
    return {
        "id": new_id("il"),
        "object": "line_item",
        "amount": amount,
        "currency": currency,
        "description": description,
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": invoice_id,
        "livemode": False,
        "metadata": {},
        "parent": parent,
        "period": {"start": period[0], "end": period[1]},
        "pretax_credit_amounts": [],
        "pricing": {
            "type": "price_details",
            "price_details": {
                "price": price_obj["id"] if price_obj else None,
                "product": price_obj["product"] if price_obj else None,
            },
            "unit_amount_decimal": str(price_obj["unit_amount"]) if price_obj else str(amount),
        },
        "quantity": quantity,
        "subtotal": amount,
        "taxes": [],
    }


def invoice(
    now: int, invoice_id: str, customer_obj: dict[str, Any], currency: str, **fields: Any
) -> dict[str, Any]:
    return {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Stripe emulator",
        "account_tax_ids": None,
        "amount_due": 0,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": True,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": "manual",
        "collection_method": "charge_automatically",
        "created": now,
        "currency": currency,
        "custom_fields": None,
        "customer": customer_obj["id"],
        "customer_address": customer_obj.get("address"),
        "customer_email": customer_obj.get("email"),
        "customer_name": customer_obj.get("name"),
        "customer_phone": customer_obj.get("phone"),
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {
            "object": "list",
            "data": [],
            "has_more": False,
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": None,
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "payments": {
            "object": "list",
            "data": [],
            "has_more": False,
            "url": f"/v1/invoice_payments?invoice={invoice_id}",
        },
        "period_end": now,
        "period_start": now,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": 0,
        "subtotal_excluding_tax": 0,
        "test_clock": customer_obj.get("test_clock"),
        "total": 0,
        "total_discount_amounts": [],
        "total_excluding_tax": 0,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": None,
        **fields,
    }


def checkout_session(now: int, session_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": session_id,
        "object": "checkout.session",
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": 0,
        "amount_total": 0,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": None,
        "client_reference_id": None,
        "client_secret": None,
        "consent": None,
        "consent_collection": None,
        "created": now,
        "currency": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": None,
        "customer_creation": None,
        "customer_details": None,
        "customer_email": None,
        "expires_at": now + 24 * 3600,
        "invoice": None,
        "invoice_creation": None,
        "livemode": False,
        "locale": None,
        "metadata": {},
        "mode": "payment",
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "always",
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "success_url": None,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": None,
        **fields,
    }


def checkout_line_item(price_obj: dict[str, Any], quantity: int, product_name: str) -> dict:
    # A metered price is billed on usage at renewal, never up front.
    metered = (price_obj.get("recurring") or {}).get("usage_type") == "metered"
    amount = 0 if metered else (price_obj.get("unit_amount") or 0) * quantity
    return {
        "id": new_id("li"),
        "object": "item",
        "amount_discount": 0,
        "amount_subtotal": amount,
        "amount_tax": 0,
        "amount_total": amount,
        "currency": price_obj["currency"],
        "description": product_name,
        "price": price_obj,
        "quantity": quantity,
    }


def meter(now: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": new_id("mtr"),
        "object": "billing.meter",
        "created": now,
        "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
        "default_aggregation": {"formula": "sum"},
        "display_name": "",
        "event_name": "",
        "event_time_window": None,
        "livemode": False,
        "status": "active",
        "status_transitions": {"deactivated_at": None},
        "updated": now,
        "value_settings": {"event_payload_key": "value"},
        **fields,
    }


def test_clock(now: int, frozen_time: int, name: str | None) -> dict[str, Any]:
    return {
        "id": new_id("clock"),
        "object": "test_helpers.test_clock",
        "created": now,
        "deletes_after": now + 30 * 86400,
        "frozen_time": frozen_time,
        "livemode": False,
        "name": name,
        "status": "ready",
        "status_details": {},
    }
