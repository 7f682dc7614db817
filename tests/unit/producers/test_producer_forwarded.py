"""The source ip behind reverse proxies: the rightmost X-Forwarded-For hop that is not a
trusted proxy, so that a client cannot choose the address it is audited under."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.errors import ConfigError
from sealtrail.producers import context
from sealtrail.producers.forwarded import TrustedProxies, parse_hop, split_forwarded
from sealtrail.producers.middleware import ASGIAuditMiddleware, WSGIAuditMiddleware

CLIENT = "198.51.100.9"
SPOOF = "203.0.113.66"


@pytest.mark.parametrize(("proxies", "peer", "header", "expected"), [
    # nothing trusted: the peer, whatever the header says
    (None, CLIENT, f"{SPOOF}", CLIENT),
    # one proxy: it appended the client; what the client sent stays on the left
    (1, "10.0.0.1", f"{SPOOF}, {CLIENT}", CLIENT),
    (1, "10.0.0.1", f"{CLIENT}", CLIENT),
    # two proxies: the entry before the last one
    (2, "10.0.0.2", f"{SPOOF}, {CLIENT}, 10.0.0.1", CLIENT),
    # fewer entries than proxies: all were written by ours, the leftmost is the client
    (2, "10.0.0.2", f"{CLIENT}", CLIENT),
    # by network: the rightmost address outside the trusted networks
    (["10.0.0.0/8"], "10.0.0.2", f"{SPOOF}, {CLIENT}, 10.1.2.3", CLIENT),
    (["10.0.0.0/8", "2001:db8:ffff::/48"], "2001:db8:ffff::2",
     f"{SPOOF}, 2001:db8:1::7, 10.9.9.9", "2001:db8:1::7"),
    # a peer outside the trusted networks is the client: its header is not ours
    (["10.0.0.0/8"], CLIENT, f"{SPOOF}", CLIENT),
    # every hop trusted: the leftmost
    (["10.0.0.0/8"], "10.0.0.2", "10.0.0.9", "10.0.0.9"),
    # ports, brackets and IPv4-mapped IPv6 are understood and normalised
    (1, "10.0.0.1", f"{SPOOF}, [2001:DB8::1]:443", "2001:db8::1"),
    (1, "10.0.0.1", f"{SPOOF}, {CLIENT}:5555", CLIENT),
    (1, "10.0.0.1", f"::ffff:{CLIENT}", CLIENT),
    # a hop that is not an address where the client should be: unknown, not guessed
    (1, "10.0.0.1", f"{SPOOF}, not-an-ip", None),
    (["10.0.0.0/8"], "10.0.0.2", "unknown, 10.0.0.3", None),
])
def test_client_is_the_rightmost_untrusted_hop(proxies: Any, peer: str, header: str,
                                               expected: str | None) -> None:
    assert TrustedProxies.of(proxies).client(peer, split_forwarded([header])) == expected


@settings(max_examples=300, deadline=None)
@given(spoofed=st.lists(st.one_of(st.ip_addresses().map(str), st.text(max_size=12)),
                        max_size=6),
       client=st.ip_addresses(v=4).filter(
           lambda a: a not in ipaddress.ip_network("10.0.0.0/24")),
       n=st.integers(1, 4))
def test_whatever_the_client_sends_it_cannot_choose_its_address(
    spoofed: list[str], client: ipaddress.IPv4Address, n: int
) -> None:
    """With n proxies appending, any X-Forwarded-For the client itself sent (anything,
    addresses or garbage) leaves the audited address the client's real one."""
    proxies = [f"10.0.0.{i}" for i in range(1, n + 1)]
    header = [*[s.replace(",", "") for s in spoofed], str(client), *proxies[:-1]]
    for trusted in (TrustedProxies.of(n), TrustedProxies.of(["10.0.0.0/24"])):
        assert trusted.client(proxies[-1], [h.strip() for h in header if h.strip()]) \
            == str(client)


@pytest.mark.parametrize(("spec", "message"), [
    (-1, "is not 0..64"), (True, "number of proxies"), (["10.0.0.0/33"], "not an IP network"),
    ("proxy.internal", "not an IP network"), ([], "no networks"),
])
def test_bad_trusted_proxies_are_configuration_errors(spec: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrustedProxies.of(spec)


def test_parse_hop() -> None:
    assert str(parse_hop(" 203.0.113.7 ")) == "203.0.113.7"
    assert parse_hop("203.0.113.7:http") is None
    assert parse_hop("[2001:db8::1") is None
    assert parse_hop("") is None


def _asgi_source_ip(middleware_args: dict[str, Any], headers: list[tuple[bytes, bytes]],
                    peer: str) -> str | None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        ctx = context.current()
        seen["ip"] = ctx.source_ip if ctx else None

    middleware = ASGIAuditMiddleware(app, actor=lambda scope: None, **middleware_args)
    scope = {"type": "http", "path": "/", "headers": headers, "client": (peer, 5000)}
    asyncio.run(middleware(scope, None, None))
    return seen["ip"]


def test_asgi_middleware_joins_repeated_headers_and_takes_the_rightmost_untrusted() -> None:
    """Two X-Forwarded-For headers (the client's, then the proxy's) read as one list."""
    headers = [(b"x-forwarded-for", SPOOF.encode()), (b"X-Forwarded-For", CLIENT.encode())]
    assert _asgi_source_ip({"trusted_proxies": 1}, headers, "10.0.0.1") == CLIENT
    assert _asgi_source_ip({}, headers, "10.0.0.1") == "10.0.0.1"
    assert _asgi_source_ip({"trust_forwarded": True}, headers, "10.0.0.1") == CLIENT


def test_wsgi_middleware_uses_trusted_proxies() -> None:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        ctx = context.current()
        seen["ip"] = ctx.source_ip if ctx else None
        return [b""]

    middleware = WSGIAuditMiddleware(app, actor=lambda environ: None,
                                     trusted_proxies="10.0.0.0/8, 192.168.0.0/16")
    list(middleware({"REMOTE_ADDR": "192.168.1.1",
                     "HTTP_X_FORWARDED_FOR": f"{SPOOF}, {CLIENT}, 10.0.0.4"}, lambda *a: None))
    assert seen["ip"] == CLIENT
