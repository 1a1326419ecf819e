"""The client address believes X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import pytest

from app.lib.clients import client_address, parse_networks


def scope(peer: str, *forwarded: str) -> dict:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return {"client": (peer, 5000), "headers": headers}


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address(scope("203.0.113.9", "198.51.100.1"), ()) == "203.0.113.9"


def test_a_header_from_an_untrusted_peer_is_ignored() -> None:
    trusted = parse_networks("10.0.0.0/8")
    assert client_address(scope("203.0.113.9", "198.51.100.1"), trusted) == "203.0.113.9"


def test_the_rightmost_untrusted_hop_is_the_client() -> None:
    trusted = parse_networks("10.0.0.0/8, ::1")
    # The client wrote "1.2.3.4" itself; our proxy appended the address it saw.
    assert client_address(scope("10.0.0.2", "1.2.3.4, 198.51.100.7"), trusted) == "198.51.100.7"
    assert (
        client_address(scope("10.0.0.2", "1.2.3.4", "198.51.100.7, 10.0.0.5"), trusted)
        == "198.51.100.7"
    )
    assert client_address(scope("::1", "2001:db8::1"), trusted) == "2001:db8::1"


def test_only_trusted_hops_give_the_first_one() -> None:
    trusted = parse_networks("10.0.0.0/8")
    assert client_address(scope("10.0.0.2", "10.1.1.1, 10.0.0.3"), trusted) == "10.1.1.1"
    assert client_address(scope("10.0.0.2"), trusted) == "10.0.0.2"


def test_a_bad_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        parse_networks("10.0.0.0/8, proxy.internal")
    assert parse_networks(" ") == ()
