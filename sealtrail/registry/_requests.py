"""What the registry's REST API takes and how it refuses: the request body of a schema,
a version path segment, and :class:`RegistryError` (HTTP status plus Confluent
``error_code``), as the stock Confluent client expects them."""

from __future__ import annotations

from typing import Any

from sealtrail.errors import SealtrailError
from sealtrail.registry import _compat

__all__ = ["RegistryError", "parse_payload", "parse_version", "subject_not_found"]

_MAX_VERSION = 2**31 - 1


class RegistryError(SealtrailError):
    """An API error: HTTP status plus Confluent ``error_code`` and message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def subject_not_found(subject: str) -> RegistryError:
    """40401: the subject has no (matching) versions."""
    return RegistryError(404, 40401, f"Subject '{subject}' not found.")


def parse_version(raw: str) -> int | None:
    """Parse a version path segment: ``None`` means latest; bad input raises 42202."""
    if raw == "latest" or raw == "-1":
        return None
    if raw.isascii() and raw.isdigit() and len(raw) <= 10 and 1 <= int(raw) <= _MAX_VERSION:
        return int(raw)
    raise RegistryError(
        422,
        42202,
        f"The specified version '{raw[:64]}' is not a valid version id. "
        f'Allowed values are between [1, {_MAX_VERSION}] and the string "latest"',
    )


def parse_payload(body: Any) -> _compat.ParsedSchema:
    """Validate a register/lookup/compatibility request body and parse its schema."""
    if not isinstance(body, dict):
        raise RegistryError(422, 422, "Request body must be a JSON object")
    schema_type = body.get("schemaType") or "AVRO"
    if schema_type != "AVRO":
        raise RegistryError(
            422, 42201, f"Invalid schema: schemaType {schema_type!r} is not supported (AVRO only)"
        )
    if body.get("references"):
        raise RegistryError(422, 42201, "Invalid schema: schema references are not supported")
    if body.get("metadata") or body.get("ruleSet"):
        raise RegistryError(422, 42201, "Invalid schema: metadata/ruleSet are not supported")
    text = body.get("schema")
    if not isinstance(text, str) or not text.strip():
        raise RegistryError(422, 42201, "Invalid schema: 'schema' must be a non-empty string")
    try:
        return _compat.parse_schema(text)
    except _compat.InvalidSchemaError as exc:
        raise RegistryError(422, 42201, str(exc)) from None
