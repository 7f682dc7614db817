"""Segment files: Avro object container files of SealedRecords."""

from __future__ import annotations

import io
import json
import os
import zlib
from collections.abc import Sequence
from typing import Any

import fastavro

from sealtrail import schemas
from sealtrail.core.avro import AvroCodec
from sealtrail.core.envelope import strip_logical_types
from sealtrail.errors import DecodeError

__all__ = ["check_schema", "read_segment", "segment_bytes", "write_segment"]

_DEFAULT = strip_logical_types(schemas.sealed_record())


def write_segment(
    records: Sequence[dict[str, Any]],
    metadata: dict[str, str],
    schema: dict[str, Any] | None = None,
) -> bytes:
    """The bytes of a segment holding ``records`` written with ``schema`` (the schema they
    were sealed with; the current SealedRecord by default), deflate codec."""
    return segment_bytes(records, metadata, strip_logical_types(schema or _DEFAULT),
                         os.urandom(SYNC_SIZE))


SYNC_SIZE = 16
_SYNC_INTERVAL = 16_000  # fastavro's: a block ends with the record that reaches this size
_codecs: dict[str, AvroCodec] = {}


def segment_bytes(records: Sequence[dict[str, Any]], metadata: dict[str, str],
                  plain: dict[str, Any], sync: bytes) -> bytes:
    """What ``fastavro.writer(..., codec="deflate", sync_marker=sync)`` writes, byte for
    byte (tests/test_segments_write.py): the header from fastavro itself, the records
    encoded by the native codec (a fifth of fastavro's time: the archiver's flush, so the
    checkpoint latency), blocks cut and deflated as fastavro cuts and deflates them. Any
    record the native encoder does not take, and the whole segment is fastavro's."""
    parsed = fastavro.parse_schema(plain, _write_hint=False)
    buf = io.BytesIO()
    key = json.dumps(plain, sort_keys=True)
    codec = _codecs.get(key)
    if codec is None:
        codec = _codecs[key] = AvroCodec(plain)
        if len(_codecs) > 64:
            _codecs.clear()
    bodies = [codec.encode_native(r) for r in records]
    if any(b is None for b in bodies):
        fastavro.writer(buf, parsed, records, codec="deflate", metadata=metadata,
                        sync_marker=sync)
        return buf.getvalue()
    fastavro.writer(buf, parsed, [], codec="deflate", metadata=metadata, sync_marker=sync)
    out = [buf.getvalue()]
    block: list[bytes] = []
    size = 0
    for body in bodies:
        block.append(body)  # type: ignore[arg-type]
        size += len(body)  # type: ignore[arg-type]
        if size >= _SYNC_INTERVAL:
            out += _block(block, sync)
            block, size = [], 0
    if block:
        out += _block(block, sync)
    return b"".join(out)


def _block(bodies: list[bytes], sync: bytes) -> list[bytes]:
    data = zlib.compress(b"".join(bodies))[2:-1]  # raw deflate, as fastavro writes it
    return [_long(len(bodies)), _long(len(data)), data, sync]


def _long(n: int) -> bytes:
    """An Avro long (zig-zag, then base-128 varint) of a non-negative ``n``."""
    z = n << 1
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


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
