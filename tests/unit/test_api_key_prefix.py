"""Issue 21, item 11: an API key says the Stripe mode it was made in, as Stripe's keys do."""

from __future__ import annotations

import pytest

from app.apikeys.models import ApiKey
from app.apikeys.service import key_prefix


@pytest.mark.parametrize(
    ("stripe_secret_key", "prefix"),
    [
        (None, "bp_test_"),  # the local emulator
        ("", "bp_test_"),
        ("sk_test_51Abc", "bp_test_"),
        ("rk_test_51Abc", "bp_test_"),
        ("sk_test_emulator", "bp_test_"),
        ("sk_live_51Abc", "bp_live_"),
        ("rk_live_51Abc", "bp_live_"),  # a restricted live key
        (" sk_live_51Abc ", "bp_live_"),
        ("something_else", "bp_test_"),  # not a live key: never labelled live
    ],
)
def test_new_keys_are_test_unless_stripe_runs_live(
    stripe_secret_key: str | None, prefix: str
) -> None:
    assert key_prefix(stripe_secret_key) == prefix


@pytest.mark.parametrize(
    ("stored", "mode"),
    [("bp_test_AbCdEf", "test"), ("bp_live_AbCdEf", "live"), ("bp_liveAbCdEf", "live")],
)
def test_a_keys_mode_comes_from_its_stored_prefix(stored: str, mode: str) -> None:
    """Keys made before test keys existed are all `bp_live_`: they stay Live."""
    assert ApiKey(name="k", prefix=stored, key_hash="x").mode == mode
