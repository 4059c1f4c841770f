"""Who the client is and which scheme it used, believing forwarded headers only from trusted proxies.

Uvicorn runs with ``proxy_headers=False``: ``scope["client"]`` is always the TCP peer and
``scope["scheme"]`` the scheme of that connection. ``X-Forwarded-For``, ``X-Forwarded-Proto``
and ``Forwarded`` (RFC 7239) are read here, and only when the peer is in TRUSTED_PROXIES
(default: nobody). Every value is parsed with ``ipaddress``; garbage is ignored, never an error.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from functools import lru_cache

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# One element of a Forwarded header: for=...; proto=... (token or quoted string).
_FORWARDED_PAIR = re.compile(r'(for|proto)\s*=\s*("[^"]*"|[^;,\s]*)', re.IGNORECASE)


@lru_cache(maxsize=8)
def parse_networks(text: str) -> tuple[Network, ...]:
    """TRUSTED_PROXIES: comma-separated IPs or CIDRs; raises ValueError naming a bad entry."""
    networks: list[Network] = []
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR") from None
    return tuple(networks)


def parse_address(value: str) -> Address | None:
    """An address from a forwarded value: '1.2.3.4', '1.2.3.4:80', '[::1]:80', '"[::1]"'; else None."""
    value = value.strip().strip('"')
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:  # IPv4 with a port; a bare IPv6 has several colons
        value = value.partition(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    # ::ffff:a.b.c.d (a dual-stack socket's IPv4 client) is a.b.c.d, as the backend counts it.
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


def _trusted(address: Address | None, networks: Iterable[Network]) -> bool:
    return address is not None and any(address in network for network in networks)


def _headers(scope: Scope, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope.get("headers", []) if key == name]


def _forwarded_values(scope: Scope, key: str) -> list[str]:
    """The ``key`` (for / proto) of each Forwarded element, in order."""
    values = []
    for header in _headers(scope, b"forwarded"):
        for element in header.split(","):
            for name, value in _FORWARDED_PAIR.findall(element):
                if name.lower() == key:
                    values.append(value.strip('"'))
    return values


def peer_address(scope: Scope) -> Address | None:
    client = scope.get("client")
    return parse_address(str(client[0])) if client else None


def peer_is_trusted(scope: Scope, networks: tuple[Network, ...]) -> bool:
    return bool(networks) and _trusted(peer_address(scope), networks)


def client_address(scope: Scope, networks: tuple[Network, ...]) -> str:
    """The client's IP address as text ('' when unknown).

    From an untrusted peer: the peer. From a trusted proxy: X-Forwarded-For (else Forwarded
    for=) walked right to left, skipping trusted proxies; the first untrusted entry is the
    client. An entry that is not an address stops the walk at the hop that reported it.
    """
    peer = peer_address(scope)
    if peer is None:
        return ""
    if not _trusted(peer, networks):
        return str(peer)
    chain = [v for h in _headers(scope, b"x-forwarded-for") for v in h.split(",")]
    if not chain:
        chain = _forwarded_values(scope, "for")
    client = peer
    for entry in reversed(chain):
        address = parse_address(entry)
        if address is None:
            break
        client = address
        if not _trusted(address, networks):
            break
    return str(client)


def request_is_https(scope: Scope, networks: tuple[Network, ...]) -> bool:
    """True when the browser reached us over https: directly, or as a trusted proxy says."""
    if scope.get("scheme") == "https":
        return True
    if not peer_is_trusted(scope, networks):
        return False
    protos = _headers(scope, b"x-forwarded-proto") or _forwarded_values(scope, "proto")
    if not protos:
        return False
    # The rightmost value is the one our own proxy set; anything left of it came from further away.
    return protos[-1].split(",")[-1].strip().lower() == "https"
