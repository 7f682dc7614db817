"""Segment files: Avro object container files of SealedRecords."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import fastavro

from sealtrail import schemas
from sealtrail.core.envelope import strip_logical_types
from sealtrail.errors import DecodeError

__all__ = ["read_segment", "write_segment"]

_SCHEMA = fastavro.parse_schema(strip_logical_types(schemas.sealed_record()), _write_hint=False)


def write_segment(records: Sequence[dict[str, Any]], metadata: dict[str, str]) -> bytes:
    """The bytes of a segment holding ``records`` (deflate codec)."""
    buf = io.BytesIO()
    fastavro.writer(buf, _SCHEMA, records, codec="deflate", metadata=metadata)
    return buf.getvalue()


def read_segment(data: bytes) -> list[dict[str, Any]]:
    """The records of a segment exactly as written, decoded with the schema in the file's
    own header (never resolved to a newer version: the entry hash covers what was
    written). DecodeError when the bytes are not a segment."""
    try:
        reader = fastavro.reader(io.BytesIO(data))
        return list(reader)  # type: ignore[arg-type]
    except Exception as exc:
        raise DecodeError(f"not a readable segment: {type(exc).__name__}: {exc}") from None
