"""The client's address, for per-client limits: the TCP peer, unless a trusted proxy says otherwise.

The backend does not let uvicorn rewrite the peer from forwarded headers (`proxy_headers=False`):
anybody can send `X-Forwarded-For`. Here it counts only when the hop that sent it is trusted:

- the request carries `X-Proxy-Secret` equal to PROXY_SECRET (the frontend sends both; in a
  cluster its pod address is not known in advance), or
- the TCP peer is in TRUSTED_PROXIES (IP addresses / CIDR networks).

Then the RIGHTMOST entry of `X-Forwarded-For` that parses as an IP address is the client (the
one the trusted hop appended; entries to its left were written by whoever connected to it).
Anything unparseable -- garbage, ports, non-ASCII -- is skipped, never an error.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from functools import lru_cache
from typing import Annotated, TypeAlias

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr
from starlette.requests import Request

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDED_FOR = "x-forwarded-for"
PROXY_SECRET_HEADER = "x-proxy-secret"
# Entries of X-Forwarded-For looked at, from the right: a trusted hop appends one.
MAX_ENTRIES = 16


@lru_cache(maxsize=8)
def parse_networks(spec: str) -> tuple[Network, ...]:
    """'127.0.0.1, ::1, 10.0.0.0/8' -> networks; ValueError naming the bad entry."""
    networks = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address or network (e.g. 10.0.0.0/8)") from None
    return tuple(networks)


def _checked_networks(spec: str) -> str:
    parse_networks(spec)
    return spec


def _empty_is_none(value: object) -> object:
    return None if value == "" else value  # `PROXY_SECRET=` in an env file means "no secret"


# Settings types: TRUSTED_PROXIES is checked when the settings load (a typo exits at start);
# PROXY_SECRET, when set, is as long as the other signing secrets.
NetworkList = Annotated[str, AfterValidator(_checked_networks)]
OptionalSecret = Annotated[Annotated[SecretStr, Field(min_length=16)] | None, BeforeValidator(_empty_is_none)]


def parse_address(text: str) -> str | None:
    """The canonical form of one IP address, or None (ports, brackets, names, garbage)."""
    text = text.strip()
    if not text or len(text) > 64 or not text.isascii():
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


def in_networks(address: str, networks: Iterable[Network]) -> bool:
    parsed = parse_address(address)
    if parsed is None:
        return False
    ip = ipaddress.ip_address(parsed)
    return any(ip in network for network in networks)


def proxy_secret_matches(sent: str | None, secret: SecretStr | None) -> bool:
    if not sent or secret is None or not secret.get_secret_value():
        return False
    return hmac.compare_digest(sent.encode("utf-8", "replace"), secret.get_secret_value().encode())


def forwarded_client(values: Iterable[str]) -> str | None:
    """The rightmost parseable address across X-Forwarded-For header values (in order)."""
    entries = ",".join(values).split(",")
    for entry in reversed(entries[-MAX_ENTRIES:]):
        address = parse_address(entry)
        if address is not None:
            return address
    return None


def client_address(request: Request, trusted_proxies: str, proxy_secret: SecretStr | None) -> str:
    """Whose request this is, for per-client throttling (see the module's docstring)."""
    trusted = parse_networks(trusted_proxies)
    peer = request.client.host if request.client else "unknown"
    headers = request.headers
    vouched = proxy_secret_matches(headers.get(PROXY_SECRET_HEADER), proxy_secret) or in_networks(peer, trusted)
    if vouched:
        forwarded = forwarded_client(headers.getlist(FORWARDED_FOR))
        if forwarded is not None:
            return forwarded
    return parse_address(peer) or peer[:64]
