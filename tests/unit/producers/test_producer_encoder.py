"""The producer's compiled Avro encoder writes exactly fastavro's bytes, and anything it
does not take (odd types, missing keys, out-of-range numbers) goes to fastavro, which
decides as it did before: same bytes or the same clear error."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail import schemas
from sealtrail.core.avro import AvroCodec
from sealtrail.errors import EventValidationError
from sealtrail.producers.avro_encoder import UnsupportedSchemaError, compile_encoder
from sealtrail.producers.envelope import encode_event

CODEC = AvroCodec(schemas.load(schemas.AUDIT_EVENT))
FAST = compile_encoder(CODEC.schema)

text = st.text(min_size=1, max_size=40)
maybe = st.none() | st.text(max_size=30)
events = st.fixed_dictionaries({
    "event_id": text, "event_type": text, "action": text,
    "occurred_at": st.integers(-(1 << 63), (1 << 63) - 1),
    "actor": st.fixed_dictionaries({"id": text, "type": text, "principal": maybe,
                                    "on_behalf_of": maybe, "display_name": maybe,
                                    "email": maybe}),
    "origin": st.fixed_dictionaries({
        "service": text, "instance": text, "service_version": maybe, "environment": maybe,
        "source_ip": maybe, "user_agent": maybe, "request_id": maybe, "trace_id": maybe}),
    "resource": st.fixed_dictionaries({"type": text, "id": st.text(max_size=5000)}),
    "outcome": st.sampled_from(["SUCCESS", "FAILURE", "DENIED", "ERROR", "UNKNOWN"]),
    "reason": maybe,
    "authorization": st.none() | st.fixed_dictionaries({
        "decision": st.sampled_from(["ALLOW", "DENY", "NOT_EVALUATED"]), "policy": maybe,
        "permissions": st.lists(st.text(max_size=20), max_size=70)}),
    "tenant": maybe, "session_id": maybe,
    "classification": st.sampled_from(["PUBLIC", "INTERNAL", "CONFIDENTIAL", "RESTRICTED",
                                       "PII", "PHI", "PCI"]),
    "attributes": st.dictionaries(st.text(max_size=10), st.text(max_size=300), max_size=70),
})


@settings(max_examples=300, deadline=None)
@given(events)
def test_the_compiled_encoder_writes_fastavros_bytes(event: dict[str, Any]) -> None:
    assert FAST(event) == CODEC.encode(event)


@pytest.mark.parametrize("version", schemas.versions(schemas.AUDIT_EVENT))
def test_every_audit_event_version_compiles(version: int) -> None:
    codec = AvroCodec(schemas.load(schemas.AUDIT_EVENT, version))
    event = sample()
    if version < 3:
        del event["actor"]["display_name"], event["actor"]["email"]
    if version == 1:
        del event["session_id"]
        del event["actor"]["on_behalf_of"]
    assert compile_encoder(codec.schema)(event) == codec.encode(event)


def sample() -> dict[str, Any]:
    return {
        "event_id": "e-1", "event_type": "record.read", "action": "read",
        "occurred_at": 1_700_000_000_000_000,
        "actor": {"id": "u-1", "type": "user", "principal": "sub-1", "on_behalf_of": None,
                  "display_name": "Ada L.", "email": None},
        "origin": {"service": "billing", "instance": "h:1", "service_version": "1.2",
                   "environment": None, "source_ip": "203.0.113.7", "user_agent": None,
                   "request_id": "r-1", "trace_id": None},
        "resource": {"type": "invoice", "id": "inv-9"}, "outcome": "SUCCESS", "reason": None,
        "authorization": {"decision": "ALLOW", "policy": "p", "permissions": ["a", "é"]},
        "tenant": "t", "session_id": None, "classification": "INTERNAL",
        "attributes": {"ticket": "T-1", "ü": "\u2603"},
    }


class Text(str):
    """A str subclass: fastavro takes it, the compiled encoder leaves it to fastavro."""


@pytest.mark.parametrize("change", [
    lambda e: e["authorization"].__setitem__("permissions", ("a", "b")),  # a tuple
    lambda e: e["resource"].__setitem__("id", Text("inv-9")),
    lambda e: e.__setitem__("occurred_at", True),
    lambda e: e.__delitem__("tenant"),  # a missing optional field: fastavro's default
    lambda e: e["origin"].__setitem__("extra", "ignored by both"),
])
def test_values_the_encoder_does_not_take_are_encoded_by_fastavro(change: Any) -> None:
    event = sample()
    change(event)
    expected = CODEC.encode(copy.deepcopy(event))
    try:
        fast: bytes | None = FAST(event)
    except Exception:
        fast = None
    assert fast in (None, expected)
    assert encode_event(CODEC, event, strict=False, checked=True, max_bytes=1 << 20,
                        fast=FAST) == expected


@pytest.mark.parametrize("change, field", [
    (lambda e: e.__setitem__("occurred_at", 1 << 64), "occurred_at"),
    (lambda e: e.__setitem__("outcome", "MAYBE"), "outcome"),
    (lambda e: e["actor"].__setitem__("principal", 5), "actor.principal"),
    (lambda e: e["attributes"].__setitem__("k", None), "attributes"),
    (lambda e: e["resource"].__setitem__("id", "\ud800"), "(event)"),
])
def test_bad_values_still_get_the_error_naming_the_field(change: Any, field: str) -> None:
    event = sample()
    change(event)
    with pytest.raises(EventValidationError) as exc:
        encode_event(CODEC, event, strict=False, checked=True, max_bytes=1 << 20, fast=FAST)
    assert exc.value.field.startswith(field)


def test_schemas_it_does_not_cover_are_refused_at_compile_time() -> None:
    with pytest.raises(UnsupportedSchemaError):
        compile_encoder({"type": "record", "name": "R", "fields": [
            {"name": "u", "type": ["null", "string", "long"]}]})
    with pytest.raises(UnsupportedSchemaError):
        compile_encoder({"type": "record", "name": "N", "fields": [
            {"name": "next", "type": ["null", "N"]}]})
