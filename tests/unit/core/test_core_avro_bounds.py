"""Bounded Avro decoding (sealtrail.core.avro_bounds): what real writers encode always passes,
what claims more than the limits never reaches the decoder, and nothing takes long."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import fastavro
import pytest
from helpers.hostile_inputs import pad_writer_schema, zigzag
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail import schemas
from sealtrail.core.avro import AvroCodec
from sealtrail.core.avro_bounds import DecodeLimits, Guard, LimitError, shape
from sealtrail.errors import DecodeError

LIMITS = DecodeLimits(max_depth=8, max_items=50)

LINKED = {"type": "record", "name": "Node", "fields": [
    {"name": "v", "type": "long"}, {"name": "next", "type": ["null", "Node"]}]}
NULLS = {"type": "record", "name": "N", "fields": [
    {"name": "a", "type": {"type": "array", "items": "null"}},
    {"name": "m", "type": {"type": "map", "values": {"type": "array", "items": {
        "type": "record", "name": "Empty", "fields": []}}}},
    {"name": "f", "type": {"type": "array", "items": {"type": "fixed", "name": "Z",
                                                       "size": 0}}},
    {"name": "s", "type": "string"}]}


def encode(schema: dict[str, Any], value: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), value)
    return buf.getvalue()


def linked(depth: int) -> dict[str, Any] | None:
    node: dict[str, Any] | None = None
    for v in range(depth):
        node = {"v": v, "next": node}
    return node


def test_shapes_of_the_shipped_and_the_hostile_schemas() -> None:
    """sealtrail's own schemas are linear; array<null>, arrays of empty records and of
    zero-size fixed, and recursive records are not, and say where."""
    assert shape(schemas.load(schemas.AUDIT_EVENT), LIMITS).linear
    assert shape(schemas.sealed_record(), DecodeLimits()).linear
    assert shape(pad_writer_schema(), LIMITS).zero_size_arrays == ("pad",)
    assert shape(NULLS, LIMITS).zero_size_arrays == ("a", "m{}", "f")
    assert shape(LINKED, LIMITS).recursive == ("Node",)


def test_a_schema_nested_beyond_the_limit_is_refused_before_fastavro_sees_it() -> None:
    """Ten thousand nested arrays (fastavro recurses on them) are refused by depth."""
    deep: Any = "long"
    for _ in range(10_000):
        deep = {"type": "array", "items": deep}
    with pytest.raises(LimitError) as info:
        AvroCodec({"type": "record", "name": "D", "fields": [{"name": "d", "type": deep}]},
                  LIMITS)
    assert info.value.rule == "schema-depth"


@settings(max_examples=200, deadline=None)
@given(a=st.integers(0, 50), m=st.dictionaries(st.text(max_size=3), st.integers(0, 5),
                                               max_size=5), s=st.text(max_size=20))
def test_what_a_writer_encodes_within_the_limits_passes(
        a: int, m: dict[str, int], s: str) -> None:
    """No false alarm: any value of the zero-size-array schema within 50 items decodes."""
    value = {"a": [None] * a, "m": {k: [{}] * n for k, n in m.items()}, "f": [], "s": s}
    if a + len(m) + sum(m.values()) > LIMITS.max_items:
        return
    codec = AvroCodec(NULLS, LIMITS)
    assert codec.decode(encode(NULLS, value)) == value


@settings(max_examples=100, deadline=None)
@given(count=st.integers(51, 2**63 - 1), negative=st.booleans())
def test_a_block_claiming_too_many_zero_size_items_is_refused_at_once(
        count: int, negative: bool) -> None:
    """One block header claiming more items than the limit (as a positive count, or
    negative with a size) is refused without iterating a single item."""
    header = zigzag(-count) + zigzag(0) if negative else zigzag(count)
    body = header + b"\x00" + b"\x00" + b"\x00" + b"\x02s"
    with pytest.raises(LimitError) as info:
        AvroCodec(NULLS, LIMITS).decode(body)
    assert info.value.rule == "items" and "at a " in str(info.value)


def test_items_are_counted_across_blocks_and_levels() -> None:
    """Many small blocks and nested maps add up to one budget per datum."""
    body = (zigzag(10) * 6) + b"\x00" + b"\x00" + b"\x00" + b"\x02s"
    with pytest.raises(LimitError):
        AvroCodec(NULLS, LIMITS).decode(body)
    ok = (zigzag(10) * 5) + b"\x00" + b"\x00" + b"\x00" + b"\x02s"
    assert AvroCodec(NULLS, LIMITS).decode(ok)["a"] == [None] * 50


def test_recursion_deeper_than_the_limit_is_refused() -> None:
    """A linked list deeper than max_depth (data-chosen depth) is refused; a short one
    decodes; a record that contains itself without a union never terminates and is
    refused too."""
    codec = AvroCodec(LINKED, LIMITS)
    assert codec.decode(encode(LINKED, linked(3))) == linked(3)
    with pytest.raises(LimitError) as info:
        codec.decode(encode(LINKED, linked(100)))
    assert info.value.rule == "depth"
    forever = {"type": "record", "name": "R", "fields": [{"name": "r", "type": "R"}]}
    with pytest.raises(LimitError):
        AvroCodec(forever, LIMITS).decode(b"")


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=64))
def test_any_bytes_end_in_a_value_or_a_decode_error(body: bytes) -> None:
    """Random bytes under the hostile schemas: a value or a DecodeError, never another
    exception, never a hang."""
    for schema in (NULLS, LINKED, pad_writer_schema()):
        with contextlib.suppress(DecodeError):
            AvroCodec(schema, LIMITS).decode(body)


def test_guard_messages_never_quote_the_data() -> None:
    """A LimitError names the place and the numbers, not what the record holds."""
    schema = json.loads(json.dumps(NULLS))
    secret = "hunter2-secret"
    body = zigzag(10**9) + b"\x00" + b"\x00" + b"\x00" + zigzag(len(secret)) + secret.encode()
    with pytest.raises(LimitError) as info:
        Guard(schema, LIMITS).check(body)
    assert secret not in str(info.value)


def test_a_block_whose_stated_size_lies_is_refused() -> None:
    """A field the reader does not have is skipped by its blocks' stated sizes; a size that
    is not the items' size would send the decoder somewhere the walk never checked (there,
    a block claiming 2^61 empty records hangs fastavro given these bytes: found by fuzzing).
    Refused."""
    writer = {"type": "record", "name": "R", "fields": [
        {"name": "m", "type": {"type": "map", "values": {"type": "array", "items": {
            "type": "record", "name": "E", "fields": []}}}},
        {"name": "s", "type": "string"}]}
    reader = AvroCodec({"type": "record", "name": "R", "fields": [
        {"name": "s", "type": "string"}]})
    # The walk: one map entry, an array block of 3 empty records (stated size 3), the ends
    # of the array and the map, then s, a string whose bytes are a block header claiming
    # 2^61 empty records. A decoder skipping m jumps 3 bytes from the size: onto that header.
    hidden = zigzag(2**61)
    lying = (zigzag(1) + b"\x02k" + zigzag(-3) + zigzag(3) + b"\x00" + b"\x00"
             + zigzag(len(hidden)) + hidden)
    with pytest.raises(DecodeError, match="states"):
        reader.decode(lying, AvroCodec(writer, LIMITS))
    honest = zigzag(1) + b"\x02k" + zigzag(-3) + zigzag(0) + b"\x00" + b"\x00" + b"\x02s"
    assert reader.decode(honest, AvroCodec(writer, LIMITS)) == {"s": "s"}
