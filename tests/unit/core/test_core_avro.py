"""Avro encoding, the Confluent wire frame, and validation errors that name the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail import schemas
from sealtrail.core.avro import MAGIC, AvroCodec, SchemaMismatchError, frame, unframe
from sealtrail.errors import DecodeError, EventValidationError

EVENT = AvroCodec(schemas.load("AuditEvent", 1))
SEALED = AvroCodec(schemas.sealed_record(event_version=1))


def _event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "e-1", "event_type": "auth.login", "action": "login",
        "occurred_at": 1_700_000_000_000_000,
        "actor": {"id": "u1", "type": "user", "principal": "alice"},
        "origin": {"service": "svc", "instance": "i1", "service_version": "1.2",
                   "environment": None, "source_ip": "10.0.0.1", "user_agent": None,
                   "request_id": None, "trace_id": None},
        "resource": {"type": "session", "id": "s1"}, "outcome": "SUCCESS", "reason": None,
        "authorization": {"decision": "ALLOW", "policy": "p", "permissions": ["a", "b"]},
        "tenant": None, "classification": "INTERNAL", "attributes": {"k": "v"},
    }
    event.update(overrides)
    return event


def _sealed(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "chain_id": "c", "seq": 0, "epoch": 0, "kind": "EVENT", "event": _event(),
        "rejection": None, "redaction": {"policy_id": "p", "policy_version": 1, "fields": []},
        "ingested_at": 5, "source": {"topic": "raw", "partition": 0, "offset": 9,
                                     "schema_id": 1},
        "prev_hash": bytes(32), "entry_hash": b"\x01" * 32, "key_id": "k",
        "signature": b"\x02" * 64,
    }
    record.update(overrides)
    return record


# -- wire frame ----------------------------------------------------------------------


@settings(deadline=None)
@given(schema_id=st.integers(0, 2**32 - 1), body=st.binary(max_size=64))
def test_frame_round_trip(schema_id: int, body: bytes) -> None:
    """unframe(frame(id, body)) gives the id and body back; the header is 0 + 4-byte id."""
    data = frame(schema_id, body)
    assert data[:5] == bytes([MAGIC]) + schema_id.to_bytes(4, "big")
    got_id, got_body = unframe(data)
    assert (got_id, bytes(got_body)) == (schema_id, body)


@pytest.mark.parametrize("schema_id", [-1, 2**32])
def test_frame_refuses_ids_that_do_not_fit(schema_id: int) -> None:
    """A schema id outside 0..2**32-1 is refused with ValueError."""
    with pytest.raises(ValueError, match="4-byte"):
        frame(schema_id, b"")


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x00\x00\x00"])
def test_unframe_refuses_short_messages(data: bytes) -> None:
    """Fewer than 5 bytes is not a framed message."""
    with pytest.raises(DecodeError, match="shorter than the 5-byte header"):
        unframe(data)


@pytest.mark.parametrize("magic", [1, 0x7F, 0x80, 0xFF])
def test_unframe_refuses_wrong_magic(magic: int) -> None:
    """A first byte other than 0 is refused; the message does not quote it (it is the
    first byte of whatever was sent, and rejection details are sealed)."""
    with pytest.raises(DecodeError, match="not the magic byte 0") as caught:
        unframe(bytes([magic]) + bytes(8))
    assert str(magic) not in str(caught.value).replace("byte 0", "")


# -- encode / decode -----------------------------------------------------------------


def test_event_round_trip() -> None:
    """An event decodes to exactly what was encoded; timestamps stay integers."""
    event = _event()
    decoded = EVENT.decode(EVENT.encode(event))
    assert decoded == event
    assert isinstance(decoded["occurred_at"], int)


def test_sealed_record_round_trip_with_rejection() -> None:
    """A rejection record (no event, raw hash as bytes) round-trips through SealedRecord."""
    record = _sealed(kind="REJECTION", event=None, rejection={
        "reason": "UNDECODABLE", "detail": "bad", "raw_sha256": b"\x03" * 32, "raw_size": 7})
    assert SEALED.decode(SEALED.encode(record)) == record


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(1, 40))
def test_truncated_body_is_a_decode_error(cut: int) -> None:
    """A body missing its last bytes raises DecodeError, not a fastavro exception."""
    body = EVENT.encode(_event())
    with pytest.raises(DecodeError):
        EVENT.decode(body[:-cut])


def test_trailing_bytes_are_a_decode_error() -> None:
    """Bytes after a complete body are refused and counted."""
    body = EVENT.encode(_event())
    with pytest.raises(DecodeError, match="3 bytes follow the Avro body"):
        EVENT.decode(body + b"abc")


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=200))
def test_garbage_decodes_or_raises_decode_error(data: bytes) -> None:
    """Arbitrary bytes either decode to a valid event or raise DecodeError, nothing else."""
    try:
        record = EVENT.decode(data)
    except DecodeError:
        return
    EVENT.validate(record)


def test_decode_accepts_memoryview() -> None:
    """decode takes the memoryview that unframe returns."""
    _, body = unframe(frame(3, EVENT.encode(_event())))
    assert EVENT.decode(body) == _event()


def _schema_without(field: str) -> dict[str, Any]:
    schema: dict[str, Any] = copy.deepcopy(schemas.load("AuditEvent"))
    schema["fields"] = [f for f in schema["fields"] if f["name"] != field]
    return schema


def test_writer_without_optional_field_resolves_to_default() -> None:
    """Data from a writer lacking a field that has a default decodes with that default."""
    writer = AvroCodec(_schema_without("tenant"))
    event = _event()
    del event["tenant"]
    decoded = EVENT.decode(writer.encode(event), writer)
    assert decoded == {**event, "tenant": None}


def test_writer_without_required_field_is_schema_mismatch() -> None:
    """Data from a writer lacking a required reader field raises SchemaMismatchError."""
    writer = AvroCodec(_schema_without("action"))
    event = _event()
    del event["action"]
    with pytest.raises(SchemaMismatchError, match="cannot be read as AuditEvent"):
        EVENT.decode(writer.encode(event), writer)
    assert issubclass(SchemaMismatchError, DecodeError)


# -- validation ----------------------------------------------------------------------


def test_valid_records_pass_validation() -> None:
    """Valid events and sealed records pass validate()."""
    EVENT.validate(_event())
    SEALED.validate(_sealed())


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"event_id": None}, "event_id", "expected string, got NoneType"),
        ({"occurred_at": "now"}, "occurred_at", "expected long, got str"),
        ({"occurred_at": True}, "occurred_at", "expected long, got bool"),
        ({"occurred_at": 2**63}, "occurred_at", "does not fit in an Avro long"),
        ({"occurred_at": -(2**63) - 1}, "occurred_at", "does not fit in an Avro long"),
        ({"outcome": "MAYBE"}, "outcome", "is not one of .* \\(got str of 5 characters"),
        ({"actor": {"id": 1, "type": "user"}}, "actor.id", "expected string, got int"),
        ({"actor": {"type": "user"}}, "actor.id", "is required and missing"),
        ({"actor": "alice"}, "actor", "expected a Actor record"),
        ({"reason": 5}, "reason", "expected null or string"),
        ({"attributes": {"k": 1}}, "attributes.k", "expected string, got int"),
        ({"attributes": ["k"]}, "attributes", "expected a map"),
        ({"authorization": {"decision": "ALLOW", "policy": None, "permissions": [1]}},
         "authorization.permissions[0]", "expected string, got int"),
        ({"authorization": {"decision": "ALLOW", "policy": None, "permissions": "a"}},
         "authorization.permissions", "expected a list"),
        ({"colour": "red"}, "colour", "is not a field of AuditEvent"),
        ({"actor": {"id": "u", "type": "user", "nick": "al"}}, "actor.nick",
         "is not a field of Actor"),
        ({"authorization": {"decision": "DENY", "policy": None, "permissions": [], "why": ""}},
         "authorization.why", "is not a field of Authorization"),
    ],
)
def test_validation_names_the_field(change: dict[str, Any], field: str, message: str) -> None:
    """validate() raises EventValidationError whose field is the offending path."""
    event = _event(**change)
    with pytest.raises(EventValidationError, match=message) as caught:
        EVENT.validate(event)
    assert caught.value.field == field


def test_missing_required_top_level_field() -> None:
    """A missing required field is named."""
    event = _event()
    del event["action"]
    with pytest.raises(EventValidationError) as caught:
        EVENT.validate(event)
    assert caught.value.field == "action"
    assert caught.value.detail == "is required and missing"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"source": {"topic": "raw", "partition": 2**31, "offset": 0, "schema_id": None}},
         "source.partition"),
        ({"redaction": {"policy_id": "p", "policy_version": -(2**31) - 1, "fields": []}},
         "redaction.policy_version"),
        ({"seq": "0"}, "seq"),
        ({"prev_hash": "00" * 32}, "prev_hash"),
        ({"kind": "OTHER"}, "kind"),
        ({"event": _event(action=None)}, "event.action"),
        ({"event": _event(colour="red")}, "event.colour"),
        ({"source": {"topic": "raw", "partition": 0, "offset": 0, "host": "h"}},
         "source.host"),
    ],
)
def test_sealed_record_validation_names_the_field(change: dict[str, Any], field: str) -> None:
    """Sealed-record problems, including an int out of 32-bit range, name the field."""
    with pytest.raises(EventValidationError) as caught:
        SEALED.validate(_sealed(**change))
    assert caught.value.field == field


@pytest.mark.parametrize("value", [2**31 - 1, -(2**31)])
def test_int_range_boundaries_pass(value: int) -> None:
    """The extreme values of an Avro int are valid."""
    SEALED.validate(_sealed(source={"topic": "t", "partition": value, "offset": 0,
                                    "schema_id": None}))
