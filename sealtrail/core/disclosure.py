"""Saying what is wrong with a value without showing it, and showing text safely.

Anything that leaves sealtrail in a message (a sealed rejection detail, an exception, a
log line, a terminal) may end up somewhere the redaction policy never looks: a WORM
archive, a log shipper, a ticket. So messages about values describe them (type, length,
character classes, the rule broken) and never quote them (:func:`describe_value`);
URLs are printed with their secrets masked (:func:`mask_url`); and text that came from
events is escaped before it reaches a terminal (:func:`escape_control`).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

__all__ = ["MASK", "SECRET_PARAMETER", "character_classes", "describe_value",
           "escape_control", "mask_url", "mask_urls_in"]

MASK = "********"

_CLASSES = (
    ("upper-case letters", str.isupper),
    ("lower-case letters", str.islower),
    ("digits", str.isdigit),
    ("spaces", lambda c: c == " "),
)


def character_classes(text: str) -> list[str]:
    """The classes of the characters of ``text``, in a fixed order: upper-case letters,
    lower-case letters, digits, spaces, punctuation, other ASCII, control characters,
    non-ASCII. Names only: nothing of the text itself."""
    found: list[str] = []
    seen = set(text)
    for name, test in _CLASSES:
        if any(test(c) and c.isascii() for c in seen):
            found.append(name)
    if any(c.isascii() and c.isprintable() and not c.isalnum() and c != " " for c in seen):
        found.append("punctuation")
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in seen):
        found.append("control characters")
    if any(not c.isascii() and unicodedata.category(c) not in ("Cc", "Cf") for c in seen):
        found.append("non-ASCII")
    return found


def describe_value(value: Any) -> str:
    """``value`` described by its type and, for text and bytes, its length and character
    classes, e.g. ``a string of 41 characters (lower-case letters, punctuation)``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        if not value:
            return "an empty string"
        plural = "s" if len(value) != 1 else ""
        return (f"a string of {len(value)} character{plural} "
                f"({', '.join(character_classes(value))})")
    if isinstance(value, bytes | bytearray | memoryview):
        return f"{len(value)} bytes"
    if isinstance(value, int):
        return "an int"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, dict):
        return f"a map of {len(value)} entries"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} items"
    return f"a {type(value).__name__}"


_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
"""Controls, format characters (bidirectional overrides and isolates, zero-width ones),
line and paragraph separators, surrogates, private-use and unassigned code points."""


def _escape(c: str) -> str:
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape_control(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control, format or direction-changing character written as an
    escape (``\\x1b``, ``\\u202e``), so that text taken from events cannot move the
    cursor, clear lines, recolour or reorder what a terminal shows. Tabs stay; newlines
    stay only with ``keep_newlines``."""
    if text.isprintable():
        return text
    return "".join(
        c if c == "\t" or (keep_newlines and c == "\n")
        or unicodedata.category(c) not in _UNSAFE_CATEGORIES else _escape(c)
        for c in text)


SECRET_PARAMETER = re.compile(
    r"pass(word|wd)?|pwd|secret|token|api[-_.]?key|key|auth|credential|signature|sig|"
    r"session|cookie", re.IGNORECASE)
"""Query parameter names whose values are masked in a URL (``?password=...``,
``sslpassword``, ``X-Amz-Signature``, ``access_token``, ``sslkey`` and the like)."""


def mask_url(url: str) -> str:
    """``url`` with the password of its userinfo and the values of secret-looking query
    parameters replaced by ``********``. Text that does not parse as a URL with a scheme
    is returned unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or not (parts.netloc or parts.query):
        return url
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at and userinfo:
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if colon else netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(SECRET_PARAMETER.search(name) for name, _ in pairs):
            query = "&".join(
                f"{quote(name, safe='')}="
                + (MASK if SECRET_PARAMETER.search(name) else quote(value, safe=""))
                for name, value in pairs)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_DSN_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd|sslpassword)\s*=\s*('[^']*'|\S+)")


def mask_urls_in(text: str) -> str:
    """``text`` (an error message, a log line) with every URL in it masked as by
    :func:`mask_url`, and ``password=...`` pairs of key/value connection strings masked."""
    out = _URL_IN_TEXT.sub(lambda m: mask_url(m.group()), text)
    return _DSN_PASSWORD.sub(lambda m: f"{m.group(1)}={MASK}", out)
