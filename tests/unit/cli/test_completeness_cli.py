"""`sealtrail verify --completeness`: per raw partition, the offsets covered and any hole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers.archive_builder import build_archive

from sealtrail.cli.main import main


def test_complete_archive_lists_every_partition_as_complete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An intact archive: each raw partition covered from offset 0 with no hole; exit 0."""
    built = build_archive(tmp_path, chains=2, segments=2, records=3)
    code = main(["verify", str(built.root), "--keys", str(built.keyring_path),
                 "--completeness"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "COMPLETE audit.raw/0: offsets 0..5 (6 records, 1 chain(s))" in out
    assert "COMPLETE audit.raw/1: offsets 0..5" in out


def test_a_hole_is_named_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Raw offsets missing from a chain are listed as unaccounted for; exit 1."""
    built = build_archive(tmp_path, chains=2, segments=2, records=3, gap=(1, 4, 3))
    code = main(["verify", str(built.root), "--keys", str(built.keyring_path),
                 "--completeness"])
    out = capsys.readouterr().out
    assert code == 1
    assert "HOLES    audit.raw/1: offsets 0..3, 7..8" in out
    assert "unaccounted for: 4..6" in out


def test_completeness_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --json the coverage is a JSON document of its own after the verify report."""
    built = build_archive(tmp_path, chains=1, segments=1, records=4)
    code = main(["verify", str(built.root), "--keys", str(built.keyring_path),
                 "--completeness", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    doc = json.loads(out[out.rindex('{\n  "completeness"'):])
    [part] = doc["completeness"]
    assert part["complete"] and part["ranges"] == [[0, 3]] and part["holes"] == []


def test_a_partition_the_index_knows_but_no_chain_covers_is_missing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A whole chain deleted: besides verify's finding, --completeness names its raw
    partition, which the signed archive index knows, as MISSING (covered by nothing)."""
    import shutil

    built = build_archive(tmp_path, chains=2, segments=2, records=3)
    shutil.rmtree(built.root / "chains" / built.chain_ids[1])
    code = main(["verify", str(built.root), "--keys", str(built.keyring_path),
                 "--completeness"])
    out = capsys.readouterr().out
    assert code == 1
    assert "COMPLETE audit.raw/0: offsets 0..5" in out
    assert (f"MISSING  audit.raw/1: the signed archive index knows it (chain "
            f"{built.chain_ids[1]})") in out


def _after_retention() -> Any:
    """A time after the retention the checkpoints sign (the policy's longest: 7 years)."""
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(days=8 * 366)


def _completeness(store: Any, when: Any) -> tuple[int, str]:
    """verify --completeness as of ``when`` (the CLI verifies as of now): its exit code
    and output. Purged segments count only after their signed retain-until."""
    import io

    from helpers.compliance import KEYRING

    from sealtrail.verify import verify_archive
    from sealtrail.verify.completeness import print_completeness

    report = verify_archive(store, KEYRING, now_us=int(when.timestamp() * 1_000_000))
    out = io.StringIO()
    complete = print_completeness(report, out=out)
    return 0 if complete and report.ok else 1, out.getvalue()


def _write_keyring(tmp_path: Path) -> str:
    from helpers.archive_builder import write_keyring
    from helpers.compliance import KEYRING

    return str(write_keyring(tmp_path / "public.json", KEYRING))


def test_heartbeat_checkpoints_are_no_crash_and_no_hole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An intact archive with heartbeat checkpoints (no segment) between and after segments:
    verify --completeness exits 0 (it crashed with 'archive key must be a non-empty string',
    exit 1, once)."""
    from helpers.compliance import ChainFeeder, writer

    from sealtrail.archive import open_store

    store = open_store(tmp_path / "a")
    w = writer(store)
    feed = ChainFeeder(w)
    feed.segment(["auth.login", "auth.login"])
    assert w.heartbeat(0.0) == 1
    feed.segment(["auth.login"])
    assert w.heartbeat(0.0) == 1
    code = main(["verify", str(tmp_path / "a"), "--keys", _write_keyring(tmp_path),
                 "--completeness"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "COMPLETE audit.raw/0: offsets 0..2 (3 records, 1 chain(s))" in out


def test_an_archive_whose_every_segment_was_purged_is_complete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every segment purged after its retention, a heartbeat after them: intact, nothing
    left to cover, exit 0, and the report says why no offset is listed."""
    from helpers.compliance import ChainFeeder, age_sidecars, writer

    from sealtrail.archive import open_store
    from sealtrail.governance.retention import purge

    store = open_store(tmp_path / "a")
    w = writer(store)
    feed = ChainFeeder(w)
    feed.segment(["auth.login", "auth.login"])
    feed.segment(["auth.login"])
    assert w.heartbeat(0.0) == 1
    age_sidecars(tmp_path / "a")
    later = _after_retention()
    assert len(purge(store, now=later).deleted) == 2
    code, out = _completeness(store, later)
    assert code == 0, out
    assert "3 entries were in segments purged" in out and "only purged ones" in out


def test_purged_segments_are_counted_from_their_checkpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Segments purged after their retention, at the start, in the middle and at the end of
    a chain: the offsets across a purged middle segment count as covered, exit 0; a segment
    deleted while still retained stops the coverage (verify names it missing), exit 1."""
    from helpers.compliance import ChainFeeder, age_sidecars, policy, writer

    from sealtrail.archive import open_store
    from sealtrail.governance.holds import HoldSelector, apply_hold
    from sealtrail.governance.retention import purge

    root = tmp_path / "a"
    store = open_store(root)
    feed = ChainFeeder(writer(store))
    for _ in range(5):
        feed.segment(["payment.x", "payment.y"])
    for segment in (1, 3):  # keep segments 1 and 3; 0, 2 and 4 go
        at = feed.records[2 * segment]["event"]["occurred_at"]
        apply_hold(store, f"CASE-{segment}", HoldSelector(at, at), policy=policy(),
                   progress_dir=tmp_path / "progress", operator="tester")
    age_sidecars(root)
    later = _after_retention()
    assert len(purge(store, now=later).deleted) == 3
    keys = _write_keyring(tmp_path)
    code, out = _completeness(store, later)
    assert code == 0, out
    assert "COMPLETE audit.raw/0: offsets 2..7 (6 records, 1 chain(s))" in out
    assert "6 entries were in segments purged after their retention" in out
    fresh = open_store(tmp_path / "b")
    feed = ChainFeeder(writer(fresh))
    feed.segment(["payment.x"])
    feed.segment(["payment.x"])
    (tmp_path / "b" / "chains" / feed.head.chain_id / "segments" / "0000000000.avro").unlink()
    code = main(["verify", str(tmp_path / "b"), "--keys", keys, "--completeness"])
    out = capsys.readouterr().out
    assert code == 1 and "STOPPED  chain" in out and "missing" in out
