"""A saved card's details changing: the API's `POST /v1/payment_methods/{id}` (`card[exp_month]`,
`card[exp_year]`, `metadata`) sends `payment_method.updated`; the emulator helper
`POST /_emulator/payment_methods/{id}/card_update` plays Stripe's card account updater (the
bank issued a new card: new `last4` and/or expiry) and sends
`payment_method.automatically_updated`. Both carry `previous_attributes`."""

from __future__ import annotations

from typing import Any

from app.stripe_emulator import cards
from app.stripe_emulator.core import Emulator, int_param, metadata_update
from app.stripe_emulator.errors import StripeError
from app.stripe_emulator.routing import ApiRequest, helper


def _expiry(emu: Emulator, pm: dict[str, Any], raw: dict[str, Any]) -> tuple[int, int]:
    card = pm["card"]
    month = int_param(raw, "exp_month", card["exp_month"])
    year = int_param(raw, "exp_year", card["exp_year"])
    assert month is not None and year is not None
    cards.parse_expiry(f"{month}/{year}", emu.now_for(pm))
    return month, year


def update(emu: Emulator, pm: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """`POST /v1/payment_methods/{id}`: metadata, and a card's expiry."""
    raw_card = params.get("card")
    if raw_card not in (None, "") and (pm["type"] != "card" or not isinstance(raw_card, dict)):
        raise StripeError(
            400, "You can only update card details on a card PaymentMethod.", param="card"
        )
    expiry = _expiry(emu, pm, raw_card) if isinstance(raw_card, dict) else None

    def change(o: dict[str, Any]) -> None:
        o["metadata"] = metadata_update(o["metadata"], params)
        if expiry:
            o["card"]["exp_month"], o["card"]["exp_year"] = expiry

    return emu.update(pm, change, "payment_method.updated")


@helper("POST", "/_emulator/payment_methods/{id}/card_update")
def card_account_update(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    """The card account updater: `number` (a new card number; its last four show) and/or
    `exp_month`, `exp_year`."""
    pm = emu.load(req["id"], "payment_method")
    if pm["type"] != "card":
        raise StripeError(400, "Only card payment methods are updated by the card updater.")
    p = req.params
    expiry = _expiry(emu, pm, p)
    number = cards.normalize(str(p.get("number") or ""))
    if number:
        cards.validate(number, "")

    def change(o: dict[str, Any]) -> None:
        o["card"]["exp_month"], o["card"]["exp_year"] = expiry
        if number:
            o["card"]["last4"] = number[-4:]
            o["_number"] = number

    updated = emu.update(pm, change, "payment_method.automatically_updated")
    return updated
