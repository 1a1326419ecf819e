"""`billing-portal sync-catalog` and `billing-portal reconcile`.

Catalog sync creates or updates Stripe products and prices from the catalog, matched by
`lookup_key` (`plan_<slug>_monthly|yearly`, `pack_<slug>`); products have stable ids
(`bp_plan_<slug>`, `bp_pack_<slug>`). A price's amount, currency and interval cannot change
at Stripe, so a changed one gets a new price that takes the lookup key over
(`transfer_lookup_key`) and the old one is archived. Running it twice changes nothing.
Free plans are not sent to Stripe: they never go through Checkout.

Overage: for every meter some (paid) plan bills beyond its included quota, a Billing Meter
with `event_name = bp_<meter>` (found by event name, never created twice) summing the
events' `value` per Stripe customer (`payload.stripe_customer_id`); and for every such plan
and interval a metered recurring price on the plan's product,
`overage_<plan>_<meter>_<monthly|yearly>`, at the quota's `overage_unit_amount` per unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from app.catalog.models import Catalog
from app.metering.outbox import meter_event_name
from app.stripe.gateway import StripeGateway, content_hash, idempotency_key


@dataclass(frozen=True)
class DesiredPrice:
    lookup_key: str
    product_id: str
    amount: int
    currency: str
    interval: Literal["month", "year"] | None
    meter_id: str | None = None  # a metered price billing this Billing Meter's usage


@dataclass(frozen=True)
class DesiredMeter:
    meter_code: str
    event_name: str
    display_name: str


@dataclass(frozen=True)
class DesiredProduct:
    id: str
    name: str
    description: str | None
    metadata: dict[str, str]
    prices: list[DesiredPrice]


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)

    def lines(self) -> list[str]:
        return (
            [f"created   {name}" for name in self.created]
            + [f"updated   {name}" for name in self.updated]
            + [f"unchanged {name}" for name in self.unchanged]
        )


def desired_meters(catalog: Catalog) -> list[DesiredMeter]:
    """One Billing Meter per meter that some paid plan bills as overage."""
    codes: dict[str, None] = {}
    for plan in catalog.plans.values():
        if not plan.is_free:
            codes.update((quota.meter_code, None) for quota in plan.overage_quotas())
    meters = []
    for code in codes:
        meter = catalog.meter(code)
        meters.append(DesiredMeter(code, meter_event_name(code), meter.name if meter else code))
    return meters


def desired_products(
    catalog: Catalog, meter_ids: dict[str, str] | None = None
) -> list[DesiredProduct]:
    """Products and prices; with `meter_ids` (meter code → Stripe meter id) also the plans'
    metered overage prices."""
    products = []
    for plan in catalog.plans.values():
        if plan.is_free:
            continue
        product_id = f"bp_plan_{plan.slug}"
        prices = [
            DesiredPrice(
                price.lookup_key(plan.slug),
                product_id,
                price.amount,
                price.currency,
                price.interval,
            )
            for price in plan.prices.values()
        ]
        for quota in plan.overage_quotas():
            meter_id = (meter_ids or {}).get(quota.meter_code)
            if meter_id is None or quota.overage_unit_amount is None:
                continue
            prices += [
                DesiredPrice(
                    plan.overage_lookup_key(quota.meter_code, price.interval),
                    product_id,
                    quota.overage_unit_amount,
                    price.currency,
                    price.interval,
                    meter_id,
                )
                for price in plan.prices.values()
            ]
        products.append(
            DesiredProduct(
                id=product_id,
                name=plan.name,
                description=plan.description or None,
                metadata={"kind": "plan", "plan": plan.slug},
                prices=prices,
            )
        )
    for pack in catalog.credit_packs.values():
        product_id = f"bp_pack_{pack.slug}"
        products.append(
            DesiredProduct(
                id=product_id,
                name=pack.name,
                description=f"{pack.credits:,} {pack.meter_code} credits",
                metadata={"kind": "credit_pack", "pack": pack.slug},
                prices=[
                    DesiredPrice(pack.lookup_key, product_id, pack.amount, pack.currency, None)
                ],
            )
        )
    return products


def price_matches(remote: dict[str, Any], want: DesiredPrice) -> bool:
    recurring = remote.get("recurring") or {}
    usage_type = (recurring.get("usage_type") or "licensed") if recurring else None
    want_usage_type = None if want.interval is None else "metered" if want.meter_id else "licensed"
    product = remote.get("product")
    if isinstance(product, dict):
        product = product.get("id")
    return (
        remote.get("unit_amount") == want.amount
        and remote.get("currency") == want.currency
        and (recurring.get("interval") if recurring else None) == want.interval
        and product == want.product_id
        and usage_type == want_usage_type
        and (recurring.get("meter") or None) == want.meter_id
        and bool(remote.get("active", True))
    )


class CatalogSync:
    def __init__(self, gateway: StripeGateway, catalog: Catalog) -> None:
        self.gateway = gateway
        self.catalog = catalog

    async def run(self) -> SyncReport:
        report = SyncReport()
        meter_ids = await self._meters(report)
        products = desired_products(self.catalog, meter_ids)
        keys = [price.lookup_key for product in products for price in product.prices]
        existing = await self.gateway.prices_by_lookup_key(keys)
        for product in products:
            await self._product(product, report)
            for want in product.prices:
                await self._price(want, existing.get(want.lookup_key), report)
        return report

    async def _meters(self, report: SyncReport) -> dict[str, str]:
        """Ensure the overage meters exist (matched by event name); meter code → meter id."""
        wanted = desired_meters(self.catalog)
        if not wanted:
            return {}
        active = {
            str(meter["event_name"]): meter
            for meter in await self.gateway.list_meters()
            if meter.get("status", "active") == "active"
        }
        ids: dict[str, str] = {}
        for want in wanted:
            label = f"meter {want.event_name}"
            remote = active.get(want.event_name)
            if remote is None:
                remote = await self.gateway.create_meter(
                    display_name=want.display_name,
                    event_name=want.event_name,
                    formula="sum",
                    key=idempotency_key("meter", want.event_name, content_hash(want.__dict__)),
                )
                report.created.append(label)
            else:
                report.unchanged.append(label)
            ids[want.meter_code] = str(remote["id"])
        return ids

    async def _product(self, want: DesiredProduct, report: SyncReport) -> None:
        label = f"product {want.id}"
        remote = await self.gateway.retrieve_product(want.id)
        if remote is None:
            await self.gateway.create_product(
                product_id=want.id,
                name=want.name,
                description=want.description,
                metadata=want.metadata,
                key=idempotency_key("product", want.id),
            )
            report.created.append(label)
            return
        metadata = remote.get("metadata") or {}
        same = (
            remote.get("name") == want.name
            and (remote.get("description") or None) == want.description
            and all(metadata.get(k) == v for k, v in want.metadata.items())
            and remote.get("active", True)
        )
        if same:
            report.unchanged.append(label)
            return
        await self.gateway.update_product(
            want.id,
            name=want.name,
            description=want.description,
            metadata=want.metadata,
            key=idempotency_key("product-update", want.id, content_hash(want.__dict__)),
        )
        report.updated.append(label)

    async def _price(
        self, want: DesiredPrice, remote: dict[str, Any] | None, report: SyncReport
    ) -> None:
        label = f"price {want.lookup_key}"
        if remote is not None and price_matches(remote, want):
            report.unchanged.append(label)
            return
        await self.gateway.create_price(
            product_id=want.product_id,
            lookup_key=want.lookup_key,
            amount=want.amount,
            currency=want.currency,
            interval=want.interval,
            meter_id=want.meter_id,
            metadata={"lookup_key": want.lookup_key},
            key=idempotency_key("price", want.lookup_key, content_hash(want.__dict__)),
        )
        if remote is None:
            report.created.append(label)
            return
        await self.gateway.archive_price(
            str(remote["id"]), key=idempotency_key("archive-price", remote["id"])
        )
        report.updated.append(label)
