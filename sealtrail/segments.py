"""Segment files: Avro object container files of SealedRecords."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import fastavro

from sealtrail import schemas
from sealtrail.core.envelope import strip_logical_types
from sealtrail.errors import DecodeError

__all__ = ["check_schema", "read_segment", "write_segment"]

_DEFAULT = strip_logical_types(schemas.sealed_record())


def write_segment(
    records: Sequence[dict[str, Any]],
    metadata: dict[str, str],
    schema: dict[str, Any] | None = None,
) -> bytes:
    """The bytes of a segment holding ``records`` written with ``schema`` (the schema they
    were sealed with; the current SealedRecord by default), deflate codec."""
    buf = io.BytesIO()
    parsed = fastavro.parse_schema(strip_logical_types(schema or _DEFAULT), _write_hint=False)
    fastavro.writer(buf, parsed, records, codec="deflate", metadata=metadata)
    return buf.getvalue()


def read_segment(data: bytes) -> list[dict[str, Any]]:
    """The records of a segment exactly as written, decoded with the schema in the file's
    own header (never resolved to a newer version: the entry hash covers what was
    written). DecodeError when the bytes are not a segment."""
    try:
        reader = fastavro.reader(io.BytesIO(data))
        check_schema(reader.writer_schema)
        return list(reader)  # type: ignore[arg-type]
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(f"not a readable segment: {type(exc).__name__}: {exc}") from None


# Fields whose type no SealedRecord version may change: verification relies on them.
_FIXED = {f["name"]: strip_logical_types(f["type"]) for f in _DEFAULT["fields"]
          if f["name"] not in ("event", "rejection", "redaction", "source")}


def check_schema(schema: Any) -> None:
    """DecodeError unless the file's schema is a SealedRecord with the fixed fields."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise DecodeError("segment schema is not a record")
    fields = {f["name"]: f["type"] for f in schema.get("fields", [])}
    for name, ftype in _FIXED.items():
        found = fields.get(name)
        if isinstance(ftype, dict) and isinstance(found, dict):
            same = ftype.get("symbols") == found.get("symbols")
        else:
            same = strip_logical_types(found) == ftype
        if not same:
            raise DecodeError(f"segment schema is not a SealedRecord: field {name!r} is "
                              f"{found!r}, expected {ftype!r}")
