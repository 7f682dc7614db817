"""Segment files: Avro object container files of SealedRecords.

Segments are read from an archive that someone without the signing key may have written
(G3, G10), so reading one is bounded whatever its bytes: the container is parsed here
(header, blocks, sync markers) before any record is decoded; a block inflates to at most
:data:`MAX_BLOCK_BYTES`; the header's schema must be a SealedRecord (:func:`check_schema`)
whose decoding work is linear in the bytes (no recursive type, no array of zero-size items,
at most :data:`SCHEMA_LIMITS` deep: sealtrail never writes anything else). The native reader
(:mod:`sealtrail.archive.fast_segments`) takes its blocks from the same parser.
"""

from __future__ import annotations

import io
import json
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import fastavro

from sealtrail import schemas
from sealtrail.core.avro import AvroCodec
from sealtrail.core.avro_bounds import DecodeLimits, LimitError, read_long, shape
from sealtrail.core.envelope import strip_logical_types
from sealtrail.errors import DecodeError

__all__ = ["MAX_BLOCK_BYTES", "Container", "check_schema", "open_container", "read_segment",
           "segment_bytes", "write_segment"]

_DEFAULT = strip_logical_types(schemas.sealed_record())

MAGIC = b"Obj\x01"
SYNC_SIZE = 16
#: The most one block of a segment may inflate to. fastavro's writer closes a block at
#: about 16 kB, so a real block holds that plus one record (at most max_event_bytes).
MAX_BLOCK_BYTES = 64 * 1024 * 1024
MAX_HEADER_ENTRIES = 64
MAX_SCHEMA_BYTES = 1024 * 1024
#: How deep a segment's schema may nest (a SealedRecord with any AuditEvent is about 6).
SCHEMA_LIMITS = DecodeLimits(max_depth=32)


def write_segment(
    records: Sequence[dict[str, Any]],
    metadata: dict[str, str],
    schema: dict[str, Any] | None = None,
) -> bytes:
    """The bytes of a segment holding ``records`` written with ``schema`` (the schema they
    were sealed with; the current SealedRecord by default), deflate codec."""
    return segment_bytes(records, metadata, strip_logical_types(schema or _DEFAULT),
                         os.urandom(SYNC_SIZE))


_SYNC_INTERVAL = 16_000  # fastavro's: a block ends with the record that reaches this size
_codecs: dict[str, AvroCodec] = {}


def segment_bytes(records: Sequence[dict[str, Any]], metadata: dict[str, str],
                  plain: dict[str, Any], sync: bytes) -> bytes:
    """What ``fastavro.writer(..., codec="deflate", sync_marker=sync)`` writes, byte for
    byte (tests/unit/archive/test_segments_write.py): the header from fastavro itself, the records
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
    return [_varlong(len(bodies)), _varlong(len(data)), data, sync]


def _varlong(n: int) -> bytes:
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
    written). DecodeError when the bytes are not a segment or go beyond the bounds."""
    container = open_container(data)
    try:
        parsed = fastavro.parse_schema(container.schema, _write_hint=False)
        records: list[dict[str, Any]] = []
        for count, block in container.blocks:
            buf = io.BytesIO(block)
            for _ in range(count):
                records.append(fastavro.schemaless_reader(buf, parsed, None))  # type: ignore[arg-type]
            if buf.tell() != len(block):
                raise DecodeError(f"{len(block) - buf.tell()} bytes follow the last record "
                                  "of a block")
        return records
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(f"not a readable segment: {type(exc).__name__}: {exc}") from None


@dataclass(frozen=True)
class Container:
    """A parsed segment file: its header schema (checked), codec and inflated blocks as
    ``(record count, bytes)``."""

    schema_text: str
    schema: dict[str, Any]
    codec: str
    blocks: list[tuple[int, bytes]]


def open_container(data: bytes) -> Container:
    """Parse ``data`` as an Avro object container file of SealedRecords, inflating each
    block under :data:`MAX_BLOCK_BYTES`; DecodeError when it is not one."""
    if data[:4] != MAGIC:
        raise DecodeError("not a readable segment: not an Avro object container file")
    meta, at = _header(data)
    sync = data[at:at + SYNC_SIZE]
    at += SYNC_SIZE
    codec = meta.get("avro.codec", b"null").decode("ascii", "replace")
    if codec not in ("null", "deflate") or len(sync) != SYNC_SIZE:
        raise DecodeError(f"not a readable segment: codec {codec[:20]!r} (sealtrail writes "
                          "deflate)")
    text = meta.get("avro.schema")
    if text is None or len(text) > MAX_SCHEMA_BYTES:
        raise DecodeError("not a readable segment: no schema, or one over 1 MiB")
    try:
        schema = json.loads(text)
    except (ValueError, RecursionError):
        raise DecodeError("not a readable segment: its schema is not JSON") from None
    check_schema(schema)
    blocks = []
    while at < len(data):
        count, at = _long(data, at)
        size, at = _long(data, at)
        if count < 0 or size < 0 or at + size + SYNC_SIZE > len(data):
            raise DecodeError("not a readable segment: a block runs past the end of the file")
        raw = data[at:at + size]
        at += size
        if data[at:at + SYNC_SIZE] != sync:
            raise DecodeError("not a readable segment: a block's sync marker differs")
        at += SYNC_SIZE
        block = raw if codec == "null" else _inflate(raw)
        if count > len(block):  # every record takes bytes: a count that lies
            raise DecodeError(f"not a readable segment: a block of {len(block)} bytes "
                              f"claims {count} records")
        blocks.append((count, block))
    return Container(text.decode("utf-8", "replace"), schema, codec, blocks)


def _inflate(raw: bytes) -> bytes:
    """A raw deflate block inflated, at most :data:`MAX_BLOCK_BYTES`."""
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(raw, MAX_BLOCK_BYTES)
    except zlib.error as exc:
        raise DecodeError(f"not a readable segment: a block does not inflate: {exc}") from None
    if inflater.unconsumed_tail:
        raise DecodeError(f"not a readable segment: a block inflates to more than "
                          f"{MAX_BLOCK_BYTES} bytes")
    return out


def _header(data: bytes) -> tuple[dict[str, bytes], int]:
    """The header's metadata map and the position after it."""
    meta: dict[str, bytes] = {}
    at = 4
    while True:
        count, at = _long(data, at)
        if count == 0:
            return meta, at
        if count < 0:
            count = -count
            _size, at = _long(data, at)
        if len(meta) + count > MAX_HEADER_ENTRIES:
            raise DecodeError("not a readable segment: too many header entries")
        for _ in range(count):
            klen, at = _long(data, at)
            key, at = data[at:at + klen], _skip(data, at, klen)
            vlen, at = _long(data, at)
            meta[key.decode("utf-8", "replace")], at = data[at:at + vlen], _skip(data, at, vlen)


def _long(data: bytes, at: int) -> tuple[int, int]:
    try:
        return read_long(data, at)
    except DecodeError as exc:
        raise DecodeError(f"not a readable segment: {exc}") from None


def _skip(data: bytes, at: int, length: int) -> int:
    if not 0 <= length <= len(data) - at:
        raise DecodeError("not a readable segment: a length runs past the end of the file")
    return at + length


# Fields whose type no SealedRecord version may change: verification relies on them.
_FIXED = {f["name"]: strip_logical_types(f["type"]) for f in _DEFAULT["fields"]
          if f["name"] not in ("event", "rejection", "redaction", "source")}


def check_schema(schema: Any) -> None:
    """DecodeError unless the file's schema is a SealedRecord with the fixed fields, whose
    decoding is linear in the bytes (see the module docstring)."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise DecodeError("segment schema is not a record")
    fields_ = schema.get("fields")
    if not isinstance(fields_, list) or not all(isinstance(f, dict) for f in fields_):
        raise DecodeError("segment schema is not a record")
    fields = {f.get("name"): f.get("type") for f in fields_}
    for name, ftype in _FIXED.items():
        found = fields.get(name)
        if isinstance(ftype, dict) and isinstance(found, dict):
            same = ftype.get("symbols") == found.get("symbols")
        else:
            same = strip_logical_types(found) == ftype
        if not same:
            raise DecodeError(f"segment schema is not a SealedRecord: field {name!r} is "
                              f"{found!r:.200}, expected {ftype!r}")
    try:
        found_shape = shape(schema, SCHEMA_LIMITS)
    except LimitError as exc:
        raise DecodeError(f"segment schema is refused: {exc}") from None
    if not found_shape.linear:
        raise DecodeError("segment schema is refused: it has "
                          + (f"a recursive type ({', '.join(found_shape.recursive)})"
                             if found_shape.recursive else "an array of zero-size items at "
                             + ", ".join(found_shape.zero_size_arrays))
                          + ", which sealtrail never writes")
