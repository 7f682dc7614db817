"""The canonical JSON serializer: the one function whose bytes are hashed and signed."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.core.canonical import ENTRY_FIELDS, canonical_json, entry_body

# Values canonical_json accepts: str-keyed dicts, lists, str, int, bool, bytes, None.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.text(max_size=12)
    | st.binary(max_size=12)
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)
dicts = st.dictionaries(st.text(max_size=6), values, max_size=6)


def _reordered(value: Any, rnd: random.Random) -> Any:
    """A deep copy of ``value`` whose dicts were built in a shuffled key order."""
    if isinstance(value, dict):
        keys = list(value)
        rnd.shuffle(keys)
        return {k: _reordered(value[k], rnd) for k in keys}
    if isinstance(value, list):
        return [_reordered(v, rnd) for v in value]
    return value


def _plain(value: Any) -> Any:
    """What json.loads should give back: bytes as lowercase hex, tuples as lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def _assert_keys_sorted(data: bytes) -> None:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        # Python compares str by code point, which is the order the format specifies.
        assert keys == sorted(keys), keys
        return dict(pairs)

    json.loads(data, object_pairs_hook=hook)


@settings(max_examples=150, deadline=None)
@given(value=dicts, seed=st.integers(0, 2**32))
def test_independent_of_dict_insertion_order(value: dict[str, Any], seed: int) -> None:
    """The same mapping built in any key order gives byte-identical canonical JSON."""
    shuffled = _reordered(value, random.Random(seed))
    assert canonical_json(shuffled) == canonical_json(value)


@settings(max_examples=150, deadline=None)
@given(value=values)
def test_deterministic(value: Any) -> None:
    """Serialising the same value twice gives the same bytes."""
    assert canonical_json(value) == canonical_json(value)


@settings(max_examples=200, deadline=None)
@given(value=values)
def test_round_trips_through_json_loads(value: Any) -> None:
    """json.loads of the canonical bytes gives the value back, with bytes as lowercase hex."""
    data = canonical_json(value)
    assert json.loads(data.decode("utf-8")) == _plain(value)


@settings(max_examples=150, deadline=None)
@given(value=values)
def test_keys_sorted_and_no_whitespace(value: Any) -> None:
    """Every object's keys are sorted and the bytes equal the compact sorted re-serialisation."""
    data = canonical_json(value)
    _assert_keys_sorted(data)
    compact = json.dumps(
        json.loads(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
    assert data == compact


@settings(deadline=None)
@given(number=st.floats(allow_nan=True, allow_infinity=True))
def test_rejects_float_at_top_level(number: float) -> None:
    """A float (including NaN and infinities) has no canonical form and raises TypeError."""
    with pytest.raises(TypeError, match="float"):
        canonical_json(number)


@settings(deadline=None)
@given(number=st.floats(), where=st.sampled_from(["dict", "list", "deep"]))
def test_rejects_nested_float(number: float, where: str) -> None:
    """A float anywhere inside the value is refused, not silently written as a decimal."""
    value = {"dict": {"a": number}, "list": [1, number], "deep": {"a": [{"b": number}]}}[where]
    with pytest.raises(TypeError, match="float"):
        canonical_json(value)


@pytest.mark.parametrize("key", [1, 2.0, None, b"k", True, (1, 2)])
def test_rejects_non_string_keys(key: Any) -> None:
    """Object keys must be strings: json would coerce them and sort numbers out of order."""
    with pytest.raises(TypeError, match="keys must be strings"):
        canonical_json({"ok": 1, "nested": {key: 1}})


@pytest.mark.parametrize("value", [{1, 2}, object(), 1j, frozenset()])
def test_rejects_unsupported_types(value: Any) -> None:
    """Types without a canonical form (sets, arbitrary objects, complex) raise TypeError."""
    with pytest.raises(TypeError):
        canonical_json({"v": value})


def test_key_order_is_code_point_order() -> None:
    """Keys sort by code point: uppercase before lowercase, U+FFFF before U+10000 (not UTF-16)."""
    value = {"\U00010000": 1, "\uffff": 2, "b": 3, "B": 4, "é": 5, "a": 6, "": 7}
    expected = '{"":7,"B":4,"a":6,"b":3,"é":5,"\uffff":2,"\U00010000":1}'
    assert canonical_json(value) == expected.encode("utf-8")


def test_exact_bytes_of_scalars_and_escapes() -> None:
    """Pins the encoding of every kind of scalar and of string escapes."""
    value = {
        "bytes": b"\x00\xab\xff",
        "empty_bytes": b"",
        "false": False,
        "int": -12345678901234567890,
        "list": [None, True, 0],
        "text": 'é日\U0001f600"\\/\n\t\r\b\f\x00\x1f\x7f\u2028',
    }
    expected = (
        '{"bytes":"00abff","empty_bytes":"","false":false,"int":-12345678901234567890,'
        '"list":[null,true,0],'
        '"text":"é日\U0001f600\\"\\\\/\\n\\t\\r\\b\\f\\u0000\\u001f\x7f\u2028"}'
    )
    assert canonical_json(value) == expected.encode("utf-8")


def test_bytes_like_values_are_hex() -> None:
    """bytearray and memoryview serialise exactly as the bytes they hold."""
    assert canonical_json([bytearray(b"\x01\x02"), memoryview(b"\xfe")]) == b'["0102","fe"]'


def test_tuples_serialise_as_lists() -> None:
    """A tuple gives the same bytes as the equal list."""
    assert canonical_json({"t": (1, "a", None)}) == canonical_json({"t": [1, "a", None]})


def test_output_is_utf8_not_ascii_escaped() -> None:
    """Non-ASCII characters are written literally in UTF-8, not as \\u escapes."""
    assert canonical_json("ü") == "\"ü\"".encode()
    assert b"\\u00fc" not in canonical_json("ü")


def test_entry_body_is_exactly_the_covered_fields() -> None:
    """entry_body keeps the eleven covered fields and leaves out entry_hash and signature."""
    record: dict[str, Any] = {name: f"v-{name}" for name in ENTRY_FIELDS}
    record.update(entry_hash=b"h", signature=b"s", extra="ignored")
    body = entry_body(record)
    assert list(body) == list(ENTRY_FIELDS)
    assert body == {name: f"v-{name}" for name in ENTRY_FIELDS}
    assert ENTRY_FIELDS == (
        "chain_id", "seq", "epoch", "kind", "event", "rejection", "redaction",
        "ingested_at", "source", "prev_hash", "key_id",
    )


@pytest.mark.parametrize("missing", ENTRY_FIELDS)
def test_entry_body_requires_every_field(missing: str) -> None:
    """A record missing any covered field cannot be hashed (KeyError names the field)."""
    record = {name: 0 for name in ENTRY_FIELDS if name != missing}
    with pytest.raises(KeyError, match=missing):
        entry_body(record)


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "\udc00\ud800"])
def test_rejects_lone_surrogates(text: str) -> None:
    """A string holding a lone surrogate has no UTF-8 form, so canonical_json refuses it."""
    with pytest.raises(UnicodeEncodeError):
        canonical_json({"k": text})
    with pytest.raises(UnicodeEncodeError):
        canonical_json({text: 1})
