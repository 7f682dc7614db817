"""Canonical bytes: the one serializer whose output is hashed and signed.

The format is specified in docs/format.md. In short: UTF-8 JSON with no
insignificant whitespace, object keys sorted by Unicode code point, strings
escaped as JSON requires (non-ASCII characters kept literally, control
characters as ``\\uXXXX`` or their short escapes), integers in decimal, byte
strings as lowercase hex, Avro null as ``null``. Floats are not allowed.

:func:`reference_canonical_json` (Python's json) is the reference. Where the native encoder
is built (``_canonical_native.c``), :func:`canonical_json` asks it first; it answers only
for values made of exactly dict, list, tuple, str, int, bool, bytes and None, and leaves
everything else (floats, subclasses, non-string keys, lone surrogates...) to the
reference, which gives the answer or the error.
tests/integration/native/test_canonical_native.py holds the two to the same bytes, golden
vectors included.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["canonical_json", "entry_body", "reference_canonical_json"]


def _load() -> Any:
    try:
        from sealtrail.core import _canonical_native
    except ImportError:  # not built (no C compiler at install time): the reference only
        return None
    return _canonical_native.canonical_json


_native = _load()

# Fields of a sealed record that are covered by entry_hash, in the order the
# format spec lists them. entry_hash and signature are the seal itself.
ENTRY_FIELDS = (
    "chain_id",
    "seq",
    "epoch",
    "kind",
    "event",
    "rejection",
    "redaction",
    "ingested_at",
    "source",
    "prev_hash",
    "key_id",
)


def _default(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    raise TypeError(f"cannot canonicalise a value of type {type(value).__name__}")


_encoder = json.JSONEncoder(
    ensure_ascii=False,
    sort_keys=True,
    separators=(",", ":"),
    allow_nan=False,
    default=_default,
)


# Types that need no further look (exact types; subclasses take the slow path).
_SCALARS = frozenset({str, int, bool, bytes, type(None)})


def _check(value: Any) -> None:
    """Refuse what has no canonical form anywhere in ``value``: floats, non-string keys.

    (The encoder would write a nested float in Python's repr, and sort int keys as numbers
    before turning them into strings, so both are stopped before it runs.)
    """
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"object keys must be strings, found {type(key).__name__} {key!r}")
            if type(item) not in _SCALARS:
                _check(item)
    elif isinstance(value, list | tuple):
        for item in value:
            if type(item) not in _SCALARS:
                _check(item)
    elif isinstance(value, float):
        raise TypeError("floats have no canonical form in sealtrail")


def canonical_json(value: Any) -> bytes:
    """The canonical UTF-8 JSON bytes of ``value`` (dicts, lists, str, int, bytes, None).

    Raises TypeError for floats and non-string object keys at any depth, and for any
    other type without a canonical form.
    """
    if _native is not None:
        try:
            found: bytes = _native(value)
        except ValueError:
            pass  # the reference decides
        else:
            return found
    return reference_canonical_json(value)


def reference_canonical_json(value: Any) -> bytes:
    """:func:`canonical_json` in Python alone (the reference the native encoder is held to)."""
    _check(value)
    return _encoder.encode(value).encode("utf-8")


def entry_body(record: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a sealed record that entry_hash covers (everything but the seal)."""
    return {name: record[name] for name in ENTRY_FIELDS}
