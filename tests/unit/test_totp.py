"""The rules of two-factor codes (app/accounts/totp.py) at fixed times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp

from app.accounts.totp import (
    DIGITS,
    RECOVERY_CODE_COUNT,
    STEP_SECONDS,
    SecretBox,
    hash_recovery_code,
    matching_step,
    new_recovery_codes,
    new_secret,
    qr_svg,
    time_step,
)

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = datetime(2026, 12, 4, 18, 0, 10, tzinfo=UTC)


def code_at(moment: datetime) -> str:
    return pyotp.TOTP(SECRET).at(moment)


def test_the_current_code_matches_its_step() -> None:
    assert matching_step(SECRET, code_at(NOW), NOW, last_used_step=0) == time_step(NOW)


def test_one_step_of_drift_either_way_is_accepted_and_no_more() -> None:
    step = timedelta(seconds=STEP_SECONDS)
    assert matching_step(SECRET, code_at(NOW - step), NOW, 0) == time_step(NOW) - 1
    assert matching_step(SECRET, code_at(NOW + step), NOW, 0) == time_step(NOW) + 1
    assert matching_step(SECRET, code_at(NOW - 2 * step), NOW, 0) is None
    assert matching_step(SECRET, code_at(NOW + 2 * step), NOW, 0) is None


def test_a_code_is_not_accepted_again_within_its_window() -> None:
    used = matching_step(SECRET, code_at(NOW), NOW, 0)
    assert used is not None
    later = NOW + timedelta(seconds=STEP_SECONDS)  # the old code is still in the window
    assert matching_step(SECRET, code_at(NOW), later, used) is None
    # Nor an earlier one: steps only move forward.
    earlier = NOW - timedelta(seconds=STEP_SECONDS)
    assert matching_step(SECRET, code_at(earlier), NOW, used) is None
    assert matching_step(SECRET, code_at(later), later, used) == used + 1


def test_codes_are_typed_loosely_but_must_be_six_digits() -> None:
    code = code_at(NOW)
    assert matching_step(SECRET, f" {code[:3]} {code[3:]} ", NOW, 0) == time_step(NOW)
    assert matching_step(SECRET, code[:5], NOW, 0) is None
    assert matching_step(SECRET, "abcdef", NOW, 0) is None
    assert matching_step(SECRET, "", NOW, 0) is None
    assert len(code) == DIGITS


def test_recovery_codes_are_distinct_and_hash_the_same_however_typed() -> None:
    codes = new_recovery_codes()
    assert len(codes) == RECOVERY_CODE_COUNT == len(set(codes))
    code = codes[0]
    assert len(code.replace("-", "")) == 16
    assert hash_recovery_code(code) == hash_recovery_code(code.upper().replace("-", " "))
    assert hash_recovery_code(code) != hash_recovery_code(codes[1])
    assert code not in hash_recovery_code(code)


def test_the_secret_is_encrypted_under_secret_key() -> None:
    secret = new_secret()
    box = SecretBox.from_secret_key("one secret key")
    sealed = box.seal(secret)
    assert secret not in sealed
    assert box.open(sealed) == secret
    assert SecretBox.from_secret_key("another secret key").open(sealed) is None
    assert box.open("not a token") is None


def test_the_qr_code_is_plain_svg_for_the_pages_csp() -> None:
    svg = qr_svg(pyotp.TOTP(SECRET).provisioning_uri(name="a@example.com", issuer_name="X"))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "style" not in svg and "<script" not in svg and "href" not in svg
