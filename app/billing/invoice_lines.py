"""What an invoice is for, in words, from its lines (pure functions over Stripe's JSON).

`mirror_lines` turns Stripe's invoice lines into the small shape we keep on `Invoice.lines`;
`describe` names the invoice from them: "Pro · monthly", "100 AI requests credit pack",
"Proration for plan change", or the main line "and N more". A line says what it bills through
its price's lookup key (ours, set by the catalog sync; kept in the price's metadata too, so a
price whose key moved on to a newer one still names its plan).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.catalog.models import Catalog

Json = dict[str, Any]
PRORATION = "Proration for plan change"
INTERVAL_WORDS = {"month": "monthly", "year": "yearly"}


def line_price_id(line: Json) -> str | None:
    """The price a line bills: `pricing.price_details.price` (API 2025+), else `price`."""
    details = (line.get("pricing") or {}).get("price_details") or {}
    price = details.get("price") or line.get("price")
    if isinstance(price, dict):
        price = price.get("id")
    return price if isinstance(price, str) and price else None


def price_lookup_key(price: Mapping[str, Any] | None) -> str | None:
    if not price:
        return None
    key = price.get("lookup_key") or (price.get("metadata") or {}).get("lookup_key")
    return key if isinstance(key, str) and key else None


def is_proration(line: Json) -> bool:
    parent = line.get("parent") or {}
    for kind in ("subscription_item_details", "invoice_item_details"):
        if (parent.get(kind) or {}).get("proration"):
            return True
    return bool(line.get("proration"))


def line_label(catalog: Catalog, lookup_key: str | None) -> str | None:
    """What a price bills, in our words; None for a price that is not in our catalog."""
    if not lookup_key:
        return None
    found = catalog.plan_for_lookup_key(lookup_key)
    if found is not None:
        plan, price = found
        return f"{plan.name} · {INTERVAL_WORDS[price.interval]}"
    for pack in catalog.credit_packs.values():
        if pack.lookup_key == lookup_key:
            return f"{pack.name} credit pack"
    for plan in catalog.plans.values():
        for quota in plan.overage_quotas():
            for interval in plan.prices:
                if plan.overage_lookup_key(quota.meter_code, interval) == lookup_key:
                    meter = catalog.meter(quota.meter_code)
                    return f"{meter.name if meter else quota.meter_code} beyond {plan.name}"
    return None


def mirror_lines(
    catalog: Catalog, lines: list[Json], lookup_keys: Mapping[str, str | None]
) -> list[Json]:
    """Stripe's lines as we keep them; `lookup_keys` maps the lines' price ids to their
    prices' lookup keys (`price_lookup_key`)."""
    kept = []
    for line in lines:
        price_id = line_price_id(line)
        key = lookup_keys.get(price_id) if price_id else None
        if key is None and isinstance(line.get("price"), dict):
            key = price_lookup_key(line["price"])
        period = line.get("period") or {}
        kept.append(
            {
                "description": str(line.get("description") or ""),
                "label": line_label(catalog, key),
                "amount": int(line.get("amount") or 0),
                "quantity": line.get("quantity"),
                "period_start": period.get("start"),
                "period_end": period.get("end"),
                "proration": is_proration(line),
            }
        )
    return kept


def describe(lines: list[Json], *, fallback: str | None = None, trial: bool = False) -> str:
    """One line naming the invoice. `lines` are `mirror_lines`' output."""
    if not lines:
        return fallback or "Invoice"
    prorations = [line for line in lines if line["proration"]]
    others = [line for line in lines if not line["proration"]]
    if prorations:
        main, rest = PRORATION, len(others)
    else:
        # The line with the largest amount says what the invoice is for (a renewal's plan,
        # rather than its usage); the first one on a tie, as Stripe lists them.
        biggest = max(others, key=lambda line: abs(int(line["amount"])))
        main = biggest["label"] or biggest["description"] or fallback or "Invoice"
        rest = len(others) - 1
        if trial and biggest["label"]:
            main += " (trial)"
    return main if rest <= 0 else f"{main} and {rest} more"
