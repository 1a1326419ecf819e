"""3-D Secure: Stripe's test cards that require authentication, payment intents that wait for
it (`requires_action`), and the hosted pages' "Complete / Fail authentication" step."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from app.stripe_emulator.cards import Decline
from app.stripe_emulator.core import Emulator

ALWAYS = "4000002760003184"  # authentication on every payment, on- and off-session
ON_SETUP = "4000002500003155"  # on-session; off-session charges pass once the card is set up
CARDS = {ALWAYS, ON_SETUP}

ACTION_REQUIRED = Decline(
    "authentication_required",
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
)
FAILED_MESSAGE = (
    "We are unable to authenticate your payment method. Please choose a different payment "
    "method and try again."
)

# True while a payment the customer has just authenticated (on a hosted page) is made.
_confirmed: contextvars.ContextVar[bool] = contextvars.ContextVar("confirmed", default=False)


@contextmanager
def confirmed() -> Iterator[None]:
    token = _confirmed.set(True)
    try:
        yield
    finally:
        _confirmed.reset(token)


def needed_on_session(number: str) -> bool:
    return number in CARDS


def required(emu: Emulator, pm: dict[str, Any]) -> bool:
    """Whether charging `pm` now stops at `requires_action`. An authenticated payment sets the
    card up for later off-session charges (what matters for 4000 0025 0000 3155)."""
    number = pm.get("_number")
    if number not in CARDS:
        return False
    if _confirmed.get():
        if not pm.get("_set_up"):
            pm["_set_up"] = True
            emu.save(pm)
        return False
    return number == ALWAYS or not pm.get("_set_up")


def wait_for_action(emu: Emulator, pi: dict[str, Any]) -> None:
    pi.update(
        status="requires_action",
        next_action={
            "type": "use_stripe_sdk",
            "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": None},
        },
    )
    emu.save(pi)
    emu.emit("payment_intent.requires_action", pi)


def set_up(emu: Emulator, customer_id: str | None, number: str) -> None:
    """A card saved through an authenticated Checkout is set up for off-session use."""
    for pm in emu.store.all("payment_method", customer_id):
        if pm.get("_number") == number and not pm.get("_set_up"):
            pm["_set_up"] = True
            emu.save(pm)
