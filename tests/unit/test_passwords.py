"""Production hashes are strong argon2id; the tests' cheap parameters stay inside their block."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from app.lib.passwords import CHEAP_HASHING_ENV, argon2_cost, hash_password, verify_password

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


def test_the_suites_processes_hash_cheaply_only_when_told():
    """tests/servers.py starts `billing-portal` with INSECURE_TEST_PASSWORD_HASHING=1."""
    show = "from app.lib.passwords import hash_password; print(hash_password('x'))"

    def hashed_in_a_process(**env: str) -> str:
        clean = {k: v for k, v in os.environ.items() if k != CHEAP_HASHING_ENV}
        run = subprocess.run(
            [sys.executable, "-c", show],
            env={**clean, **env},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return run.stdout.strip()

    assert _params(hashed_in_a_process(**{CHEAP_HASHING_ENV: "1"})) == (8, 1, 1)
    assert _params(hashed_in_a_process())[0] >= 65536
