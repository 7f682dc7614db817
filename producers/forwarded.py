"""The client address of a request behind reverse proxies, from ``X-Forwarded-For``.

Each proxy appends the address it received the request from, so the header reads
``client, proxy1, ..., proxyN-1`` and the peer of the application is proxyN. Only the
entries the application's own proxies appended can be trusted: the client may send any
``X-Forwarded-For`` it likes, and a proxy appends to it. So the client is found **from
the right**: the rightmost address that is not one of the trusted proxies.

:class:`TrustedProxies` says which hops are trusted, either by count (the number of
proxies in front of the application, all appending) or by networks (CIDRs the proxies
live in). Every hop is parsed with :mod:`ipaddress`; a hop that is not an address ends
the walk with no client address (None): it means the header was not written by the
proxies the configuration describes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sealtrail.errors import ConfigError

__all__ = ["TrustedProxies", "parse_hop"]

MAX_HOPS = 64
"""Entries of X-Forwarded-For looked at (a header is bounded; a chain of proxies is short)."""

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_hop(text: str) -> Address | None:
    """The address of one hop (``203.0.113.7``, ``2001:db8::1``, ``[2001:db8::1]:443``,
    ``203.0.113.7:443``), or None when it is not one."""
    hop = text.strip()
    if hop.startswith("["):
        end = hop.find("]")
        if end < 0 or (end + 1 < len(hop) and not hop[end + 1:].startswith(":")):
            return None
        hop = hop[1:end]
    elif hop.count(":") == 1:  # IPv4 with a port
        hop, _, port = hop.partition(":")
        if not port.isdigit():
            return None
    try:
        addr = ipaddress.ip_address(hop)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


@dataclass(frozen=True)
class TrustedProxies:
    """Which hops in front of the application are its own proxies: ``count`` proxies, or
    every address inside ``networks``. ``TrustedProxies()`` trusts none: the peer is the
    client and X-Forwarded-For is ignored."""

    count: int = 0
    networks: tuple[Network, ...] = ()

    @classmethod
    def of(cls, spec: int | str | Iterable[str] | TrustedProxies | None) -> TrustedProxies:
        """From a middleware argument: a count, CIDRs (a list or one comma-separated
        string), or None for none. ConfigError naming what is wrong."""
        if spec is None:
            return cls()
        if isinstance(spec, TrustedProxies):
            return spec
        if isinstance(spec, bool):
            raise ConfigError("trusted_proxies: give a number of proxies or their networks")
        if isinstance(spec, int):
            if not 0 <= spec <= MAX_HOPS:
                raise ConfigError(f"trusted_proxies: {spec} proxies is not 0..{MAX_HOPS}")
            return cls(count=spec)
        items = spec.split(",") if isinstance(spec, str) else list(spec)
        networks = []
        for item in items:
            try:
                networks.append(ipaddress.ip_network(str(item).strip(), strict=False))
            except ValueError:
                raise ConfigError(f"trusted_proxies: {str(item).strip()!r} is not an IP "
                                  "network (e.g. 10.0.0.0/8, 2001:db8::/32)") from None
        if not networks:
            raise ConfigError("trusted_proxies: no networks given")
        return cls(networks=tuple(networks))

    @property
    def enabled(self) -> bool:
        return bool(self.count or self.networks)

    def _trusted(self, addr: Address) -> bool:
        return any(addr in net for net in self.networks)

    def client(self, peer: str | None, forwarded: Sequence[str]) -> str | None:
        """The client address of a request from ``peer`` carrying the X-Forwarded-For
        entries ``forwarded`` (left to right), as a normalised address string."""
        peer_addr = parse_hop(peer) if peer else None
        if not self.enabled:
            return str(peer_addr) if peer_addr is not None else peer
        hops: list[str] = [*forwarded[-MAX_HOPS:], peer or ""]
        if self.count:
            # The rightmost `count` hops are our proxies; the one before them the client.
            # Fewer entries than that: all of them were written by our proxies (a client
            # can only add entries on the left), so the leftmost is the client.
            picked = parse_hop(hops[max(0, len(hops) - 1 - self.count)])
            return str(picked) if picked is not None else None
        for hop in reversed(hops):
            addr = parse_hop(hop)
            if addr is None:
                return None
            if not self._trusted(addr):
                return str(addr)
        first = parse_hop(hops[0])  # every hop is a trusted proxy: the first is the client
        return str(first) if first is not None else None


def split_forwarded(values: Iterable[str]) -> list[str]:
    """The entries of one or several X-Forwarded-For header values, in order."""
    return [hop.strip() for value in values for hop in value.split(",") if hop.strip()]
