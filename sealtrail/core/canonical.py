"""Canonical bytes: the one serializer whose output is hashed and signed.

The format is specified in docs/format.md. In short: UTF-8 JSON with no
insignificant whitespace, object keys sorted by Unicode code point, strings
escaped as JSON requires (non-ASCII characters kept literally, control
characters as ``\\uXXXX`` or their short escapes), integers in decimal, byte
strings as lowercase hex, Avro null as ``null``. Floats are not allowed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["canonical_json", "entry_body"]

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


def canonical_json(value: Any) -> bytes:
    """The canonical UTF-8 JSON bytes of ``value`` (dicts, lists, str, int, bytes, None)."""
    if isinstance(value, float):
        raise TypeError("floats have no canonical form in sealtrail")
    return _encoder.encode(value).encode("utf-8")


def entry_body(record: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a sealed record that entry_hash covers (everything but the seal)."""
    return {name: record[name] for name in ENTRY_FIELDS}
