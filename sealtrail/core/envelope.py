"""The AuditEvent envelope: rules beyond what its Avro schema can say, and the
schema helpers shared by the producer and the sealer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sealtrail.core.disclosure import describe_value
from sealtrail.errors import EventValidationError

__all__ = ["check_event", "strip_logical_types"]

# \Z, not $: "$" also matches before a trailing newline.
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+\Z")
MAX_ID = 256
# 0001-01-01 .. 9999-12-31 in microseconds since the epoch.
MIN_TIME_US = -62_135_596_800_000_000
MAX_TIME_US = 253_402_300_799_999_999


def _required_text(event: Mapping[str, Any], path: str) -> None:
    value: Any = event
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if not isinstance(value, str) or not value.strip():
        raise EventValidationError(path, "must be a non-empty string")
    if len(value) > MAX_ID:
        raise EventValidationError(path, f"is {len(value)} characters long, at most {MAX_ID}")


def check_event(event: Mapping[str, Any]) -> None:
    """Raise EventValidationError (naming the field) unless ``event`` meets the envelope
    rules: non-empty ids, a dotted lower-case event type, a plausible timestamp.

    Messages name the field, the rule and the length and character classes of what was
    found, never the value itself: they end up in sealed rejections (WORM) and logs."""
    for path in ("event_id", "action", "actor.id", "actor.type", "origin.service",
                 "origin.instance", "resource.type", "resource.id"):
        _required_text(event, path)
    event_type = event.get("event_type")
    if not isinstance(event_type, str) or not EVENT_TYPE.fullmatch(event_type):
        raise EventValidationError(
            "event_type", "must be a dotted lower-case type such as auth.login "
            f"(got {describe_value(event_type)})"
        )
    occurred_at = event.get("occurred_at")
    if not isinstance(occurred_at, int) or isinstance(occurred_at, bool):
        raise EventValidationError(
            "occurred_at", f"expected microseconds since the epoch (int), got "
            f"{type(occurred_at).__name__}"
        )
    if not MIN_TIME_US <= occurred_at <= MAX_TIME_US:
        raise EventValidationError(
            "occurred_at", "is out of range: must lie between 0001-01-01 and 9999-12-31 "
            f"(microseconds since the epoch, {'before' if occurred_at < 0 else 'after'} "
            "the epoch here)")


def strip_logical_types(schema: Any) -> Any:
    """A copy of ``schema`` without logicalType annotations.

    The binary encoding is unchanged; sealtrail reads and writes timestamps as plain
    integers (microseconds) so that canonical bytes never depend on datetime handling.
    """
    if isinstance(schema, list):
        return [strip_logical_types(s) for s in schema]
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    return schema
