"""The native canonical JSON encoder (sealtrail/core/_canonical_native.c) against the
Python reference (json with sort_keys, ensure_ascii=False): byte for byte on the golden
vectors, the spec's examples and random values over the whole of Unicode (code point key
order, not UTF-16's); and whatever it does not take goes to the reference, so
canonical_json gives the reference's bytes or its error for any value at all."""

from __future__ import annotations

import enum
import json
from typing import Any

import pytest
from helpers.paths import TESTS
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.core import canonical
from sealtrail.core.canonical import canonical_json, entry_body, reference_canonical_json

native = canonical._native
pytestmark = pytest.mark.skipif(
    native is None,
    reason="the native canonical JSON encoder (sealtrail.core._canonical_native) is not "
    "built: reinstall sealtrail where a C compiler and the Python headers are present")

VECTORS = TESTS / "vectors" / "entry_v1.json"


def outcome(f: Any, value: Any) -> tuple[str, Any]:
    try:
        return "ok", f(value)
    except Exception as exc:
        return "error", (type(exc), str(exc))


def by_native(value: Any) -> bytes | None:
    try:
        found: bytes = native(value)  # type: ignore[misc]
    except ValueError:
        return None
    return found


# Every code point but the surrogates, weighted to the places where encoders go wrong:
# controls, quote and backslash, DEL and C1, U+2028/9, the top of the BMP, astral planes.
tricky = st.sampled_from(["\x00", "\x08", "\t", "\n", "\x0b", "\x0c", "\r", "\x1f", '"', "\\",
                          "/", "\x7f", "\x80", "\x9f", "\u00e9", "\u2028", "\u2029",
                          "\ud7ff", "\ue000", "\ufeff", "\uffff", "\U00010000",
                          "\U0001f600", "\U0010ffff"])
texts = st.lists(tricky | st.characters(exclude_categories=("Cs",)), max_size=10).map("".join)
scalars = (st.none() | st.booleans() | st.integers() | st.integers(-(2**70), 2**70)
           | texts | st.binary(max_size=10))
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5)
    | st.lists(children, max_size=3).map(tuple)
    | st.dictionaries(texts, children, max_size=6),
    max_leaves=30,
)


@settings(max_examples=1000, deadline=None)
@given(value=values)
def test_native_bytes_are_the_reference_bytes(value: Any) -> None:
    """For the whole value model the native encoder answers, and its bytes are the
    reference's."""
    found = by_native(value)
    assert found is not None, value
    assert found == reference_canonical_json(value)
    assert canonical_json(value) == found


@settings(max_examples=300, deadline=None)
@given(keys=st.lists(texts, min_size=2, max_size=12, unique=True))
def test_keys_in_code_point_order(keys: list[str]) -> None:
    found = by_native({k: 0 for k in reversed(keys)})
    assert found is not None
    assert list(json.loads(found)) == sorted(keys)  # Python orders str by code point


def test_code_point_order_is_not_utf16_order() -> None:
    """U+E000 before U+1F600 (code points), where UTF-16 order would put it after."""
    assert by_native({"\U0001f600": 1, "\ue000": 2}) == '{"\ue000":2,"\U0001f600":1}'.encode()


def test_spec_example_and_escapes() -> None:
    """docs/format.md's example, and the escape table: short escapes, lowercase \\u00XX,
    nothing else escaped."""
    value = {"b": 1, "a": b"\x00\xff", "\u00e9": None, "c": ['tab\t"q"', -5]}
    assert by_native(value) == '{"a":"00ff","b":1,"c":["tab\\t\\"q\\"",-5],"é":null}'.encode()
    text = "".join(chr(c) for c in range(0x20)) + '"\\/\x7f\u2028'
    expected = ('"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b'
                '\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017'
                '\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\\"\\\\/\x7f\u2028"')
    assert by_native(text) == expected.encode()
    assert by_native([True, False, None, 0, -(2**63), 2**64]) == (
        b"[true,false,null,0,-9223372036854775808,18446744073709551616]")


def test_long_strings_with_escapes_at_every_position() -> None:
    """The eight-bytes-at-a-time scan: a special character at each offset of a long run."""
    for special in ('"', "\\", "\n", "\x1f", "\u00e9", "\U0001f600"):
        for at in range(20):
            text = "a" * at + special + "b" * (19 - at)
            assert by_native(text) == reference_canonical_json(text)


def test_golden_vectors() -> None:
    """Each golden entry's canonical text, from the native encoder itself."""
    doc = json.loads(VECTORS.read_text(encoding="utf-8"))
    for entry in doc["entries"]:
        record = _unhex(entry["record"])
        assert by_native(entry_body(record)) == entry["canonical_json"].encode("utf-8")


def _unhex(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    for name in ("prev_hash", "entry_hash", "signature"):
        out[name] = bytes.fromhex(record[name])
    if record.get("rejection"):
        out["rejection"] = {**record["rejection"],
                            "raw_sha256": bytes.fromhex(record["rejection"]["raw_sha256"])}
    return out


class Colour(enum.IntEnum):
    RED = 1


class Text(str):
    pass


class Mapping(dict):  # type: ignore[type-arg]
    pass


def _circular() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


def _deep(n: int) -> Any:
    value: Any = "x"
    for _ in range(n):
        value = [value]
    return value


ODD = [1.5, float("nan"), [1, 2.0], {"a": {"b": 0.1}}, {1: "x"}, {"a": 1, 2: "b"},
       {None: 1}, "\ud800", {"\udfff": 1}, ["ok", "\ud83d"], Text("x"), {"k": Text("x")},
       Mapping(a=1), [Mapping()], Colour.RED, {"c": Colour.RED}, bytearray(b"\x01"),
       memoryview(b"\x02"), {"m": memoryview(b"ab")}, object(), {1.5: 2}, _circular(),
       _deep(90), _deep(150), _deep(5000), {"ok": [1, {"x": (2, float("inf"))}]}]


@pytest.mark.parametrize("value", ODD, ids=range(len(ODD)))
def test_anything_else_gets_the_reference_answer_or_error(value: Any) -> None:
    """Floats, subclasses, non-string keys, lone surrogates, bytearray and memoryview,
    circular and very deep values: canonical_json answers exactly as the reference does,
    bytes or exception (type and message)."""
    assert outcome(canonical_json, value) == outcome(reference_canonical_json, value)


def test_native_declines_what_it_does_not_take() -> None:
    """It never guesses: a float, a subclass, a non-string key or a lone surrogate anywhere
    makes it decline (ValueError), so the reference decides."""
    for value in [1.5, {"a": [0.5]}, Text("x"), Mapping(), {1: 2}, "\ud800", {"\ud800": 1},
                  Colour.RED, bytearray(), _circular()]:
        with pytest.raises(ValueError):
            native(value)  # type: ignore[misc]
