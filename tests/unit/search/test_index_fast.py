"""The fast index paths give what the plain ones gave: segments decoded natively are the
records fastavro reads; a rebuild on the native path and in bulk (indexes and full text
built after the load) holds the same rows and answers every query as a rebuild on the
reference path row by row; the full-text index is filled once per batch for exactly the
rows that batch added; an index file from before (with the per-row trigger) is not
indexed twice; a failed bulk load leaves nothing behind."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import fastavro
import pytest
from helpers.archive_builder import build_archive

from sealtrail.archive import fast_segments
from sealtrail.archive.segments import read_segment
from sealtrail.core import avro_program, layout
from sealtrail.reading import ArchiveSource
from sealtrail.search import COLUMNS, open_index, parse_query, row_from_record
from sealtrail.search._rebuild import rebuild_index
from sealtrail.search._sqlite import SqliteIndex

native_built = pytest.mark.skipif(
    not (fast_segments.AVAILABLE and avro_program.AVAILABLE),
    reason="the native readers (sealtrail._canonical_avro, sealtrail.core._avro_native) are "
    "not built: reinstall sealtrail where a C compiler and the Python headers are present")

QUERIES = ["", "actor:user-3", "type:record.update outcome:denied", "billing:write",
           "currency EUR", "service:billing-api tenant:tenant-1", "trace:" + f"{7:032x}",
           "resource:role/role-39", "rbac-v7 DENY", "action:grant since:2023-12-31"]


def _segments(built: Any) -> list[bytes]:
    keys = sorted(k for k in built.store.list(layout.CHAINS) if k.endswith(".avro"))
    return [built.store.get(k) for k in keys]


@native_built
def test_segments_decode_natively_as_fastavro_reads_them(tmp_path: Path) -> None:
    built = build_archive(tmp_path, chains=2, segments=2, records=40, rejections=(1, 6))
    for data in _segments(built):
        records = fast_segments.decode_segment(data)
        reference = read_segment(data)
        assert records == reference
        assert all(list(a) == list(b) for a, b in zip(records, reference, strict=True))


@native_built
def test_damaged_or_unusual_segments_take_the_reference_path(tmp_path: Path) -> None:
    """A flipped byte, a cut file, a schema with logical types (fastavro would turn them
    into datetimes): no native answer that differs from the reference."""
    built = build_archive(tmp_path, chains=1, segments=1, records=30, rejections=())
    data = _segments(built)[0]
    for at in range(0, len(data), 97):
        damaged = data[:at] + bytes([data[at] ^ 0x5A]) + data[at + 1:]
        found = fast_segments.decode_segment(damaged)
        if found is not None:
            assert found == read_segment(damaged)
    assert fast_segments.decode_segment(data[: len(data) // 2]) is None
    records = read_segment(data)
    schema = json.loads(fastavro.reader(io.BytesIO(data)).metadata["avro.schema"])
    for field in schema["fields"]:
        if field["name"] == "ingested_at":
            field["type"] = {"type": "long", "logicalType": "timestamp-micros"}
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(schema), records, codec="deflate")
    assert fast_segments.decode_segment(buf.getvalue()) is None


def _dump(index: SqliteIndex) -> list[tuple[Any, ...]]:
    db = index._db
    return db.execute(f"SELECT {', '.join(COLUMNS)} FROM events ORDER BY chain_id, seq"
                      ).fetchall()


def _answers(index: SqliteIndex) -> list[list[tuple[str, int]]]:
    return [[(r.chain_id, r.seq) for r in index.search(parse_query(q, limit=10_000))]
            for q in QUERIES]


def _fts_rows(index: SqliteIndex) -> int:
    # every row of the full-text index once: the docsize shadow table has a row per entry
    return int(index._db.execute("SELECT count(*) FROM events_fts_docsize").fetchone()[0])


def test_native_bulk_rebuild_equals_the_reference_rebuild(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = build_archive(tmp_path, chains=2, segments=3, records=50, rejections=(2, 9))
    fast = open_index(str(tmp_path / "fast.sqlite"))
    result = rebuild_index(ArchiveSource(built.store, built.keyring), fast)
    assert result.breaks == [] and result.indexed == 2 * 3 * 50 - 2 * 2
    with monkeypatch.context() as patch:  # the reference: Python reading, row by row
        patch.setattr(fast_segments, "native", None)
        patch.setattr(avro_program, "native", None)
        patch.setattr(fast_segments, "_codecs", {})
        patch.delattr(SqliteIndex, "bulk")
        slow = open_index(str(tmp_path / "slow.sqlite"))
        again = rebuild_index(ArchiveSource(built.store, built.keyring), slow)
    assert again.indexed == result.indexed
    assert isinstance(fast, SqliteIndex) and isinstance(slow, SqliteIndex)
    assert _dump(fast) == _dump(slow)
    assert _answers(fast) == _answers(slow)
    assert all(_answers(fast)), "every query finds something"
    assert _fts_rows(fast) == _fts_rows(slow) == result.indexed
    # the bulk load left the index as a normal one: its indexes are back
    names = {r[0] for r in fast._db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"events_time", "events_actor", "events_trace", "events_event"} <= names


def test_adds_fill_the_full_text_index_once_per_row(tmp_path: Path) -> None:
    """Batches, a batch repeated (nothing new), a batch half new: each row is in the
    full-text index exactly once and found by its words."""
    built = build_archive(tmp_path, chains=1, segments=1, records=60, rejections=())
    rows = [row_from_record(r) for r in built.records[built.chain_ids[0]]]
    index = open_index(str(tmp_path / "i.sqlite"))
    assert isinstance(index, SqliteIndex)
    assert index.add(rows[:20]) == 20
    assert index.add(rows[:20]) == 0
    assert index.add(rows[10:40]) == 20
    with index.bulk() as bulk:  # a bulk load into a non-empty index adds as add() does
        bulk.add(rows[30:60])
    assert _fts_rows(index) == 60
    hits = index.search(parse_query("currency", limit=1000))
    assert sorted(r.seq for r in hits) == list(range(60))


def test_an_index_file_with_the_old_trigger_is_not_indexed_twice(tmp_path: Path) -> None:
    built = build_archive(tmp_path, chains=1, segments=1, records=10, rejections=())
    rows = [row_from_record(r) for r in built.records[built.chain_ids[0]]]
    path = tmp_path / "old.sqlite"
    index = open_index(str(path))
    index.close()
    db = sqlite3.connect(path)  # as sealtrail made it before
    db.execute("CREATE TRIGGER events_ai AFTER INSERT ON events BEGIN "
               "INSERT INTO events_fts (rowid, body) VALUES (new.rowid, new.body); END")
    db.commit()
    db.close()
    index = open_index(str(path))
    assert isinstance(index, SqliteIndex)
    index.add(rows[:5])
    # an older version opening the file meanwhile makes its trigger again
    index._db.execute("CREATE TRIGGER events_ai AFTER INSERT ON events BEGIN "
                      "INSERT INTO events_fts (rowid, body) VALUES (new.rowid, new.body); END")
    index.add(rows[5:])
    assert _fts_rows(index) == 10
    assert len(index.search(parse_query("currency"))) == 10


def test_a_failed_bulk_load_leaves_the_index_as_it_was(tmp_path: Path) -> None:
    built = build_archive(tmp_path, chains=1, segments=1, records=10, rejections=())
    rows = [row_from_record(r) for r in built.records[built.chain_ids[0]]]
    index = open_index(str(tmp_path / "i.sqlite"))
    assert isinstance(index, SqliteIndex)
    before = index._db.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    with pytest.raises(RuntimeError), index.bulk() as bulk:
        bulk.add(rows)
        raise RuntimeError("interrupted")
    assert index._db.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == before
    assert _dump(index) == [] and _fts_rows(index) == 0
    assert index.add(rows) == 10
