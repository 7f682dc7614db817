"""Writer schemas by registry id, fetched once and cached.

Sealed records are always decoded with the exact schema they were written with
(never resolved to a newer one), because the entry hash covers what was written.
"""

from __future__ import annotations

import json
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from sealtrail.core.avro import AvroCodec, unframe
from sealtrail.core.avro_bounds import DecodeLimits, LimitError
from sealtrail.errors import DecodeError, TransportError

__all__ = ["UnknownSchemaError", "WriterSchemas"]

SCHEMA_NOT_FOUND = 40403
MAX_CACHED = 10_000


class UnknownSchemaError(DecodeError):
    """The registry does not know the schema id, or it is not a usable Avro schema."""


class WriterSchemas:
    """Codecs for registry schema ids. Raises TransportError when the registry cannot be
    asked (retry later), UnknownSchemaError when it answers that the id is unknown,
    LimitError when the schema nests deeper than ``limits`` allow. Bytes are decoded under
    ``limits`` (:mod:`sealtrail.core.avro_bounds`): a registry's schemas are not trusted."""

    def __init__(self, registry: SchemaRegistryClient,
                 limits: DecodeLimits | None = None) -> None:
        self._registry = registry
        self._limits = limits or DecodeLimits()
        self._codecs: dict[int, AvroCodec | DecodeError] = {}

    def codec(self, schema_id: int) -> AvroCodec:
        found = self._codecs.get(schema_id)
        if found is None:
            found = self._fetch(schema_id)
            if len(self._codecs) >= MAX_CACHED:
                self._codecs.clear()
            self._codecs[schema_id] = found
        if isinstance(found, DecodeError):
            raise found
        return found

    def _fetch(self, schema_id: int) -> AvroCodec | DecodeError:
        try:
            schema = self._registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.error_code == SCHEMA_NOT_FOUND or exc.http_status_code == 404:
                return UnknownSchemaError(f"schema id {schema_id} is not registered")
            raise TransportError(f"schema registry error for id {schema_id}: {exc}") from None
        except Exception as exc:
            raise TransportError(
                f"schema registry unreachable while resolving id {schema_id}: "
                f"{type(exc).__name__}"
            ) from None
        try:
            return AvroCodec(json.loads(schema.schema_str), self._limits)
        except LimitError as exc:
            return LimitError(exc.rule, f"schema id {schema_id}: {exc}")
        except Exception as exc:
            return UnknownSchemaError(f"schema id {schema_id} is not a usable Avro schema: {exc}")

    def decode(self, value: bytes) -> tuple[Any, AvroCodec]:
        """A Confluent-framed message decoded with its own writer schema, and that codec."""
        schema_id, body = unframe(value)
        codec = self.codec(schema_id)
        return codec.decode(body), codec
