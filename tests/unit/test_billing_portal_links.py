"""Portal link tokens: signing, verification, and single use across processes."""

from __future__ import annotations

import asyncio
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from litestar.stores.file import FileStore
from litestar.stores.memory import MemoryStore

from app.billing.portal_links import PortalLinkInvalid, claim_once, redeem, sign, verify

SECRET = "unit-secret-" + "z" * 32
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_round_trip() -> None:
    token = sign(SECRET, "cus-public-id", NOW)
    claim = verify(SECRET, token, NOW + timedelta(minutes=4))
    assert claim.customer_public_id == "cus-public-id"
    assert claim.expires_at == int(NOW.timestamp()) + 300
    assert sign(SECRET, "cus-public-id", NOW) != token  # a fresh nonce every time


def test_expiry() -> None:
    token = sign(SECRET, "c", NOW)
    with pytest.raises(PortalLinkInvalid, match="expired"):
        verify(SECRET, token, NOW + timedelta(minutes=5))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: "e30" + t[t.index(".") :],  # payload "{}" with the old signature
        lambda t: t.replace(".", ""),
        lambda t: t + ".x",
        lambda t: "",
        lambda t: "%%%." + t,
    ],
)
def test_tampering_is_rejected(mangle) -> None:
    with pytest.raises(PortalLinkInvalid, match="not valid"):
        verify(SECRET, mangle(sign(SECRET, "c", NOW)), NOW)


def test_only_the_issued_spelling_is_accepted() -> None:
    """The last base64 character carries bits the decoder drops: every other spelling of it
    is refused, so changing it always invalidates the link (this test was flaky before)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    token = sign(SECRET, "c", NOW)
    for other in alphabet.replace(token[-1], ""):
        with pytest.raises(PortalLinkInvalid, match="not valid"):
            verify(SECRET, token[:-1] + other, NOW)


def test_other_secret_is_rejected() -> None:
    with pytest.raises(PortalLinkInvalid):
        verify("another-secret", sign(SECRET, "c", NOW), NOW)


async def test_redeem_is_single_use(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "portal", create_directories=True)
    token = sign(SECRET, "c", NOW)
    assert (await redeem(store, SECRET, token, NOW)).customer_public_id == "c"
    with pytest.raises(PortalLinkInvalid, match="already used"):
        await redeem(store, SECRET, token, NOW)
    await redeem(store, SECRET, sign(SECRET, "c", NOW), NOW)  # another link still works


async def test_memory_store_claims_once_under_concurrency() -> None:
    store = MemoryStore()
    results = await asyncio.gather(*(claim_once(store, "k", 60) for _ in range(20)))
    assert results.count(True) == 1


def _claim_in_process(path: str) -> bool:
    return asyncio.run(claim_once(FileStore(Path(path)), "shared-nonce", 60))


def test_file_store_claims_once_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "portal"
    path.mkdir()
    with ProcessPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_claim_in_process, [str(path)] * 12))
    assert results.count(True) == 1
    assert not [p for p in path.iterdir() if p.name.startswith(".claim.")]  # no temp files left
