"""The producer's durable spool on real files: append, delivery marks, recovery after a
crash (torn tail, persisted delivery prefix), the size bound and slot locking."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sealtrail.errors import ConfigError
from sealtrail.producers.spool import Spool, open_slot


def records(spool: Spool) -> list[bytes]:
    return [value for _pos, _key, value in spool.read(spool.first_undelivered(), spool.end,
                                                       10_000)]


def test_appended_records_survive_a_restart_minus_what_was_delivered(tmp_path: Path) -> None:
    """Records not marked delivered (as persisted in .ack files) come back after a restart,
    in order; delivered leading records do not."""
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    positions = [spool.append(b"k", f"v{i}".encode()) for i in range(300)]
    assert len({p.segment.base for p in positions}) > 1, "expected several segments"
    for pos in positions[:120]:
        spool.ack(pos.segment, pos.number)
    spool.close()
    again = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    assert again.recovered == 180
    assert records(again) == [f"v{i}".encode() for i in range(120, 300)]
    again.close()


def test_a_torn_tail_is_cut_at_the_last_whole_record(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A partial record at the end of a segment (crash mid-write) is dropped with a
    warning; every whole record before it is kept."""
    spool = Spool(tmp_path, max_bytes=1 << 20)
    for i in range(10):
        spool.append(b"k", f"value-{i}".encode())
    spool.close()
    (seg,) = tmp_path.glob("*.seg")
    with open(seg, "ab") as f:
        f.write(b"\x00\x00\x00\x40garbage")
    again = Spool(tmp_path, max_bytes=1 << 20)
    assert records(again) == [f"value-{i}".encode() for i in range(10)]
    assert any("torn write" in r.getMessage() for r in caplog.records)
    again.close()


def test_the_size_bound_counts_what_is_on_disk(tmp_path: Path) -> None:
    """has_room turns false at max_bytes and true again once delivered segments are
    deleted."""
    spool = Spool(tmp_path, max_bytes=8192, segment_bytes=2048)
    positions = []
    while spool.has_room(100):
        positions.append(spool.append(b"k", b"x" * 100))
    assert spool.total_bytes <= 8192
    assert sum(p.stat().st_size for p in tmp_path.glob("*.seg")) == spool.total_bytes
    for pos in positions:
        spool.ack(pos.segment, pos.number)
    spool.persist_acks()
    assert spool.has_room(100) and spool.depth == 0
    spool.close()


def test_each_process_gets_its_own_slot_and_a_free_slot_is_reused(tmp_path: Path) -> None:
    """Two live clients on one spool base get different slots; after the first releases
    its lock, the next start takes that slot (and what a crashed owner left in it)."""
    first, fd1 = open_slot(tmp_path)
    second, fd2 = open_slot(tmp_path)
    assert first != second
    os.close(fd1)
    third, fd3 = open_slot(tmp_path)
    assert third == first
    os.close(fd2)
    os.close(fd3)
    assert oct((tmp_path / "0").stat().st_mode & 0o777) == "0o700"


def test_spool_files_are_private(tmp_path: Path) -> None:
    """Segment files are created 0600: audit content is not world-readable."""
    spool = Spool(tmp_path, max_bytes=1 << 20, fsync="always")
    spool.append(b"k", b"secret-ish")
    spool.close()
    for path in tmp_path.glob("*.seg"):
        assert path.stat().st_mode & 0o777 == 0o600


def test_unknown_fsync_policy_is_a_config_error(tmp_path: Path) -> None:
    """A typo in the fsync policy fails at start with the allowed values."""
    with pytest.raises(ConfigError, match="always"):
        Spool(tmp_path, max_bytes=1 << 20, fsync="sometimes")


def test_delivery_flags_are_settled_in_bulk(tmp_path: Path) -> None:
    """A delivery report only sets its record's flag; settle() brings the counts, the
    delivered prefix and segment deletion up to date, whatever order the flags came in
    (reports of different partitions interleave)."""
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    positions = [spool.append(b"k", f"v{i}".encode().ljust(40, b".")) for i in range(300)]
    first = positions[0].segment
    assert len({p.segment.base for p in positions}) > 2
    for pos in reversed(positions[:150]):
        if pos.number % 2:
            pos.segment.acked[pos.number] = 1
    assert spool.depth == 300  # flags alone change nothing yet
    newly, freed = spool.settle()
    assert newly == sum(1 for p in positions[:150] if p.number % 2) and not freed
    assert first.prefix == 0 and spool.depth == 300 - newly
    for pos in positions[:150]:
        pos.segment.acked[pos.number] = 1
    newly2, freed = spool.settle()
    assert newly + newly2 == 150 and freed
    assert first not in spool.segments
    assert records(spool) == [f"v{i}".encode().ljust(40, b".") for i in range(150, 300)]
    assert spool.settle() == (0, False)
    spool.close()
    again = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    assert again.recovered == 150
    again.close()
