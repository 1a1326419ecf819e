"""Subscriptions, their previews and schedules, at Stripe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from app.stripe.client import (
    GatewayBase,
    LineItem,
    PaymentBehavior,
    ProrationBehavior,
    _list,
    _request,
)
from app.stripe.objects import (
    InvoicePreview,
    Subscription,
    SubscriptionSchedule,
)

if TYPE_CHECKING:
    from stripe.params import (
        InvoiceCreatePreviewParams,
        InvoiceCreatePreviewParamsSubscriptionDetails,
        InvoiceCreatePreviewParamsSubscriptionDetailsItem,
        SubscriptionListParams,
        SubscriptionScheduleCreateParams,
        SubscriptionScheduleUpdateParams,
        SubscriptionScheduleUpdateParamsPhase,
        SubscriptionScheduleUpdateParamsPhaseItem,
        SubscriptionUpdateParams,
        SubscriptionUpdateParamsItem,
    )


@dataclass(frozen=True)
class ItemChange:
    """One entry of a subscription update's `items`: change an item's price (`id` and
    `price`), add a price (`price` only; metered prices take no quantity) or remove an
    item (`id` and `deleted`)."""

    id: str | None = None
    price: str | None = None
    deleted: bool = False


def _update_item(change: ItemChange) -> SubscriptionUpdateParamsItem:
    entry: SubscriptionUpdateParamsItem = {}
    if change.id is not None:
        entry["id"] = change.id
    if change.deleted:
        entry["deleted"] = True
    elif change.price is not None:
        entry["price"] = change.price
    return entry


@dataclass(frozen=True)
class Phase:
    """One phase of a subscription schedule: its prices (metered ones without a quantity)
    from `start_date` (None: where the previous phase ends, or the current phase's start)
    to `end_date` (None: one period of its price)."""

    items: list[LineItem]
    start_date: int | None = None
    end_date: int | None = None


class SubscriptionCalls(GatewayBase):
    # Subscriptions ----------------------------------------------------------------------

    async def retrieve_subscription(self, subscription_id: str) -> Subscription:
        return cast(
            Subscription,
            await _request(self.client.v1.subscriptions.retrieve_async(subscription_id)),
        )

    async def list_subscriptions(self, customer_id: str) -> list[Subscription]:
        params: SubscriptionListParams = {"customer": customer_id, "status": "all", "limit": 100}
        return cast(
            list[Subscription], await _list(self.client.v1.subscriptions.list_async(params))
        )

    async def change_subscription_price(
        self,
        subscription_id: str,
        *,
        item_id: str,
        price_id: str,
        proration_behavior: ProrationBehavior,
        metadata: dict[str, str],
        key: str,
    ) -> Subscription:
        params: SubscriptionUpdateParams = {
            "items": [{"id": item_id, "price": price_id}],
            "proration_behavior": proration_behavior,
            "cancel_at_period_end": False,
            "metadata": metadata,
        }
        if self.checkout_options.automatic_tax:
            params["automatic_tax"] = {"enabled": True}
        return await self._update_subscription(subscription_id, params, key)

    async def update_subscription_items(
        self,
        subscription_id: str,
        *,
        items: list[ItemChange],
        proration_behavior: ProrationBehavior,
        metadata: dict[str, str],
        key: str,
        payment_behavior: PaymentBehavior | None = None,
        end_trial: bool = False,
        proration_date: int | None = None,
    ) -> Subscription:
        """Change, add and remove items in one update (a plan change with its metered items).

        `payment_behavior="error_if_incomplete"` makes Stripe refuse the whole update (a card
        error) when the invoice it creates cannot be paid right away; `pending_if_incomplete`
        makes it the subscription's `pending_update` until that invoice is paid (Stripe then
        takes only the update's own parameters: a plan set to end is not resumed by it).
        `end_trial` ends a trial now, so the first paid period starts (and is invoiced) with
        the change.
        `proration_date` prorates as of that time: the one of a preview makes the update
        charge exactly what the preview showed."""
        params: SubscriptionUpdateParams = {
            "items": [_update_item(change) for change in items],
            "proration_behavior": proration_behavior,
            "metadata": metadata,
        }
        if payment_behavior != "pending_if_incomplete":  # a pending update takes no more
            params["cancel_at_period_end"] = False
            if self.checkout_options.automatic_tax:
                params["automatic_tax"] = {"enabled": True}
        if payment_behavior is not None:
            params["payment_behavior"] = payment_behavior
        if end_trial:
            params["trial_end"] = "now"
        if proration_date is not None:
            params["proration_date"] = proration_date
        return await self._update_subscription(subscription_id, params, key)

    async def set_cancel_at_period_end(
        self, subscription_id: str, cancel: bool, *, key: str
    ) -> Subscription:
        params: SubscriptionUpdateParams = {"cancel_at_period_end": cancel}
        return await self._update_subscription(subscription_id, params, key)

    async def set_subscription_payment_method(
        self, subscription_id: str, payment_method_id: str, *, key: str
    ) -> Subscription:
        params: SubscriptionUpdateParams = {"default_payment_method": payment_method_id}
        return await self._update_subscription(subscription_id, params, key)

    async def _update_subscription(
        self, subscription_id: str, params: SubscriptionUpdateParams, key: str
    ) -> Subscription:
        return cast(
            Subscription,
            await _request(
                self.client.v1.subscriptions.update_async(
                    subscription_id, params, {"idempotency_key": key}
                )
            ),
        )

    async def preview_subscription_change(
        self,
        subscription_id: str,
        *,
        items: list[ItemChange],
        proration_behavior: ProrationBehavior,
        proration_date: int | None,
        end_trial: bool = False,
    ) -> InvoicePreview:
        """The invoice Stripe would make for this change of the subscription's items, computed
        without making anything (`invoices.create_preview`): with `always_invoice` the invoice
        the update creates now, otherwise the next renewal with the change. The update given
        the same items and `proration_date` charges exactly this. No idempotency key: a
        preview changes nothing, and a replayed answer would hide a change since."""
        # The same entries as the update's (`id`, `price`, `deleted`).
        preview_items = cast(
            "list[InvoiceCreatePreviewParamsSubscriptionDetailsItem]",
            [_update_item(change) for change in items],
        )
        details: InvoiceCreatePreviewParamsSubscriptionDetails = {
            "items": preview_items,
            "proration_behavior": proration_behavior,
        }
        if proration_date is not None:  # else as of now, by Stripe's clock
            details["proration_date"] = proration_date
        if end_trial:
            details["trial_end"] = "now"
        params: InvoiceCreatePreviewParams = {
            "subscription": subscription_id,
            "subscription_details": details,
        }
        if self.checkout_options.automatic_tax:
            params["automatic_tax"] = {"enabled": True}
        found = await _request(self.client.v1.invoices.create_preview_async(params))
        return cast(InvoicePreview, found)

    # Subscription schedules -------------------------------------------------------------

    async def create_subscription_schedule(
        self, subscription_id: str, *, key: str
    ) -> SubscriptionSchedule:
        """A schedule managing the subscription, its one phase the current period as it is."""
        params: SubscriptionScheduleCreateParams = {"from_subscription": subscription_id}
        created = await _request(
            self.client.v1.subscription_schedules.create_async(params, {"idempotency_key": key})
        )
        return cast(SubscriptionSchedule, created)

    async def set_schedule_phases(
        self,
        schedule_id: str,
        *,
        phases: list[Phase],
        metadata: dict[str, str],
        key: str,
    ) -> SubscriptionSchedule:
        """Replace the schedule's phases; after the last one the subscription is released
        and goes on as that phase left it (`end_behavior=release`)."""
        phase_params: list[SubscriptionScheduleUpdateParamsPhase] = []
        for phase in phases:
            items: list[SubscriptionScheduleUpdateParamsPhaseItem] = []
            for line in phase.items:
                item: SubscriptionScheduleUpdateParamsPhaseItem = {"price": line.price}
                if line.quantity is not None:
                    item["quantity"] = line.quantity
                items.append(item)
            entry: SubscriptionScheduleUpdateParamsPhase = {
                "items": items,
                "proration_behavior": "none",
            }
            if phase.start_date is not None:
                entry["start_date"] = phase.start_date
            if phase.end_date is not None:
                entry["end_date"] = phase.end_date
            phase_params.append(entry)
        params: SubscriptionScheduleUpdateParams = {
            "phases": phase_params,
            "end_behavior": "release",
            "metadata": metadata,
        }
        updated = await _request(
            self.client.v1.subscription_schedules.update_async(
                schedule_id, params, {"idempotency_key": key}
            )
        )
        return cast(SubscriptionSchedule, updated)

    async def retrieve_subscription_schedule(self, schedule_id: str) -> SubscriptionSchedule:
        found = await _request(self.client.v1.subscription_schedules.retrieve_async(schedule_id))
        return cast(SubscriptionSchedule, found)

    async def release_subscription_schedule(
        self, schedule_id: str, *, key: str
    ) -> SubscriptionSchedule:
        """Detach the schedule: the subscription stays as it is now, its phases are dropped."""
        released = await _request(
            self.client.v1.subscription_schedules.release_async(
                schedule_id, None, {"idempotency_key": key}
            )
        )
        return cast(SubscriptionSchedule, released)
