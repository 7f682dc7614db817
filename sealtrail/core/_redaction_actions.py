"""The value transforms of the redaction actions, and the value detectors.

Each builder takes a rule's validated options once and returns a plain function of the
value: nothing is looked up or interpreted per record (the sealer calls these for every
event). Builders never see the event as a whole; the policy wires them to paths.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DETECTORS", "Detector", "luhn_valid", "mask_by_pattern", "mask_by_position",
           "mask_ip", "mask_spans"]

Mask = Callable[[str], str]


def mask_by_position(first: int, last: int, char: str, half: bool) -> Mask:
    """Keep ``first`` leading and ``last`` trailing characters, mask the rest. When that
    would keep the whole value, mask all of it, or (``half``) at least half of it."""

    def by_position(value: str) -> str:
        n = len(value)
        head = min(first, n)
        tail = min(last, n - head)
        if head + tail >= n:  # the kept parts would be the whole value
            if not half:
                return char * n
            allowed = n - (n + 1) // 2  # mask at least half, rounded up
            tail = min(last, allowed // 2)  # share what may be kept between the ends
            head = min(first, allowed - tail)
            tail = min(last, allowed - head)
        return value[:head] + char * (n - head - tail) + value[n - tail:]

    return by_position


def mask_by_pattern(pattern: str, char: str) -> Mask:
    """Mask every character of every match of ``pattern``; when nothing (or only empty
    strings) matched, the rule still covers the value: mask all of it."""
    regex = re.compile(pattern)

    def by_pattern(value: str) -> str:
        hits = 0

        def hide(m: re.Match[str]) -> str:
            nonlocal hits
            hits += len(m.group())
            return char * len(m.group())

        out = regex.sub(hide, value)
        return out if hits else char * len(value)

    return by_pattern


def mask_ip(ipv4_prefix: int, ipv6_prefix: int, cache_size: int = 4096
            ) -> Callable[[str], str | None]:
    """The network of an address in prefix notation, e.g. ``203.0.113.0/24`` or
    ``2001:db8:1234::/48``, or None when the value is not an IP address (the caller
    decides what then). IPv4-mapped IPv6 addresses count as IPv4; an IPv6 zone
    (``%eth0``) is dropped. Results of recent addresses are cached."""
    cache: dict[str, str | None] = {}

    def masked(value: str) -> str | None:
        found = cache.get(value, "")
        if found != "":
            return found
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            out = None
        else:
            if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
                addr = addr.ipv4_mapped
            if isinstance(addr, ipaddress.IPv4Address):
                out = ipaddress.IPv4Network((int(addr), ipv4_prefix), strict=False) \
                    .with_prefixlen
            else:
                out = ipaddress.IPv6Network((int(addr), ipv6_prefix), strict=False) \
                    .with_prefixlen
        if len(cache) >= cache_size:
            cache.clear()
        cache[value] = out
        return out

    return masked


def luhn_valid(digits: str) -> bool:
    """Whether the string of ASCII digits passes the Luhn check (payment card numbers)."""
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i & 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


@dataclass(frozen=True)
class Detector:
    """Finds secrets or personal data inside a value: ``spans(value)`` lists the
    (start, end) ranges to hide. ``what`` says what it looks for, for ``policy check``."""

    name: str
    what: str
    spans: Callable[[str], list[tuple[int, int]]]


_CARD = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")


def _card_spans(value: str) -> list[tuple[int, int]]:
    found = []
    for m in _CARD.finditer(value):
        digits = m.group().replace(" ", "").replace("-", "")
        if luhn_valid(digits):
            found.append(m.span())
    return found


_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def _email_spans(value: str) -> list[tuple[int, int]]:
    if "@" not in value:
        return []
    return [m.span() for m in _EMAIL.finditer(value)]


_CREDENTIALS = (
    # an HTTP Authorization value: "Bearer <token>", "Basic <base64>"
    re.compile(r"(?i)\b(?:bearer|basic|digest|token|negotiate)\s+([A-Za-z0-9._~+/=-]{6,})"),
    # key=value or key: value pairs naming a secret
    re.compile(r"(?i)(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[-_ ]?key|"
               r"access[-_ ]?key|private[-_ ]?key|credentials?)[\"']?\s*[:=]\s*[\"']?"
               r"([^\s\"'&;,]+)"),
    # a JSON Web Token
    re.compile(r"\b(eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*)"),
)


def _credential_spans(value: str) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    for regex in _CREDENTIALS:
        found.extend(m.span(1) for m in regex.finditer(value))
    return found


DETECTORS: dict[str, Detector] = {
    d.name: d for d in (
        Detector("card_number", "payment card numbers (13 to 19 digits, spaces or dashes "
                 "allowed, passing the Luhn check)", _card_spans),
        Detector("email", "e-mail addresses", _email_spans),
        Detector("credential", "credentials: Authorization values (Bearer, Basic...), "
                 "password=/secret:/token=/api_key= values, JSON Web Tokens",
                 _credential_spans),
    )
}


def mask_spans(detector: Detector, char: str, keep_last: int) -> Callable[[str], str | None]:
    """A function masking what ``detector`` finds in a value (letters and digits of each
    span, separators kept; the last ``keep_last`` of them stay, at most half), or None
    when it finds nothing."""
    spans_of = detector.spans

    def masked(value: str) -> str | None:
        spans = spans_of(value)
        if not spans:
            return None
        out = list(value)
        for start, end in spans:
            positions = [i for i in range(start, end) if out[i].isalnum()]
            kept = min(keep_last, len(positions) // 2)  # at least half is always masked
            for i in positions[:len(positions) - kept]:
                out[i] = char
        return "".join(out)

    return masked
