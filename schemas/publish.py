"""Publishing the schemas shipped in schemas/ to a Confluent-compatible registry.

Each subject first gets its compatibility level (``sealtrail.schemas.COMPATIBILITY``), then
every version in order, oldest first, so the registry checks each against its
predecessors exactly as ``sealtrail schemas check`` did. Registering a version that is
already there returns its id again, so publishing is idempotent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from sealtrail.errors import DataError, TransportError

__all__ = ["IncompatibleSchemaError", "Published", "publish"]

HTTP_CONFLICT = 409


class IncompatibleSchemaError(DataError):
    """The registry refused a version as incompatible with what the subject already holds."""


@dataclass(frozen=True)
class Published:
    """One schema version as the registry holds it."""

    subject: str
    label: str
    schema_id: int
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "label": self.label, "id": self.schema_id,
                "version": self.version}


def publish(
    client: SchemaRegistryClient,
    plan: Sequence[tuple[str, str, Sequence[tuple[str, dict[str, Any]]]]],
    *,
    set_level: bool = True,
) -> list[Published]:
    """Register ``plan`` (``(subject, level, [(label, schema), ...])``) in order.

    Raises IncompatibleSchemaError when the registry answers 409 (the subject holds versions
    these do not keep the level with) and TransportError for anything else it refuses or
    when it cannot be reached.
    """
    done: list[Published] = []
    for subject, level, versions in plan:
        if set_level:
            _call(f"setting the level of {subject}", client.set_compatibility,
                  subject_name=subject, level=level)
        for label, schema in versions:
            text = json.dumps(schema, separators=(",", ":"))
            try:
                schema_id = int(client.register_schema(subject, Schema(text, "AVRO")))
            except SchemaRegistryError as exc:
                if exc.http_status_code == HTTP_CONFLICT:
                    raise IncompatibleSchemaError(
                        f"registry refused {label} for subject {subject} as incompatible: "
                        f"{exc.error_message}") from None
                raise TransportError(f"registry refused {label} for subject {subject}: "
                                     f"{exc}") from None
            except Exception as exc:  # httpx connection errors and the like
                raise TransportError(f"registry unreachable while registering {label} for "
                                     f"{subject}: {type(exc).__name__}") from None
            found = _call(f"looking up {label} in {subject}", client.lookup_schema,
                          subject, Schema(text, "AVRO"))
            done.append(Published(subject, label, schema_id, int(found.version or 0)))
    return done


def _call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except SchemaRegistryError as exc:
        raise TransportError(f"registry refused {what}: {exc}") from None
    except Exception as exc:
        raise TransportError(f"registry unreachable while {what}: {type(exc).__name__}") \
            from None
