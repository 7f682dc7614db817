"""Turning a raw Kafka record into an AuditEvent, or into a rejection reason.

The registry is asked once per schema id (cached). A registry that cannot be
reached raises TransportError, which the sealer retries: a transient outage
must never turn good events into rejections.

Bodies are decoded under the writer schema's bounds (``decode_max_depth``,
``decode_max_items``; sealtrail.core.avro_bounds): a record or a writer schema beyond them
is rejected as LIMIT, whatever its bytes claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sealtrail.core.avro import AvroCodec, SchemaMismatchError, unframe
from sealtrail.core.avro_bounds import LimitError
from sealtrail.core.envelope import check_event
from sealtrail.errors import DecodeError, EventValidationError
from sealtrail.schemas.cache import UnknownSchemaError, WriterSchemas

__all__ = ["Decoded", "RawDecoder", "Rejected"]


@dataclass(frozen=True)
class Decoded:
    event: dict[str, Any]
    schema_id: int


@dataclass(frozen=True)
class Rejected:
    reason: str  # one of RejectReason in SealedRecord
    detail: str
    schema_id: int | None = None


class RawDecoder:
    """Decodes Confluent-framed AuditEvents written with any registered writer schema,
    resolved to ``reader`` (the newest AuditEvent)."""

    def __init__(self, writers: WriterSchemas, reader: AvroCodec, *, max_bytes: int) -> None:
        self._writers = writers
        self._reader = reader
        self._max_bytes = max_bytes

    def decode(self, value: bytes | None) -> Decoded | Rejected:
        """The event in ``value``, or why it is rejected. Raises only TransportError."""
        if value is None:
            return Rejected("UNDECODABLE", "empty record (no value)")
        if len(value) > self._max_bytes:
            return Rejected("OVERSIZE", f"record of {len(value)} bytes exceeds the limit of "
                            f"{self._max_bytes} bytes")
        try:
            schema_id, body = unframe(value)
        except DecodeError as exc:
            return Rejected("UNDECODABLE", str(exc))
        try:
            writer = self._writers.codec(schema_id)
        except UnknownSchemaError as exc:
            return Rejected("UNKNOWN_SCHEMA", str(exc), schema_id)
        except LimitError as exc:
            return Rejected("LIMIT", f"{exc} (rule {exc.rule})", schema_id)
        try:
            event = self._reader.decode(body, writer)
        except LimitError as exc:
            return Rejected("LIMIT", f"schema id {schema_id}: {exc} (rule {exc.rule})",
                            schema_id)
        except SchemaMismatchError as exc:
            return Rejected("INVALID", f"schema id {schema_id}: {exc}", schema_id)
        except DecodeError as exc:
            return Rejected("UNDECODABLE", f"schema id {schema_id}: {exc}", schema_id)
        if not isinstance(event, dict):
            return Rejected("INVALID", f"schema id {schema_id} does not describe an AuditEvent",
                            schema_id)
        try:
            check_event(event)
        except EventValidationError as exc:
            return Rejected("INVALID", str(exc), schema_id)
        return Decoded(event, schema_id)
