"""`billing-portal sync-catalog` and `billing-portal reconcile`.

Catalog sync creates or updates Stripe products and prices from the catalog, matched by
`lookup_key` (`plan_<slug>_monthly|yearly`, `pack_<slug>`); products have stable ids
(`bp_plan_<slug>`, `bp_pack_<slug>`). A price's amount, currency and interval cannot change
at Stripe, so a changed one gets a new price that takes the lookup key over
(`transfer_lookup_key`) and the old one is archived. Running it twice changes nothing.
Free plans are not sent to Stripe: they never go through Checkout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from app.catalog.models import Catalog
from app.stripe.gateway import StripeGateway, content_hash, idempotency_key


@dataclass(frozen=True)
class DesiredPrice:
    lookup_key: str
    product_id: str
    amount: int
    currency: str
    interval: Literal["month", "year"] | None


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


def desired_products(catalog: Catalog) -> list[DesiredProduct]:
    products = []
    for plan in catalog.plans.values():
        if plan.is_free:
            continue
        product_id = f"bp_plan_{plan.slug}"
        products.append(
            DesiredProduct(
                id=product_id,
                name=plan.name,
                description=plan.description or None,
                metadata={"kind": "plan", "plan": plan.slug},
                prices=[
                    DesiredPrice(
                        price.lookup_key(plan.slug),
                        product_id,
                        price.amount,
                        price.currency,
                        price.interval,
                    )
                    for price in plan.prices.values()
                ],
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


def _price_matches(remote: dict[str, Any], want: DesiredPrice) -> bool:
    recurring = remote.get("recurring") or {}
    product = remote.get("product")
    if isinstance(product, dict):
        product = product.get("id")
    return (
        remote.get("unit_amount") == want.amount
        and remote.get("currency") == want.currency
        and (recurring.get("interval") if recurring else None) == want.interval
        and product == want.product_id
        and bool(remote.get("active", True))
    )


class CatalogSync:
    def __init__(self, gateway: StripeGateway, catalog: Catalog) -> None:
        self.gateway = gateway
        self.catalog = catalog

    async def run(self) -> SyncReport:
        report = SyncReport()
        products = desired_products(self.catalog)
        keys = [price.lookup_key for product in products for price in product.prices]
        existing = await self.gateway.prices_by_lookup_key(keys)
        for product in products:
            await self._product(product, report)
            for want in product.prices:
                await self._price(want, existing.get(want.lookup_key), report)
        return report

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
        if remote is not None and _price_matches(remote, want):
            report.unchanged.append(label)
            return
        await self.gateway.create_price(
            product_id=want.product_id,
            lookup_key=want.lookup_key,
            amount=want.amount,
            currency=want.currency,
            interval=want.interval,
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
