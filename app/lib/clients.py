"""Who is calling: the client address, believing `X-Forwarded-For` only from trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(value: str | None) -> tuple[Network, ...]:
    """`TRUSTED_PROXIES`: comma-separated addresses or CIDR networks (`10.0.0.0/8, ::1`)."""
    networks: list[Network] = []
    for part in (value or "").split(","):
        part = part.strip()
        if part:
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(
                    f"TRUSTED_PROXIES: {part!r} is not an address or network"
                ) from None
    return tuple(networks)


def _is_trusted(address: str, trusted: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(scope: Any, trusted: Sequence[Network]) -> str:
    """The address of the client that sent the request.

    The peer's address, unless the peer is a trusted proxy: then `X-Forwarded-For` is read from
    right to left (each proxy appends the address it received from) and the first address that
    is not a trusted proxy is the client. Addresses a client wrote itself sit to the left of the
    ones our proxies appended, so they are never believed."""
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    hops: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            hops.extend(part.strip() for part in value.decode("latin-1").split(","))
    for hop in reversed(hops):
        if hop and not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops and hops[0] else peer
