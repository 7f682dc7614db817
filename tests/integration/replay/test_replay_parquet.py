"""Replay to Parquet: typed columns from the Avro SealedRecord schema, the same records as a
JSON lines replay, resumable after an orderly interruption and after kill -9, and a clear
error when pyarrow is not installed."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.archive_builder import T0, build_archive
from helpers.paths import TESTS

import sealtrail.replay as replay_module
from sealtrail.core.canonical import canonical_json, entry_body
from sealtrail.core.hashing import ENTRY_DOMAIN, sha256
from sealtrail.errors import ConfigError
from sealtrail.reading import record_to_json
from sealtrail.replay import ArchiveSource, Query, ReplayState, _parquet, open_sink, replay_archive

_BIN = Path(sys.executable).with_name("sealtrail")
COMMAND = [str(_BIN)] if _BIN.exists() else [sys.executable, "-m", "sealtrail.cli.main"]
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def sealtrail(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALTRAIL_")}
    env["SEALTRAIL_HOME"] = str(cwd / ".sealtrail")
    proc = subprocess.run([*COMMAND, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _plain(value: Any, typ: pa.DataType) -> Any:
    """A value read from Parquet back in the form fastavro decodes (ints for timestamps,
    dicts for maps)."""
    if value is None:
        return None
    if pa.types.is_timestamp(typ):
        return (value - EPOCH) // dt.timedelta(microseconds=1)
    if pa.types.is_map(typ):
        return {k: _plain(v, typ.item_type) for k, v in value}
    if pa.types.is_struct(typ):
        return {f.name: _plain(value[f.name], f.type) for f in typ}
    if pa.types.is_list(typ):
        return [_plain(v, typ.value_type) for v in value]
    return value


def parquet_records(path: Path) -> list[dict[str, Any]]:
    table = pq.read_table(path)
    return [{f.name: _plain(row[f.name], f.type) for f in table.schema}
            for row in table.to_pylist()]


def _replay(built: Any, dest: Path, query: Query | None = None, **kw: Any) -> Any:
    return replay_archive(ArchiveSource(built.store, built.keyring), query or Query(),
                          f"file:{dest}", **kw)


def test_parquet_holds_exactly_what_a_jsonl_replay_gives_in_typed_columns(
        tmp_path: Path) -> None:
    """Same records, same order, every field equal to the JSON line (so every entry hash
    recomputes from a Parquet row), with typed columns and zstd row groups."""
    built = build_archive(tmp_path, chains=2, segments=3, records=5)
    jsonl, parquet = tmp_path / "all.jsonl", tmp_path / "all.parquet"
    query = Query(include_rejections=True)
    assert _replay(built, jsonl, query).ok
    result = _replay(built, parquet, query)
    assert result.ok and result.written == 30
    lines, rows = read_jsonl(jsonl), parquet_records(parquet)
    assert len(rows) == len(lines) == 30
    assert any(r["rejection"] for r in rows) and any(r["event"] for r in rows)
    assert [r["event"]["event_id"] for r in rows if r["event"]] == [
        r["event"]["event_id"] for r in lines if r["event"]]
    for row, line in zip(rows, lines, strict=True):
        assert json.loads(record_to_json(row)) == line
        assert sha256(ENTRY_DOMAIN, canonical_json(entry_body(row))) == row["entry_hash"]
    schema = pq.read_schema(parquet)
    assert schema.field("ingested_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("seq").type == pa.int64()
    assert schema.field("entry_hash").type == pa.binary()
    assert schema.field("kind").type == pa.string()
    assert not schema.field("chain_id").nullable and schema.field("event").nullable
    event = schema.field("event").type
    assert event.field("occurred_at").type == pa.timestamp("us", tz="UTC")
    assert pa.types.is_map(event.field("attributes").type)
    assert event.field("authorization").nullable
    assert pa.types.is_list(event.field("authorization").type.field("permissions").type)
    assert schema.field("source").type.field("partition").type == pa.int32()
    assert schema.field("source").type.field("schema_id").nullable
    assert json.loads(schema.metadata[b"sealtrail.avro_schema"])["name"] == "SealedRecord"
    table = pq.read_table(parquet)
    assert table.column("ingested_at")[0].as_py() == dt.datetime(2024, 1, 1, 0, 0, 0, 1000,
                                                                 tzinfo=dt.UTC)
    meta = pq.ParquetFile(parquet).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert not parquet.with_name(parquet.name + _parquet.JOURNAL_SUFFIX).exists()


def test_row_groups_and_batches_split_across_boundaries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records are journalled in batches and regrouped into row groups of ROW_GROUP_ROWS,
    whatever the segment sizes: order and content are kept across every boundary."""
    monkeypatch.setattr(_parquet, "BATCH_ROWS", 3)
    monkeypatch.setattr(_parquet, "ROW_GROUP_ROWS", 7)
    built = build_archive(tmp_path, chains=2, segments=4, records=5, rejections=())
    jsonl, parquet = tmp_path / "o.jsonl", tmp_path / "o.parquet"
    assert _replay(built, jsonl).ok and _replay(built, parquet).ok
    meta = pq.ParquetFile(parquet).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [7] * 5 + [5]
    assert [json.loads(record_to_json(r)) for r in parquet_records(parquet)] == \
        read_jsonl(jsonl)


def test_filters_apply_to_parquet_output(tmp_path: Path) -> None:
    """--since/--until, --event-type, --actor select the same events as for JSON lines."""
    built = build_archive(tmp_path, chains=2, segments=4, records=6, rejections=())
    since, until = T0 + 10_000, T0 + 40_000
    for n, query in enumerate([Query(since, until, event_type="record.read"),
                               Query(actor="user-3"), Query(service="nobody")]):
        jsonl, parquet = tmp_path / f"{n}.jsonl", tmp_path / f"{n}.parquet"
        assert _replay(built, jsonl, query).ok
        result = _replay(built, parquet, query)
        expected = [r["event"]["event_id"] for r in read_jsonl(jsonl)]
        got = pq.read_table(parquet).column("event").combine_chunks().field("event_id")
        assert result.written == len(expected) and got.to_pylist() == expected
        assert len(expected) < 48
        if query.actor:
            assert expected and {r["event"]["actor"]["id"]
                                 for r in parquet_records(parquet)} == {"user-3"}
        if query.service:
            assert pq.read_table(parquet).num_rows == 0  # an empty but valid file


def test_cli_replays_the_archive_to_parquet(tmp_path: Path) -> None:
    """`sealtrail replay --source archive ... --to file:X.parquet` writes the file, marks
    its state complete and leaves no journal behind."""
    built = build_archive(tmp_path, chains=2, segments=3, records=5)
    out = tmp_path / "out.parquet"
    proc = sealtrail(tmp_path, "replay", "--source", "archive", "--archive", built.root,
                     "--keys", built.keyring_path, "--event-type", "record.read",
                     "--to", f"file:{out}")
    assert proc.returncode == 0, proc.stderr
    rows = parquet_records(out)
    assert rows and {r["event"]["event_type"] for r in rows} == {"record.read"}
    assert f"REPLAYED: {len(rows)} records written to file:{out}" in proc.stderr
    state = ReplayState.load(Path(f"{out}.replay-state.json"))
    assert state is not None and state.complete and state.out_bytes == len(rows)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == [
        "out.parquet", "out.parquet.replay-state.json"]


def _interrupted_first_run(built: Any, out: Path, state: Path) -> Any:
    calls = {"n": 0}

    def stop_after_three() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    return _replay(built, out, state_path=state, stop=stop_after_three)


def test_resume_after_an_orderly_interruption_completes_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped part-way, the run leaves a valid Parquet file of what it wrote; rerunning the
    same replay rebuilds the journal from that file's committed rows and completes it: every
    record exactly once, in the order of a full replay."""
    monkeypatch.setattr(replay_module, "SAVE_EVERY_S", 0.0)
    built = build_archive(tmp_path, chains=2, segments=4, records=5, rejections=())
    out, state = tmp_path / "out.parquet", tmp_path / "state.json"
    first = _interrupted_first_run(built, out, state)
    saved = ReplayState.load(state)
    assert saved is not None and not saved.complete
    assert 0 < first.written < 40 and pq.read_table(out).num_rows == saved.out_bytes
    second = _replay(built, out, state_path=state)
    assert second.resumed and second.ok and second.written == 40
    full = tmp_path / "full.jsonl"
    assert _replay(built, full).ok
    assert [json.loads(record_to_json(r)) for r in parquet_records(out)] == read_jsonl(full)
    loaded = ReplayState.load(state)
    assert loaded is not None and loaded.complete


_KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    import sealtrail.replay as replay_module
    from sealtrail.archive import open_store
    from sealtrail.keys import load_keyring
    from sealtrail.replay import ArchiveSource, Query, ReplayState, replay_archive
    from sealtrail.replay import _parquet
    _parquet.BATCH_ROWS = 3
    replay_module.SAVE_EVERY_S = 0.0
    state = Path({state!r})

    def kill_after_two_saves():
        saved = ReplayState.load(state)
        if saved is not None and saved.written >= 10:
            os.kill(os.getpid(), signal.SIGKILL)
        return False

    replay_archive(ArchiveSource(open_store(Path({root!r})), load_keyring(Path({keys!r}))),
                   Query(), "file:" + {out!r}, state_path=state, stop=kill_after_two_saves)
""")


def test_resume_after_kill_9_uses_the_journal(tmp_path: Path) -> None:
    """A replay killed with SIGKILL never wrote its Parquet file; its fsynced journal holds
    the committed records (and perhaps a torn batch after them). Rerunning cuts the journal
    back to the state's count and completes the file, every record exactly once."""
    built = build_archive(tmp_path, chains=2, segments=4, records=5, rejections=())
    out, state = tmp_path / "out.parquet", tmp_path / "state.json"
    journal = out.with_name(out.name + _parquet.JOURNAL_SUFFIX)
    script = _KILLED_RUN.format(tests=str(TESTS), state=str(state), root=str(built.root),
                                keys=str(built.keyring_path), out=str(out))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert journal.exists() and not out.exists()
    saved = ReplayState.load(state)
    assert saved is not None and not saved.complete and 10 <= saved.out_bytes < 40
    with journal.open("ab") as f:  # a batch torn by the kill, after the durable point
        f.write(b"\xff\xff\xff\xff\x40\x00\x00\x00torn")
    second = _replay(built, out, state_path=state)
    assert second.resumed and second.ok
    full = tmp_path / "full.jsonl"
    assert _replay(built, full).ok
    rows = parquet_records(out)
    assert len(rows) == 40 and len({(r["chain_id"], r["seq"]) for r in rows}) == 40
    assert [json.loads(record_to_json(r)) for r in rows] == read_jsonl(full)
    assert not journal.exists()


def test_resume_is_refused_when_the_output_is_gone_or_short(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the file nor its journal: a ConfigError that says what to do. A file with
    fewer rows than the state says: refused too, rather than a replay with a hole."""
    monkeypatch.setattr(replay_module, "SAVE_EVERY_S", 0.0)
    built = build_archive(tmp_path, chains=1, segments=5, records=4, rejections=())
    out, state = tmp_path / "out.parquet", tmp_path / "state.json"
    first = _interrupted_first_run(built, out, state)
    assert 0 < first.written < 20
    out.unlink()
    with pytest.raises(ConfigError, match="remove its state file to start again"):
        _replay(built, out, state_path=state)
    pq.write_table(pa.Table.from_pylist([], schema=_parquet.arrow_schema()), out)
    with pytest.raises(ConfigError, match="has 0 rows, fewer than"):
        _replay(built, out, state_path=state)


def test_arrow_types_follow_the_avro_schema() -> None:
    """The mapping rules, on a schema with every kind of type sealtrail could meet."""
    avro = {"type": "record", "name": "R", "namespace": "x", "fields": [
        {"name": "f", "type": {"type": "fixed", "name": "F", "size": 4}},
        {"name": "again", "type": "x.F"},
        {"name": "d", "type": "double"},
        {"name": "b", "type": "boolean"},
        {"name": "n", "type": ["string", "null"]},
        {"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "m", "type": {"type": "map", "values": ["null", "long"]}},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A"]}},
    ]}
    schema = _parquet.arrow_schema(avro)
    assert schema.field("f").type == pa.binary(4) == schema.field("again").type
    assert schema.field("d").type == pa.float64() and schema.field("b").type == pa.bool_()
    assert schema.field("n").nullable and not schema.field("d").nullable
    assert schema.field("t").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("m").type.item_type == pa.int64()
    assert schema.field("m").type.item_field.nullable
    assert schema.field("e").type == pa.string()
    with pytest.raises(ConfigError, match="union"):
        _parquet.arrow_schema({"type": "record", "name": "U", "fields": [
            {"name": "u", "type": ["null", "string", "long"]}]})


def test_without_pyarrow_the_error_says_how_to_install_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pyarrow is optional: when it cannot be imported, opening a Parquet sink is a
    ConfigError naming the extra, and nothing is created."""
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.setitem(sys.modules, name, None)
    out = tmp_path / "x.parquet"
    with pytest.raises(ConfigError, match=r"pip install 'sealtrail\[parquet\]'"):
        open_sink(f"file:{out}")
    assert list(tmp_path.iterdir()) == []


def test_cli_without_pyarrow_exits_2_with_the_install_hint(tmp_path: Path) -> None:
    """The same through the command: exit 2 (usage), the hint on stderr, no traceback."""
    built = build_archive(tmp_path, chains=1, segments=1, records=2)
    script = ("import sys; sys.modules['pyarrow'] = None; "
              "from sealtrail.cli.main import main; sys.exit(main(sys.argv[1:]))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALTRAIL_")}
    env["SEALTRAIL_HOME"] = str(tmp_path / ".sealtrail")
    proc = subprocess.run([sys.executable, "-c", script, "replay", "--archive", built.root,
                           "--keys", built.keyring_path, "--to",
                           f"file:{tmp_path / 'x.parquet'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'sealtrail[parquet]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_resume_keeps_only_committed_records_after_close_or_crash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At the sink: records written after the last commit() are dropped on resume, whether
    close() put them in the Parquet file (an error ended the run) or the process died with
    them in the journal."""
    monkeypatch.setattr(_parquet, "BATCH_ROWS", 2)
    built = build_archive(tmp_path, chains=1, segments=2, records=6, rejections=())
    records = built.records[built.chain_ids[0]]
    first, extra, rest = records[:5], records[5:8], records[5:]
    for crash in (False, True):
        out = tmp_path / f"crash-{crash}.parquet"
        sink = open_sink(f"file:{out}")
        sink.write(first)
        assert sink.commit() == 5
        sink.write(extra)  # reaches the journal (BATCH_ROWS = 2), never committed
        if crash:
            del sink  # no close(): the journal is all there is
            assert not out.exists()
        else:
            sink.close()
            assert pq.read_table(out).num_rows == 8
        resumed = open_sink(f"file:{out}", resume_at=5)
        resumed.write(rest)
        assert resumed.commit() == 12
        resumed.close()
        assert [r["seq"] for r in parquet_records(out)] == list(range(12))


def test_a_resumed_run_with_nothing_left_cuts_the_uncommitted_tail(tmp_path: Path) -> None:
    """A crashed run's journal holds records after the commit; a resume that has nothing
    more to write finishes with the committed records only."""
    built = build_archive(tmp_path, chains=1, segments=1, records=8, rejections=())
    records = built.records[built.chain_ids[0]]
    out = tmp_path / "o.parquet"
    sink = open_sink(f"file:{out}")
    sink.write(records[:4])
    assert sink.commit() == 4
    sink.write(records[4:])
    sink.commit()  # durable in the journal, but the state file was never updated
    del sink
    resumed = open_sink(f"file:{out}", resume_at=4)
    resumed.close()
    assert [r["seq"] for r in parquet_records(out)] == [0, 1, 2, 3]
