"""Turning a raw Kafka record into an AuditEvent, or into a rejection reason.

The registry is asked once per schema id (cached). A registry that cannot be
reached raises TransportError, which the sealer retries: a transient outage
must never turn good events into rejections.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from sealtrail.core.avro import AvroCodec, SchemaMismatchError, unframe
from sealtrail.core.envelope import check_event
from sealtrail.errors import DecodeError, EventValidationError, TransportError

__all__ = ["Decoded", "RawDecoder", "Rejected"]

SCHEMA_NOT_FOUND = 40403


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

    def __init__(
        self, registry: SchemaRegistryClient, reader: AvroCodec, *, max_bytes: int
    ) -> None:
        self._registry = registry
        self._reader = reader
        self._max_bytes = max_bytes
        self._writers: dict[int, AvroCodec | Rejected] = {}

    def _writer(self, schema_id: int) -> AvroCodec | Rejected:
        found = self._writers.get(schema_id)
        if found is not None:
            return found
        try:
            schema = self._registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.error_code == SCHEMA_NOT_FOUND or exc.http_status_code == 404:
                found = Rejected("UNKNOWN_SCHEMA", f"schema id {schema_id} is not registered",
                                 schema_id)
            else:
                raise TransportError(f"schema registry error for id {schema_id}: {exc}") from None
        except Exception as exc:
            raise TransportError(
                f"schema registry unreachable while resolving id {schema_id}: "
                f"{type(exc).__name__}"
            ) from None
        else:
            try:
                found = AvroCodec(json.loads(schema.schema_str))
            except Exception as exc:
                found = Rejected("UNKNOWN_SCHEMA", f"schema id {schema_id} is not a usable "
                                 f"Avro schema: {exc}", schema_id)
        if len(self._writers) > 10_000:
            self._writers.clear()
        self._writers[schema_id] = found
        return found

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
        writer = self._writer(schema_id)
        if isinstance(writer, Rejected):
            return writer
        try:
            event = self._reader.decode(body, writer)
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
