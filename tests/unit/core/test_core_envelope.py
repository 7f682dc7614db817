"""The AuditEvent envelope rules beyond the Avro schema, and logical-type stripping."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail import schemas
from sealtrail.core.envelope import (
    MAX_ID,
    MAX_TIME_US,
    MIN_TIME_US,
    check_event,
    strip_logical_types,
)
from sealtrail.errors import DataError, EventValidationError

REQUIRED_TEXT = ["event_id", "action", "actor.id", "actor.type", "origin.service",
                 "origin.instance", "resource.type", "resource.id"]


_MISSING = object()


def _event() -> dict[str, Any]:
    return {
        "event_id": "e-1", "event_type": "auth.login", "action": "login", "occurred_at": 1,
        "actor": {"id": "u1", "type": "user", "principal": None},
        "origin": {"service": "svc", "instance": "i1"},
        "resource": {"type": "session", "id": "s1"},
    }


def _with(path: str, value: Any) -> dict[str, Any]:
    event = _event()
    *parents, last = path.split(".")
    target = event
    for part in parents:
        target = target[part]
    if value is _MISSING:
        del target[last]
    else:
        target[last] = value
    return event


def test_valid_event_passes() -> None:
    """A complete event with a dotted type and a plausible time passes."""
    check_event(_event())


@pytest.mark.parametrize("path", REQUIRED_TEXT)
@pytest.mark.parametrize("value", [_MISSING, None, "", "   ", "\t\n", 42, "x" * (MAX_ID + 1)],
                         ids=["missing", "null", "empty", "spaces", "whitespace", "int",
                              "too-long"])
def test_required_text_fields(path: str, value: Any) -> None:
    """Each id field must be a non-blank string of at most MAX_ID characters; the error
    names the field."""
    with pytest.raises(EventValidationError) as caught:
        check_event(_with(path, value))
    assert caught.value.field == path
    assert path in str(caught.value)


@pytest.mark.parametrize("path", REQUIRED_TEXT)
def test_required_text_at_max_length_passes(path: str) -> None:
    """A value of exactly MAX_ID characters is accepted."""
    check_event(_with(path, "x" * MAX_ID))


def test_missing_parent_record_names_the_field() -> None:
    """A missing actor record is reported as actor.id, the first field it should hold."""
    event = _event()
    del event["actor"]
    with pytest.raises(EventValidationError) as caught:
        check_event(event)
    assert caught.value.field == "actor.id"


@pytest.mark.parametrize("event_type", ["auth.login", "a.b", "record.read_all", "x1.y2.z3",
                                        "admin.key.rotate", "a.0"])
def test_event_type_accepted(event_type: str) -> None:
    """Dotted lower-case types with at least two parts are accepted."""
    check_event(_with("event_type", event_type))


@pytest.mark.parametrize("event_type", [
    "login", "Auth.login", "auth.Login", "1auth.login", "auth..login", "auth.login.",
    ".auth.login", "auth login", "auth-x.login", "auth.login\n", "\nauth.login", "", None, 3,
    "_a.b", "auth.lögin",
])
def test_event_type_refused(event_type: Any) -> None:
    """Anything but a dotted lower-case type is refused, including a trailing newline."""
    with pytest.raises(EventValidationError) as caught:
        check_event(_with("event_type", event_type))
    assert caught.value.field == "event_type"


@pytest.mark.parametrize("occurred_at", [MIN_TIME_US, 0, MAX_TIME_US, -1])
def test_occurred_at_in_range(occurred_at: int) -> None:
    """Times from year 1 to year 9999 (inclusive) are accepted."""
    check_event(_with("occurred_at", occurred_at))


@pytest.mark.parametrize("occurred_at", [MIN_TIME_US - 1, MAX_TIME_US + 1, True, 1.0, "1",
                                         None, _MISSING])
def test_occurred_at_refused(occurred_at: Any) -> None:
    """Non-integers, booleans and times outside year 1..9999 are refused naming occurred_at."""
    with pytest.raises(EventValidationError) as caught:
        check_event(_with("occurred_at", occurred_at))
    assert caught.value.field == "occurred_at"


def test_validation_error_is_a_data_error_and_value_error() -> None:
    """EventValidationError carries field and detail and is both a DataError and ValueError."""
    error = EventValidationError("actor.id", "must be a non-empty string")
    assert isinstance(error, DataError) and isinstance(error, ValueError)
    assert (error.field, error.detail) == ("actor.id", "must be a non-empty string")
    assert str(error) == "invalid audit event: field 'actor.id': must be a non-empty string"


def _contains_key(value: Any, key: str) -> bool:
    if isinstance(value, dict):
        return key in value or any(_contains_key(v, key) for v in value.values())
    if isinstance(value, list):
        return any(_contains_key(v, key) for v in value)
    return False


@pytest.mark.parametrize("name", ["AuditEvent", "SealedRecord"])
def test_strip_logical_types_on_shipped_schemas(name: str) -> None:
    """Every logicalType is removed at any depth; the input is not modified."""
    schema = schemas.sealed_record() if name == "SealedRecord" else schemas.load(name)
    before = copy.deepcopy(schema)
    stripped = strip_logical_types(schema)
    assert _contains_key(schema, "logicalType")
    assert not _contains_key(stripped, "logicalType")
    assert schema == before


json_schemas = st.recursive(
    st.sampled_from(["string", "long", "null"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["type", "logicalType", "items", "name", "doc"]), inner,
                      max_size=4),
    max_leaves=15,
)


def _only_logical_removed(original: Any, stripped: Any) -> bool:
    if isinstance(original, dict):
        keys = [k for k in original if k != "logicalType"]
        return list(stripped) == keys and all(
            _only_logical_removed(original[k], stripped[k]) for k in keys
        )
    if isinstance(original, list):
        return len(original) == len(stripped) and all(
            _only_logical_removed(a, b) for a, b in zip(original, stripped, strict=True)
        )
    return bool(original == stripped)


@settings(deadline=None)
@given(schema=json_schemas)
def test_strip_logical_types_removes_only_logical_types(schema: Any) -> None:
    """strip_logical_types removes the logicalType keys and nothing else."""
    assert _only_logical_removed(schema, strip_logical_types(schema))


# -- the compiled rules agree with the rule-by-rule check ------------------------------------


class _Text(str):
    pass


class _Record(dict):  # type: ignore[type-arg]
    pass


_ODD = [_MISSING, None, "", " ", "\u3000", "\u00a0x", "x", "a" * MAX_ID, "a" * (MAX_ID + 1),
        _Text("x"), 7, True, b"x", ["x"], {"x": 1}, _Record(id="x", type="t"),
        "auth.login", "Auth.Login", "auth.login\n", "a.b.c", "a", MIN_TIME_US, MAX_TIME_US,
        MAX_TIME_US + 1, 1.0, 2**70]
_PATHS = [*REQUIRED_TEXT, "event_type", "occurred_at", "actor", "origin", "resource"]


@settings(max_examples=500, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(_PATHS), st.sampled_from(_ODD)),
                        max_size=4),
       as_record=st.booleans())
def test_compiled_rules_agree_with_each_rule(changes: list[tuple[str, Any]],
                                             as_record: bool) -> None:
    """The generated straight-line check passes an event exactly when every rule does."""
    from sealtrail.core.envelope import _check_each_rule, _meets_rules

    event: Any = _event()
    for path, value in changes:
        event = _with_event(event, path, value if value is _MISSING else copy.deepcopy(value))
    if as_record:
        event = _Record(event)
    try:
        _check_each_rule(event)
        passes = True
    except EventValidationError:
        passes = False
    subclassed = as_record or any(isinstance(v, _Text | _Record) for _, v in changes)
    if _meets_rules(event):
        assert passes
    elif not subclassed:  # only a subclass makes it doubt an event that meets the rules
        assert not passes
    if passes:
        check_event(event)
    else:
        with pytest.raises(EventValidationError):
            check_event(event)


def _with_event(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    node: Any = event
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        if value is _MISSING:
            node.pop(last, None)
        else:
            node[last] = value
    return event
