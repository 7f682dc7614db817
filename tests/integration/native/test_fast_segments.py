"""The native segment reader (sealtrail.archive.fast_segments) against the reference path.

The reference is fastavro decoding plus sealtrail.core.canonical in Python. Whenever the
native path answers, it must give the same bytes; whenever it cannot, it must say so
(None / ValueError) rather than answer differently. Replay output is byte-identical
either way.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import fastavro
import pytest
from helpers.archive_builder import build_archive, make_event
from helpers.hostile_inputs import zigzag
from helpers.tamper import ATTACKS, run_attack, verify_built
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealtrail import schemas
from sealtrail.archive import fast_segments
from sealtrail.archive.segments import read_segment, write_segment
from sealtrail.core.canonical import canonical_json, entry_body
from sealtrail.core.envelope import strip_logical_types

pytestmark = pytest.mark.skipif(
    not fast_segments.AVAILABLE,
    reason="sealtrail._canonical_avro is not built (no C compiler at install time); "
           "replay uses the Python path")

native = fast_segments.native
LONG = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(max_size=40)  # every Unicode scalar value: controls, quotes, astral planes
BYTES = st.binary(max_size=40)


# ---------------------------------------------------------------- a schema with every type

KITCHEN_SINK: dict[str, Any] = {
    "type": "record", "name": "Sink", "namespace": "test.sink",
    "fields": [
        {"name": "zeta", "type": "string"},
        {"name": "alpha", "type": "long"},
        {"name": "Upper", "type": "int"},
        {"name": "flag", "type": "boolean"},
        {"name": "nothing", "type": "null"},
        {"name": "blob", "type": "bytes"},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
        {"name": "colour", "type": {"type": "enum", "name": "Colour",
                                    "symbols": ["RED", "GREEN", "BLUE"]}},
        {"name": "when", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": "string"}},
        {"name": "nested", "type": {"type": "map", "values": {"type": "array", "items": "long"}}},
        {"name": "choice", "type": ["null", "string", "long", "Digest",
                                    {"type": "map", "values": "bytes"}]},
        {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [
            {"name": "b", "type": ["null", "Inner"]},
            {"name": "a", "type": "test.sink.Colour"},
        ]}},
        {"name": "people", "type": {"type": "array", "items": {
            "type": "record", "name": "Person", "namespace": "other",
            "fields": [{"name": "name", "type": "string"},
                       {"name": "age", "type": ["null", "int"]}]}}},
    ],
}


def inner_values(depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    child = st.none() if depth >= 3 else st.none() | st.deferred(lambda: inner_values(depth + 1))
    return st.fixed_dictionaries({"b": child, "a": st.sampled_from(["RED", "GREEN", "BLUE"])})


SINK_VALUES = st.fixed_dictionaries({
    "zeta": TEXT, "alpha": LONG, "Upper": st.integers(-(2**31), 2**31 - 1),
    "flag": st.booleans(), "nothing": st.none(), "blob": BYTES,
    "digest": st.binary(min_size=4, max_size=4),
    "colour": st.sampled_from(["RED", "GREEN", "BLUE"]), "when": LONG,
    "tags": st.lists(TEXT, max_size=4),
    "attrs": st.dictionaries(TEXT, TEXT, max_size=6),
    "nested": st.dictionaries(TEXT, st.lists(LONG, max_size=3), max_size=3),
    "choice": st.one_of(st.none(), st.tuples(st.just("string"), TEXT),
                        st.tuples(st.just("long"), LONG),
                        st.tuples(st.just("test.sink.Digest"), st.binary(min_size=4, max_size=4)),
                        st.tuples(st.just("map"), st.dictionaries(TEXT, BYTES, max_size=3))),
    "inner": inner_values(),
    "people": st.lists(st.fixed_dictionaries(
        {"name": TEXT, "age": st.none() | st.integers(0, 200)}), max_size=3),
})


def block_of(schema: dict[str, Any], records: list[dict[str, Any]]) -> bytes:
    parsed = fastavro.parse_schema(strip_logical_types(schema))
    buf = io.BytesIO()
    for record in records:
        fastavro.schemaless_writer(buf, parsed, record)
    return buf.getvalue()


def decoded(schema: dict[str, Any], block: bytes, count: int) -> list[dict[str, Any]]:
    parsed = fastavro.parse_schema(strip_logical_types(schema))
    buf = io.BytesIO(block)
    return [fastavro.schemaless_reader(buf, parsed, None) for _ in range(count)]  # type: ignore[misc]


def program_of(schema: dict[str, Any]) -> Any:
    return native.compile(fast_segments._compile(schema))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(SINK_VALUES, min_size=1, max_size=4))
def test_every_avro_type_transcodes_to_the_reference_canonical_json(
        records: list[dict[str, Any]]) -> None:
    block = block_of(KITCHEN_SINK, records)
    rows = native.transcode(program_of(KITCHEN_SINK), block, len(records), (1, 5), ((1,), (0,)))
    reference = decoded(KITCHEN_SINK, block, len(records))
    assert len(rows) == len(reference)
    for (whole, body, alpha, zeta), ref in zip(rows, reference, strict=True):
        assert whole == canonical_json(ref)
        assert body == canonical_json({k: v for k, v in ref.items() if k not in ("alpha", "blob")})
        assert (alpha, zeta) == (ref["alpha"], ref["zeta"])
        json.loads(whole)  # and it is JSON


# ---------------------------------------------------------------- sealed records, segments

EVENT = st.builds(
    lambda n, actor, attrs, reason, service: {
        **make_event(n, 0),
        "actor": {**make_event(n, 0)["actor"], "id": actor},
        "attributes": attrs, "reason": reason,
        "origin": {**make_event(n, 0)["origin"], "service": service}},
    st.integers(0, 10**6), TEXT.filter(bool), st.dictionaries(TEXT, TEXT, max_size=5),
    st.none() | TEXT, TEXT)


def sealed(i: int, event: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "chain_id": "audit.raw.0.test", "seq": i, "epoch": 1,
        "kind": "EVENT" if event else "REJECTION", "event": event,
        "rejection": None if event else {
            "reason": "INVALID", "detail": f"bad \"{i}\"\n", "raw_sha256": b"\x01" * 32,
            "raw_size": 3},
        "redaction": {"policy_id": "default", "policy_version": 3, "fields": ["actor.id=hmac"]},
        "ingested_at": 1_700_000_000_000_000 + i,
        "source": {"topic": "audit.raw", "partition": 0, "offset": 100 + i, "schema_id": None},
        "prev_hash": bytes([i % 256]) * 32, "key_id": "ed25519:test",
        "entry_hash": bytes([(i + 1) % 256]) * 32, "signature": b"\x07" * 64,
    }


@pytest.mark.parametrize("sealed_version", schemas.versions(schemas.SEALED_RECORD))
@pytest.mark.parametrize("event_version", schemas.versions(schemas.AUDIT_EVENT))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(events=st.lists(st.none() | EVENT, min_size=1, max_size=6))
def test_segment_rows_match_the_reference(event_version: int, sealed_version: int,
                                          events: list[dict[str, Any] | None]) -> None:
    """Every SealedRecord version with every AuditEvent version: the native rows are the
    reference's (v2: an unsigned 32-bit schema id and the reasons LIMIT and INTERNAL)."""
    schema = schemas.sealed_record(event_version, sealed_version)
    fastavro.parse_schema(strip_logical_types(schema))
    records = [sealed(i, e) for i, e in enumerate(events)]
    if sealed_version >= 2:
        for r in records:
            r["source"]["schema_id"] = 2**32 - 1 - r["seq"]
            if r["rejection"] is not None:
                r["rejection"]["reason"] = ("LIMIT", "INTERNAL")[r["seq"] % 2]
    if event_version > 1:
        for r in records:  # fields new in later versions: fill every one with its default
            if r["event"] is not None:
                for f in _event_fields(schema):
                    r["event"].setdefault(f["name"], f.get("default"))
    data = write_segment(records, {"sealtrail.chain_id": "x"}, schema)
    rows = fast_segments.transcode_segment(data)
    assert rows is not None
    for row, ref in zip(rows, read_segment(data), strict=True):
        assert row[fast_segments.RECORD_JSON] == canonical_json(ref)
        assert row[fast_segments.BODY] == canonical_json(entry_body(ref))
        assert row[fast_segments.CHAIN_ID:fast_segments.OFFSET + 1] == (
            ref["chain_id"], ref["seq"], ref["epoch"], ref["prev_hash"], ref["entry_hash"],
            ref["key_id"], ref["signature"], ref["ingested_at"], ref["source"]["partition"],
            ref["source"]["offset"])
        assert (row[fast_segments.EVENT] is None) == (ref["event"] is None)


def _event_fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    event = next(f for f in schema["fields"] if f["name"] == "event")["type"]
    return next(b for b in event if isinstance(b, dict))["fields"]


# ---------------------------------------------------------------- never a different answer


def one_string_schema(kind: str = "string") -> dict[str, Any]:
    return {"type": "record", "name": "R", "fields": [{"name": "s", "type": kind}]}


@pytest.mark.parametrize("raw", [
    b"\xff", b"\xc0\x80", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80",
    b"\xe2\x82", b"abc\x80",
], ids=["ff", "overlong-2", "overlong-3", "surrogate-lo", "surrogate-hi", "above-max",
        "truncated", "lone-continuation"])
def test_invalid_utf8_and_surrogates_are_refused_not_transcoded(raw: bytes) -> None:
    with pytest.raises(ValueError, match="UTF-8"):
        native.transcode(program_of(one_string_schema()), zigzag(len(raw)) + raw, 1, (), ())
    with pytest.raises(UnicodeDecodeError):  # the reference refuses it too
        raw.decode("utf-8")


def test_duplicate_map_keys_truncation_and_leftovers_are_refused() -> None:
    schema = {"type": "record", "name": "R",
              "fields": [{"name": "m", "type": {"type": "map", "values": "long"}}]}
    prog = program_of(schema)
    dup = zigzag(2) + zigzag(1) + b"a" + zigzag(1) + zigzag(1) + b"a" + zigzag(2) + zigzag(0)
    with pytest.raises(ValueError, match="duplicate map key"):
        native.transcode(prog, dup, 1, (), ())
    good = block_of(schema, [{"m": {"b": 1, "a": 2}}])
    assert native.transcode(prog, good, 1, (), ())[0][0] == b'{"m":{"a":2,"b":1}}'
    with pytest.raises(ValueError, match=r"truncated|out of range"):
        native.transcode(prog, good[:-2], 1, (), ())
    with pytest.raises(ValueError, match="left over"):
        native.transcode(prog, good + b"\x00", 1, (), ())
    with pytest.raises(ValueError):
        native.transcode(prog, good, 2, (), ())


def test_map_keys_sort_by_code_point_not_by_their_escaped_form() -> None:
    schema = {"type": "record", "name": "R",
              "fields": [{"name": "m", "type": {"type": "map", "values": "long"}}]}
    value = {"m": {"\x01": 1, '"': 2, "\\": 3, "a": 4, "\ue000": 5, "\U0001f600": 6, "": 7}}
    row = native.transcode(program_of(schema), block_of(schema, [value]), 1, (), ())[0]
    assert row[0] == canonical_json(value)


def test_floats_and_unknown_files_take_the_reference_path() -> None:
    with pytest.raises(fast_segments.NativeUnsupportedError, match="floats"):
        fast_segments._compile(one_string_schema("double"))
    assert fast_segments.transcode_segment(b"not a segment") is None
    records = [sealed(0, make_event(1, 0))]
    data = write_segment(records, {})
    assert fast_segments.transcode_segment(data) is not None
    assert fast_segments.transcode_segment(data[:-20]) is None  # cut: the reference names it


# ---------------------------------------------------------------- replay, both paths


def test_replay_writes_the_same_bytes_on_the_native_and_the_reference_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sealtrail.replay import ArchiveSource, Query, replay_archive

    built = build_archive(tmp_path, chains=2, segments=3, records=40, rejections=(3, 17))
    for query in (Query(), Query(include_rejections=True), Query(actor="user-3"),
                  Query(since=built.records[built.chain_ids[0]][30]["ingested_at"])):
        outputs = []
        for available in (True, False):
            if not available:
                monkeypatch.setattr(fast_segments, "native", None)
            out = tmp_path / f"out-{available}.jsonl"
            result = replay_archive(ArchiveSource(built.store, built.keyring), query,
                                    f"file:{out}")
            assert result.ok, result.breaks
            outputs.append(out.read_bytes())
            monkeypatch.undo()
        assert outputs[0] == outputs[1], query
        assert outputs[0], query


# ---------------------------------------------------------------- verify, both paths


@pytest.mark.parametrize("name", [None, *sorted(ATTACKS)])
def test_verify_reports_the_same_on_the_native_and_the_reference_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str | None) -> None:
    """The same report, finding for finding and count for count, for an intact archive
    (rejections included) and for every attack of test_verify_tamper."""
    if name is None:
        built = build_archive(tmp_path, chains=2, segments=3, records=20, rejections=(3, 9))
    else:
        built, _ = run_attack(name, tmp_path)
    native_report = verify_built(built).to_json()
    monkeypatch.setattr(fast_segments, "native", None)
    assert native_report == verify_built(built).to_json()
    if name is None:
        assert native_report["ok"] and all(c["rejections"] for c in native_report["chains"])


@settings(max_examples=int(os.environ.get("SEALTRAIL_DAMAGE_EXAMPLES", "400")), deadline=None,
          derandomize="SEALTRAIL_DAMAGE_EXAMPLES" not in os.environ)
@given(st.data())
def test_damaged_segment_files_never_hang_or_answer_differently(data: st.DataObject) -> None:
    """Bytes of a real segment with a stretch overwritten: either the same rows as the
    reference decodes, or None (the reference path then names the damage). A fixed set of
    examples in `make test`; SEALTRAIL_DAMAGE_EXAMPLES=N draws N new ones."""
    segment = write_segment([sealed(i, make_event(i, 0)) for i in range(3)], {"a": "b"})
    at = data.draw(st.integers(0, len(segment) - 1))
    junk = data.draw(st.binary(min_size=1, max_size=8))
    damaged = segment[:at] + junk + segment[at + len(junk):]
    rows = fast_segments.transcode_segment(damaged)
    if rows is not None:
        assert [r[fast_segments.RECORD_JSON] for r in rows] == [
            canonical_json(r) for r in read_segment(damaged)]


def test_without_the_extension_the_commands_say_so_and_still_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No C compiler at install time: verify and replay work on the Python path and say
    once that they are slower, and why."""
    from sealtrail.cli.main import main

    built = build_archive(tmp_path, chains=1, segments=2, records=5)
    monkeypatch.setattr(fast_segments, "native", None)
    monkeypatch.setattr(fast_segments, "AVAILABLE", False)
    monkeypatch.setenv("SEALTRAIL_HOME", str(tmp_path / ".sealtrail"))
    assert main(["verify", str(built.root), "--keys", str(built.keyring_path)]) == 0
    out = capsys.readouterr().out
    assert "not built" in out and "VERIFIED" in out
    dest = tmp_path / "out.jsonl"
    assert main(["replay", "--source", "archive", "--archive", str(built.root), "--keys",
                 str(built.keyring_path), "--to", f"file:{dest}"]) == 0
    assert "not built" in capsys.readouterr().err
    assert len(dest.read_text().splitlines()) == 2 * 5 - 2  # rejections (1, 6) left out
