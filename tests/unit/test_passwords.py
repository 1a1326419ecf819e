"""Production hashes are strong argon2id; the tests' cheap parameters stay inside their block."""

from __future__ import annotations

import re

from app.lib.passwords import argon2_cost, hash_password, verify_password

_PARAMS = re.compile(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$")


def _params(password_hash: str) -> tuple[int, int, int]:
    match = _PARAMS.match(password_hash)
    assert match, password_hash
    memory, time, lanes = (int(group) for group in match.groups())
    return memory, time, lanes


def test_production_hashes_are_argon2id_with_strong_parameters():
    # OWASP's floor for argon2id is 19 MiB with 2 passes; passlib's defaults are well above.
    memory_kib, passes, lanes = _params(hash_password("correct horse battery"))
    assert memory_kib >= 65536 and passes >= 3 and lanes >= 1


def test_cheap_parameters_hold_only_inside_the_block_and_are_upgraded_outside():
    with argon2_cost(memory_cost=8, time_cost=1, parallelism=1):
        cheap = hash_password("correct horse battery")
        assert _params(cheap) == (8, 1, 1)
        assert verify_password("correct horse battery", cheap) == (True, None)
    valid, upgraded = verify_password("correct horse battery", cheap)
    assert valid and upgraded is not None
    assert _params(upgraded)[0] >= 65536
    assert verify_password("wrong", cheap) == (False, None)
