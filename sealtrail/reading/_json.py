"""A sealed record as JSON: what replay, search and export hand out."""

from __future__ import annotations

from typing import Any

from sealtrail.core.canonical import canonical_json


def record_to_json(record: dict[str, Any]) -> str:
    """One sealed record as JSON: the canonical JSON of the whole record (every field, keys
    sorted, byte strings as lowercase hex). Its entry body has the same canonical bytes as
    the Avro record, so the entry hash can be recomputed from this form alone
    (docs/format.md, "Canonical JSON")."""
    return canonical_json(record).decode("utf-8")


def jsonl_bytes(records: list[dict[str, Any]]) -> bytes:
    """``records`` as JSON lines, UTF-8 (each line as :func:`record_to_json` writes it)."""
    return b"".join(canonical_json(r) + b"\n" for r in records)
