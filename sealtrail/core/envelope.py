"""The AuditEvent envelope: rules beyond what its Avro schema can say, and the
schema helpers shared by the producer and the sealer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
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


# The fields that must hold a non-empty string, each with its path split once.
_REQUIRED_TEXT = tuple((path, tuple(path.split("."))) for path in (
    "event_id", "action", "actor.id", "actor.type", "origin.service", "origin.instance",
    "resource.type", "resource.id"))


def _required_text(event: Mapping[str, Any], path: str, parts: tuple[str, ...]) -> None:
    value: Any = event
    for part in parts:
        # (a dict is a Mapping: the exact type is checked first, as isinstance against an
        # abstract class costs more than the rest of the check)
        value = value.get(part) if type(value) is dict or isinstance(value, Mapping) else None
    if not isinstance(value, str) or not value.strip():
        raise EventValidationError(path, "must be a non-empty string")
    if len(value) > MAX_ID:
        raise EventValidationError(path, f"is {len(value)} characters long, at most {MAX_ID}")


def check_event(event: Mapping[str, Any]) -> None:
    """Raise EventValidationError (naming the field) unless ``event`` meets the envelope
    rules: non-empty ids, a dotted lower-case event type, a plausible timestamp.

    Messages name the field, the rule and the length and character classes of what was
    found, never the value itself: they end up in sealed rejections (WORM) and logs."""
    if _meets_rules(event):
        return
    _check_each_rule(event)


def _compile_rules() -> Callable[[Any], bool]:
    """Whether an event meets the envelope rules, as one straight-line function generated
    from the rules above: True only when every rule is met (the event, and the records on
    the way to each field, exact dicts; each text an exact str), False on any doubt, after
    which :func:`_check_each_rule` decides and names the field.
    tests/unit/core/test_core_envelope.py holds the two to the same verdict; a new kind of
    rule goes in both."""
    lines = ["def meets_rules(e):", "    try:", "        if type(e) is not dict: return False"]
    parents: dict[tuple[str, ...], str] = {(): "e"}
    for _, parts in _REQUIRED_TEXT:
        for depth in range(1, len(parts)):
            path = parts[:depth]
            if path not in parents:
                parents[path] = name = f"p{len(parents)}"
                lines.append(f"        {name} = {parents[path[:-1]]}[{path[-1]!r}]")
                lines.append(f"        if type({name}) is not dict: return False")
        lines.append(f"        v = {parents[parts[:-1]]}[{parts[-1]!r}]")
        lines.append("        if type(v) is not str or not v or len(v) > MAX_ID or v.isspace():"
                     " return False")
    lines += [
        "        t = e['event_type']",
        "        if type(t) is not str: return False",
        "        if t not in good_types:",
        "            if EVENT_TYPE.fullmatch(t) is None: return False",
        "            if len(good_types) < 4096: good_types.add(t)",
        "        o = e['occurred_at']",
        "        return type(o) is int and MIN_TIME_US <= o <= MAX_TIME_US",
        "    except Exception:  # a missing key, or anything odd: check rule by rule",
        "        return False",
    ]
    scope: dict[str, Any] = {"MAX_ID": MAX_ID, "EVENT_TYPE": EVENT_TYPE, "good_types": set(),
                             "MIN_TIME_US": MIN_TIME_US, "MAX_TIME_US": MAX_TIME_US}
    exec(compile("\n".join(lines) + "\n", "<envelope rules>", "exec"), scope)
    meets_rules: Callable[[Any], bool] = scope["meets_rules"]
    return meets_rules


_meets_rules = _compile_rules()


def _check_each_rule(event: Mapping[str, Any]) -> None:
    for path, parts in _REQUIRED_TEXT:
        _required_text(event, path, parts)
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
