"""Segments written through the native encoder are what fastavro's writer writes, byte for
byte (same sync marker), whatever the records: many blocks, rejections, tricky strings,
older schema versions, and records only fastavro can write (then fastavro writes them)."""

from __future__ import annotations

import io
import os
from typing import Any

import fastavro
import pytest
from helpers.archive_builder import build_archive

from sealtrail import schemas
from sealtrail.archive.segments import read_segment, segment_bytes, write_segment
from sealtrail.core.envelope import strip_logical_types


def _fastavro(records: list[dict[str, Any]], metadata: dict[str, str], plain: dict[str, Any],
              sync: bytes) -> bytes:
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(plain, _write_hint=False), records,
                    codec="deflate", metadata=metadata, sync_marker=sync)
    return buf.getvalue()


@pytest.mark.parametrize("count", [0, 1, 7, 40, 250])
def test_segments_are_fastavros_bytes(tmp_path: Any, count: int) -> None:
    built = build_archive(tmp_path, chains=1, segments=1, records=max(count, 1),
                          rejections=(0, 5) if count > 5 else ())
    records = built.records[built.chain_ids[0]][:count]
    for record in records[::3]:
        if record["event"] is not None:
            record["event"]["attributes"]["note"] = '"q" \\ \n\x00\x7f é 日本 \U0001f512'
    plain = strip_logical_types(schemas.sealed_record())
    metadata = {"sealtrail.chain_id": "c", "sealtrail.first_seq": "0"}
    sync = os.urandom(16)
    data = segment_bytes(records, metadata, plain, sync)
    assert data == _fastavro(records, metadata, plain, sync)
    assert read_segment(data) == records


def test_older_schema_versions_and_odd_records(tmp_path: Any) -> None:
    """A segment of SealedRecord v1 with AuditEvent v1 inlined; a record holding a tuple
    (fastavro takes it, the native encoder does not): fastavro's bytes either way."""
    built = build_archive(tmp_path, chains=1, segments=1, records=30, rejections=())
    records = built.records[built.chain_ids[0]]
    old = strip_logical_types(schemas.sealed_record(event_version=1, version=1))
    v1 = [{**r, "event": {k: v for k, v in r["event"].items() if k != "session_id"}
           | {"actor": {k: v for k, v in r["event"]["actor"].items()
                        if k != "on_behalf_of"}}}
          for r in records]
    sync = os.urandom(16)
    assert segment_bytes(v1, {}, old, sync) == _fastavro(v1, {}, old, sync)
    odd = [dict(r) for r in records]
    odd[3] = {**odd[3], "event": {**odd[3]["event"], "authorization": {
        **odd[3]["event"]["authorization"], "permissions": ("billing:read",)}}}
    plain = strip_logical_types(schemas.sealed_record())
    assert segment_bytes(odd, {}, plain, sync) == _fastavro(odd, {}, plain, sync)


def test_write_segment_reads_back(tmp_path: Any) -> None:
    built = build_archive(tmp_path, chains=1, segments=1, records=100, rejections=(4,))
    records = built.records[built.chain_ids[0]]
    data = write_segment(records, {"sealtrail.chain_id": "c"})
    assert read_segment(data) == records
    assert fastavro.reader(io.BytesIO(data)).metadata["sealtrail.chain_id"] == "c"
