"""Products and prices, at Stripe (what `sync-catalog` keeps matching the catalog)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import stripe

from app.stripe.client import (
    GatewayBase,
    Json,
    StripeNotFound,
    _plain,
    _request,
    _translate,
)

if TYPE_CHECKING:
    from stripe.params import (
        PriceCreateParams,
        PriceListParams,
        PriceUpdateParams,
        ProductCreateParams,
        ProductUpdateParams,
    )


class CatalogCalls(GatewayBase):
    # Catalog ----------------------------------------------------------------------------

    async def retrieve_product(self, product_id: str) -> Json | None:
        try:
            return await _request(self.client.v1.products.retrieve_async(product_id))
        except StripeNotFound:
            return None

    async def create_product(
        self,
        *,
        product_id: str,
        name: str,
        description: str | None,
        metadata: dict[str, str],
        key: str,
    ) -> Json:
        params: ProductCreateParams = {"id": product_id, "name": name, "metadata": metadata}
        if description:
            params["description"] = description
        return await _request(
            self.client.v1.products.create_async(params, {"idempotency_key": key})
        )

    async def update_product(
        self,
        product_id: str,
        *,
        name: str,
        description: str | None,
        metadata: dict[str, str],
        key: str,
    ) -> Json:
        params: ProductUpdateParams = {
            "name": name,
            "description": description or "",
            "metadata": metadata,
            "active": True,
        }
        return await _request(
            self.client.v1.products.update_async(product_id, params, {"idempotency_key": key})
        )

    async def prices_by_lookup_key(self, lookup_keys: list[str]) -> dict[str, Json]:
        """Active prices for these lookup keys (at most one per key, as Stripe guarantees)."""
        found: dict[str, Json] = {}
        for start in range(0, len(lookup_keys), 10):
            params: PriceListParams = {
                "lookup_keys": lookup_keys[start : start + 10],
                "active": True,
                "limit": 100,
            }
            try:
                page = await self.client.v1.prices.list_async(params)
            except stripe.StripeError as exc:
                raise _translate(exc) from exc
            for price in page.data:
                if price.lookup_key:
                    found[price.lookup_key] = _plain(price)
        return found

    async def create_price(
        self,
        *,
        product_id: str,
        lookup_key: str,
        amount: int,
        currency: str,
        interval: Literal["month", "year"] | None,
        metadata: dict[str, str],
        key: str,
        meter_id: str | None = None,
    ) -> Json:
        """A price; with `meter_id` a metered recurring price billing that meter's usage."""
        params: PriceCreateParams = {
            "product": product_id,
            "currency": currency,
            "unit_amount": amount,
            "lookup_key": lookup_key,
            # Moves the key off an older price with other terms, so lookups find this one.
            "transfer_lookup_key": True,
            "metadata": metadata,
        }
        if interval is not None:
            params["recurring"] = {"interval": interval}
            if meter_id is not None:
                params["recurring"]["usage_type"] = "metered"
                params["recurring"]["meter"] = meter_id
        return await _request(self.client.v1.prices.create_async(params, {"idempotency_key": key}))

    async def archive_price(self, price_id: str, *, key: str) -> Json:
        params: PriceUpdateParams = {"active": False}
        return await _request(
            self.client.v1.prices.update_async(price_id, params, {"idempotency_key": key})
        )
