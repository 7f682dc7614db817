"""The native Avro codec (sealtrail/core/_avro_native.c via core/avro_program.py) against
fastavro, its reference: on random schemas and values, the same bytes when it encodes,
the same values (same types, same dict key order) when it decodes, resolution between
schema versions included; and whatever it does not take goes to fastavro, so AvroCodec
gives fastavro's bytes, values and errors for anything at all (damaged bytes, values of
the wrong type, subclasses, unions only fastavro can choose a branch of)."""

from __future__ import annotations

import io
import math
from typing import Any

import fastavro
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sealtrail import schemas
from sealtrail.core import avro_program
from sealtrail.core.avro import AvroCodec

pytestmark = pytest.mark.skipif(
    not avro_program.AVAILABLE,
    reason="the native Avro codec (sealtrail.core._avro_native) is not built: reinstall "
    "sealtrail where a C compiler and the Python headers are present")

PRIMITIVES = ["null", "boolean", "int", "long", "float", "double", "string", "bytes"]


# ---------------------------------------------------------------- references


def fastavro_bytes(codec: AvroCodec, value: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, codec.parsed, value)
    return buf.getvalue()


def fastavro_value(writer: AvroCodec, reader: AvroCodec, body: bytes) -> Any:
    return fastavro.schemaless_reader(io.BytesIO(body), writer.parsed, reader.parsed)


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types and the same dict key order all the way down (NaN equal
    to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def outcome(f: Any, *args: Any) -> tuple[str, Any]:
    """("ok", result) or ("error", (exception type, message))."""
    try:
        return "ok", f(*args)
    except Exception as exc:
        return "error", (type(exc), str(exc))


# ---------------------------------------------------------------- random schemas


@st.composite
def avro_types(draw: st.DrawFn, names: list[str], depth: int = 0) -> Any:
    kinds = [*PRIMITIVES, "enum", "fixed"]
    if depth < 3:
        kinds += ["array", "map", "record", "union", "union"]
    kind = draw(st.sampled_from(kinds))
    if kind in PRIMITIVES:
        return draw(st.sampled_from([kind, {"type": kind}]))
    if kind == "enum":
        names.append(f"E{len(names)}")
        symbols = draw(st.lists(st.from_regex(r"[A-Z][A-Z0-9_]{0,5}", fullmatch=True),
                                min_size=1, max_size=5, unique=True))
        return {"type": "enum", "name": names[-1], "symbols": symbols}
    if kind == "fixed":
        names.append(f"F{len(names)}")
        return {"type": "fixed", "name": names[-1], "size": draw(st.integers(0, 6))}
    if kind == "array":
        return {"type": "array", "items": draw(avro_types(names, depth + 1))}
    if kind == "map":
        return {"type": "map", "values": draw(avro_types(names, depth + 1))}
    if kind == "record":
        return draw(records(names, depth + 1))
    # a union: distinct unnamed types (int and long, float and double, string and an enum
    # may meet: only fastavro chooses between them), at most one named type
    branches = draw(st.lists(st.sampled_from(PRIMITIVES), min_size=1, max_size=4,
                             unique=True))
    if draw(st.booleans()):
        branches.append(draw(st.one_of(records(names, depth + 1),
                                       avro_types(names, 3).filter(
                                           lambda t: isinstance(t, dict)
                                           and t.get("type") in ("enum", "fixed")))))
    return draw(st.permutations(branches))


@st.composite
def records(draw: st.DrawFn, names: list[str], depth: int = 0) -> dict[str, Any]:
    names.append(f"R{len(names)}")
    name = names[-1]
    field_names = draw(st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True),
                                max_size=5, unique=True))
    return {"type": "record", "name": name,
            "fields": [{"name": f, "type": draw(avro_types(names, depth))}
                       for f in field_names]}


def values_of(t: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values fastavro writes for type ``t``."""
    if isinstance(t, list):
        return st.one_of(*[values_of(b, named) for b in t])
    if isinstance(t, str) and t not in PRIMITIVES:
        t = named[t]
    kind = t if isinstance(t, str) else t["type"]
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "int":
        return st.integers(-(2**31), 2**31 - 1)
    if kind == "long":
        return st.integers(-(2**63), 2**63 - 1)
    if kind == "float":
        return st.floats(width=32)
    if kind == "double":
        return st.floats()
    if kind == "string":
        return st.text(max_size=8)
    if kind == "bytes":
        return st.binary(max_size=8)
    if kind == "enum":
        return st.sampled_from(t["symbols"])
    if kind == "fixed":
        return st.binary(min_size=t["size"], max_size=t["size"])
    if kind == "array":
        return st.lists(values_of(t["items"], named), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=4), values_of(t["values"], named), max_size=3)
    named[t["name"]] = t
    return st.fixed_dictionaries({f["name"]: values_of(f["type"], named)
                                  for f in t["fields"]})


@st.composite
def schema_and_value(draw: st.DrawFn) -> tuple[dict[str, Any], Any]:
    schema = draw(records([]))
    return schema, draw(values_of(schema, {}))


def ambiguous(t: Any) -> bool:
    """Whether ``t`` holds a union whose values only fastavro assigns a branch to."""
    if isinstance(t, list):
        classes = [_class(b) for b in t]
        if len(set(classes)) < len(classes) or ("float" in classes and "int" in classes):
            return True
        return any(ambiguous(b) for b in t)
    if isinstance(t, dict):
        kind = t["type"]
        if kind == "record":
            return any(ambiguous(f["type"]) for f in t["fields"])
        if kind == "array":
            return ambiguous(t["items"])
        if kind == "map":
            return ambiguous(t["values"])
    return False


def _class(t: Any) -> str:
    kind = t if isinstance(t, str) else t["type"]
    return {"int": "int", "long": "int", "float": "float", "double": "float",
            "string": "str", "enum": "str", "bytes": "bytes", "fixed": "bytes",
            "record": "dict", "map": "dict"}.get(kind, kind)


# ---------------------------------------------------------------- encoding


@settings(max_examples=400, deadline=None)
@given(case=schema_and_value())
def test_encodes_what_fastavro_writes(case: tuple[dict[str, Any], Any]) -> None:
    schema, value = case
    codec = AvroCodec(schema)
    expected = fastavro_bytes(codec, value)
    native = codec.encode_native(value)
    if not ambiguous(schema):
        assert codec._encoder is not None
        assert native is not None, (schema, value)
    assert native is None or native == expected
    assert codec.encode(value) == expected


@settings(max_examples=400, deadline=None)
@given(case=schema_and_value())
def test_decodes_what_fastavro_reads(case: tuple[dict[str, Any], Any]) -> None:
    schema, value = case
    codec = AvroCodec(schema)
    body = fastavro_bytes(codec, value)
    decoder = codec._decoder(codec)
    assert decoder is not None
    found = decoder(body)
    assert found is not None, (schema, body)
    assert found[1] == len(body)
    assert same(found[0], fastavro_value(codec, codec, body))
    assert same(codec.decode(body), fastavro_value(codec, codec, body))


class Str(str):
    pass


class Dict(dict):  # type: ignore[type-arg]
    pass


ODD_VALUES = [True, False, 1, -1, 2**31, 2**63, -(2**63) - 1, 1.5, float("nan"), "x", Str("x"),
              "\ud800", b"ab", bytearray(b"ab"), None, [], [1], ("x",), {}, {"a": 1},
              Dict(a=1), {"-type": "R0"}, {1: "x"}, object()]


@settings(max_examples=300, deadline=None)
@given(case=schema_and_value(), data=st.data())
def test_any_value_gives_fastavro_bytes_or_its_error(case: tuple[dict[str, Any], Any],
                                                     data: st.DataObject) -> None:
    """Odd values in place of fields (subclasses, tuples, wrong types, out of range, lone
    surrogates, missing keys): AvroCodec.encode writes fastavro's bytes or raises its
    error, whatever the native encoder makes of them."""
    schema, value = case
    assume(schema["fields"])
    field = data.draw(st.sampled_from(schema["fields"]))["name"]
    damaged = dict(value)
    if data.draw(st.booleans()):
        del damaged[field]
    else:
        damaged[field] = data.draw(st.sampled_from(ODD_VALUES))
    codec = AvroCodec(schema)
    expected = outcome(fastavro_bytes, codec, damaged)
    native = codec.encode_native(damaged)
    if native is not None:
        assert expected == ("ok", native)
    assert outcome(codec.encode, damaged) == expected


# ---------------------------------------------------------------- damaged bytes


@settings(max_examples=400, deadline=None)
@given(case=schema_and_value(), data=st.data())
def test_damaged_bytes_decode_as_fastavro_decodes_them(case: tuple[dict[str, Any], Any],
                                                       data: st.DataObject) -> None:
    """Truncated, extended or altered bytes: the native decoder gives fastavro's value or
    gives up; AvroCodec.decode gives fastavro's value or raises what it always raised."""
    schema, value = case
    codec = AvroCodec(schema)
    body = bytearray(fastavro_bytes(codec, value))
    how = data.draw(st.sampled_from(["cut", "flip", "append", "insert"]))
    if how == "cut":
        assume(body)
        del body[data.draw(st.integers(0, len(body) - 1)):]
    elif how == "flip":
        assume(body)
        at = data.draw(st.integers(0, len(body) - 1))
        body[at] ^= data.draw(st.integers(1, 255))
    elif how == "append":
        body += data.draw(st.binary(min_size=1, max_size=4))
    else:
        at = data.draw(st.integers(0, len(body)))
        body[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    damaged = bytes(body)
    reference = outcome(fastavro_value, codec, codec, damaged)
    found = codec._decoder(codec)(damaged)  # type: ignore[misc]
    if found is not None and found[1] == len(damaged):
        assert reference[0] == "ok" and same(found[0], reference[1])
    result = outcome(codec.decode, damaged)
    if reference[0] == "ok" and result[0] == "ok":
        assert same(result[1], reference[1])
    else:  # fastavro failed: the codec says so, as it always did (DecodeError)
        assert (result[0] == "error" and reference[0] == "error") or (
            reference[0] == "ok" and result[0] == "error"  # trailing bytes are refused
            and "follow the Avro body" in result[1][1])


# ---------------------------------------------------------------- schema resolution


@st.composite
def evolved(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """(writer, reader, value): the reader drops some of the writer's fields and adds new
    ones with defaults, in nested records too."""
    writer = draw(records([]))
    value = draw(values_of(writer, {}))
    return writer, draw(_evolve(writer)), value


@st.composite
def _evolve(draw: st.DrawFn, record: dict[str, Any]) -> dict[str, Any]:
    fields = []
    for field in record["fields"]:
        if draw(st.integers(0, 4)) == 0:
            continue  # dropped: the reader skips it
        ftype = field["type"]
        if isinstance(ftype, dict) and ftype.get("type") == "record":
            ftype = draw(_evolve(ftype))
        fields.append({**field, "type": ftype})
    for i in range(draw(st.integers(0, 2))):
        default = draw(st.sampled_from([
            ("string", "dflt"), ("long", 7), (["null", "string"], None),
            ({"type": "map", "values": "string"}, {"k": "v"}),
            ({"type": "array", "items": "long"}, [1, 2]), ("boolean", True)]))
        fields.insert(draw(st.integers(0, len(fields))),
                      {"name": f"added_{i}", "type": default[0], "default": default[1]})
    return {**record, "fields": fields}


_PROMOTED = {("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"),
             ("long", "double"), ("float", "double"), ("string", "bytes"), ("bytes", "string")}


def confusable(t: Any) -> bool:
    """Whether ``t`` holds a union where fastavro, resolving, may read a branch as an
    earlier one (bytes as string, int as double, two named types): left to fastavro."""
    if isinstance(t, list):
        kinds = [b if isinstance(b, str) else b["type"] for b in t]
        named = [k in ("record", "enum", "fixed") for k in kinds]
        if any((a, b) in _PROMOTED or (b, a) in _PROMOTED for a in kinds for b in kinds) \
                or sum(named) > 1:
            return True
        return any(confusable(b) for b in t)
    if isinstance(t, dict):
        if t["type"] == "record":
            return any(confusable(f["type"]) for f in t["fields"])
        if t["type"] == "array":
            return confusable(t["items"])
        if t["type"] == "map":
            return confusable(t["values"])
    return False


@settings(max_examples=300, deadline=None)
@given(case=evolved())
def test_resolves_as_fastavro_resolves(case: tuple[dict[str, Any], dict[str, Any], Any]
                                       ) -> None:
    writer_schema, reader_schema, value = case
    writer, reader = AvroCodec(writer_schema), AvroCodec(reader_schema)
    body = fastavro_bytes(writer, value)
    expected = outcome(fastavro_value, writer, reader, body)
    decoder = reader._decoder(writer)
    if decoder is None:
        assert confusable(writer_schema), (writer_schema, reader_schema)
    else:
        found = decoder(body)
        if found is not None:
            assert expected[0] == "ok" and found[1] == len(body)
            assert same(found[0], expected[1])
        else:
            assert expected[0] == "error"
    first = outcome(reader.decode, body, writer)
    assert first[0] == expected[0]
    if first[0] == "error":
        return
    assert same(first[1], expected[1])
    if isinstance(first[1], dict):  # defaults are copies: changing one changes no other record
        for key, item in first[1].items():
            if isinstance(item, dict | list) and key.startswith("added_"):
                item.clear()
        assert same(reader.decode(body, writer), expected[1])


def test_resolution_outside_the_native_programs_goes_to_fastavro() -> None:
    """A promotion (int read as long), a renamed record, field aliases, a union read as a
    plain type: no native decoder, and fastavro's values or errors."""
    writer = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}
    cases = [
        {"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]},
        {"type": "record", "name": "S", "fields": [{"name": "a", "type": "int"}]},
        {"type": "record", "name": "R",
         "fields": [{"name": "b", "type": "int", "aliases": ["a"]}]},
        {"type": "record", "name": "R", "fields": [{"name": "a", "type": ["null", "int"]}]},
        {"type": "record", "name": "R", "fields": [{"name": "z", "type": "int"}]},
    ]
    w = AvroCodec(writer)
    body = fastavro_bytes(w, {"a": 5})
    for reader_schema in cases:
        reader = AvroCodec(reader_schema)
        assert reader._decoder(w) is None
        assert outcome(reader.decode, body, w)[0] == outcome(
            fastavro_value, w, reader, body)[0]


# ---------------------------------------------------------------- sealtrail's own schemas


def test_every_shipped_schema_has_native_programs() -> None:
    """Every SealedRecord and AuditEvent version compiles, and every AuditEvent version
    resolves natively to every later one (what the sealer decodes during an upgrade). A
    schema change that falls outside the programs shows here, not as a slow sealer."""
    for name in (schemas.AUDIT_EVENT, schemas.SEALED_RECORD):
        for version in schemas.versions(name):
            schema = (schemas.load(name, version) if name == schemas.AUDIT_EVENT
                      else schemas.sealed_record(version=version))
            codec = AvroCodec(schema)
            assert codec._encoder is not None, (name, version)
            assert codec._decoder(codec) is not None, (name, version)
    events = [AvroCodec(schemas.load(schemas.AUDIT_EVENT, v))
              for v in schemas.versions(schemas.AUDIT_EVENT)]
    for i, writer in enumerate(events):
        for reader in events[i:]:
            assert reader._decoder(writer) is not None


def test_logical_types_are_read_as_their_plain_type() -> None:
    schema = {"type": "record", "name": "T", "fields": [
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}}]}
    codec = AvroCodec(schema)
    body = codec.encode({"at": 1_700_000_000_000_000})
    assert codec.encode_native({"at": 1_700_000_000_000_000}) == body
    assert codec.decode(body) == {"at": 1_700_000_000_000_000}


def test_named_types_referenced_across_namespaces() -> None:
    schema = {"type": "record", "name": "Outer", "namespace": "a.b", "fields": [
        {"name": "x", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "BLUE"]}},
        {"name": "inner", "type": {"type": "record", "name": "Inner", "namespace": "c",
                                   "fields": [{"name": "y", "type": "a.b.Colour"}]}},
        {"name": "z", "type": ["null", "Colour"]},
    ]}
    codec = AvroCodec(schema)
    value = {"x": "RED", "inner": {"y": "BLUE"}, "z": "BLUE"}
    body = codec.encode_native(value)
    assert body is not None and body == fastavro_bytes(codec, value)
    assert same(codec.decode(body), fastavro_value(codec, codec, body))


def test_recursive_schemas_are_left_to_fastavro() -> None:
    schema = {"type": "record", "name": "Node", "fields": [
        {"name": "next", "type": ["null", "Node"]}]}
    codec = AvroCodec(schema)
    assert codec._encoder is None and codec._decoder(codec) is None
    value = {"next": {"next": None}}
    assert codec.decode(codec.encode(value)) == value


def test_arrays_of_values_that_take_no_bytes() -> None:
    """Twenty nulls are one count byte and a terminator: more items than bytes, still
    decoded natively; a count past the native bound goes to fastavro."""
    schema = {"type": "record", "name": "N", "fields": [
        {"name": "nothing", "type": {"type": "array", "items": "null"}}]}
    codec = AvroCodec(schema)
    body = codec.encode({"nothing": [None] * 20})
    found = codec._decoder(codec)(body)  # type: ignore[misc]
    assert found == ({"nothing": [None] * 20}, len(body))
    huge = b"\x80\x80\x80\x02\x00"  # a block of 2**21 nulls
    assert codec._decoder(codec)(huge) is None  # type: ignore[misc]
    assert codec.decode(huge) == {"nothing": [None] * 2**21}


def test_enum_read_by_a_reader_with_more_symbols() -> None:
    """A writer enum whose symbols the reader all knows (AuditEvent v3 adds PII, PHI and
    PCI to the classification) decodes natively, each symbol as fastavro reads it; a writer
    symbol the reader lacks (read as the reader's default) is left to fastavro."""
    def record(symbols: list[str], default: str | None = None) -> dict[str, Any]:
        enum: dict[str, Any] = {"type": "enum", "name": "E", "symbols": symbols}
        if default is not None:
            enum["default"] = default
        return {"type": "record", "name": "R", "fields": [{"name": "e", "type": enum}]}

    writer = AvroCodec(record(["LOW", "HIGH"]))
    reader = AvroCodec(record(["PII", "LOW", "HIGH"], default="LOW"))
    decoder = reader._decoder(writer)
    assert decoder is not None
    for symbol in ("LOW", "HIGH"):
        body = fastavro_bytes(writer, {"e": symbol})
        assert same(decoder(body)[0], fastavro_value(writer, reader, body))
        assert decoder(body)[0] == {"e": symbol}
    odd = AvroCodec(record(["LOW", "SECRET"]))
    assert reader._decoder(odd) is None
    body = fastavro_bytes(odd, {"e": "SECRET"})
    assert reader.decode(body, odd) == fastavro_value(odd, reader, body) == {"e": "LOW"}
