"""The archiver checks a chain's tail before it writes after it, and never signs for a
chain it did not check: a removed tail, a planted or replaced checkpoint, an altered newest
segment or an orphan segment with a forged entry is refused, loudly, and counted."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import pytest
from helpers.archive_builder import (
    Clock,
    forge_checkpoint,
    reseal,
    segment_bytes,
    signer,
    write_object,
)
from helpers.compliance import CHAIN, KEYRING, SIGNER, ChainFeeder, writer

from sealtrail.archive import open_store
from sealtrail.archive.segments import read_segment
from sealtrail.consumers.segment_writer import ChainQuarantinedError
from sealtrail.core import layout
from sealtrail.core.checkpoint import SignedCheckpoint
from sealtrail.verify import verify_archive


def _archive(tmp_path: Path, segments: int = 3) -> tuple[Path, ChainFeeder]:
    root = tmp_path / "a"
    feed = ChainFeeder(writer(open_store(root)))
    for _ in range(segments):
        feed.segment(["auth.login", "auth.login"])
    return root, feed


def _next_record(feed: ChainFeeder) -> dict:
    """The next record the sealer would hand the archiver for the chain."""
    from helpers.archive_builder import _unsealed

    from sealtrail.core.chain import seal

    n = feed.head.seq + 1
    return seal(feed.head, _unsealed(n, 0, n, feed.clock.tick(), rejection=False), SIGNER)


def _restart(root: Path) -> object:
    return writer(open_store(root), clock=Clock(2_000_000_000_000_000))


def _refused(w: object, record: dict, caplog: pytest.LogCaptureFixture) -> str:
    with caplog.at_level(logging.ERROR, "sealtrail.archiver"), \
            pytest.raises(ChainQuarantinedError) as caught:
        w.add(record)  # type: ignore[attr-defined]
    assert "TAIL CHECK FAILED" in caplog.text
    assert w.tail_failures == 1 and CHAIN in w.quarantined  # type: ignore[attr-defined]
    with pytest.raises(ChainQuarantinedError):  # and it stays refused
        w.add(record)  # type: ignore[attr-defined]
    assert w.heartbeat(0.0, [CHAIN]) == 0  # type: ignore[attr-defined]
    return str(caught.value)


def test_an_intact_tail_is_adopted_and_continued(tmp_path: Path) -> None:
    """A restarted archiver checks the tail, continues the chain, and verify passes."""
    root, feed = _archive(tmp_path)
    w = _restart(root)
    w.add(_next_record(feed))  # type: ignore[attr-defined]
    w.flush()  # type: ignore[attr-defined]
    assert w.tail_failures == 0  # type: ignore[attr-defined]
    assert verify_archive(open_store(root), KEYRING).ok


def test_a_removed_tail_is_not_continued(tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """The newest segment and checkpoint removed (the index still lists them): the
    restarted archiver refuses the chain and writes nothing after the shortened tail."""
    root, feed = _archive(tmp_path)
    record = _next_record(feed)
    (root / layout.segment_key(CHAIN, 2)).unlink()
    (root / layout.checkpoint_key(CHAIN, 2)).unlink()
    before = sorted(p.name for p in (root / "chains" / CHAIN / "checkpoints").iterdir())
    w = _restart(root)
    assert "rollback" in _refused(w, record, caplog)
    w.flush()  # type: ignore[attr-defined]
    assert sorted(p.name for p in (root / "chains" / CHAIN / "checkpoints").iterdir()) == before


def test_a_heartbeat_is_never_signed_after_an_unchecked_tail(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A newest checkpoint re-signed by an unknown key: no heartbeat is written for it."""
    root, _ = _archive(tmp_path)
    path = root / layout.checkpoint_key(CHAIN, 2)
    write_object(path, forge_checkpoint(SignedCheckpoint.from_bytes(path.read_bytes()),
                                        signer("attacker")))
    w = _restart(root)
    with caplog.at_level(logging.ERROR, "sealtrail.archiver"):
        assert w.heartbeat(0.0, [CHAIN]) == 0  # type: ignore[attr-defined]
    assert w.tail_failures == 1 and "unknown-key" in str(w.quarantined[CHAIN])  # type: ignore[attr-defined]
    assert not (root / layout.checkpoint_key(CHAIN, 3)).exists()


def test_an_altered_newest_segment_is_refused(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """The newest segment, with one entry altered and re-hashed, does not check out."""
    root, feed = _archive(tmp_path)
    record = _next_record(feed)
    path = root / layout.segment_key(CHAIN, 2)
    records = read_segment(path.read_bytes())
    records[1]["event"]["actor"]["id"] = "mallory"
    reseal(records, 1)
    write_object(path, segment_bytes(CHAIN, records))
    assert "segments/0000000002.avro" in _refused(_restart(root), record, caplog)


def test_the_checkpoint_it_wrote_last_must_still_be_there(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A running archiver whose own newest checkpoint was replaced under it (here by a
    valid, re-signed one restating another head) writes nothing more for the chain."""
    root, feed = _archive(tmp_path)
    path = root / layout.checkpoint_key(CHAIN, 2)
    original = SignedCheckpoint.from_bytes(path.read_bytes())
    changed = dataclasses.replace(original.checkpoint, created_at=original.checkpoint.created_at
                                  + 1)
    write_object(path, changed.sign(SIGNER).to_bytes())
    with caplog.at_level(logging.ERROR, "sealtrail.archiver"):
        feed.writer.add(_next_record(feed))
        feed.writer.flush()
    assert feed.writer.tail_failures == 1
    assert "not the one this archiver wrote" in str(feed.writer.quarantined[CHAIN])
    assert not (root / layout.segment_key(CHAIN, 3)).exists()


def test_an_orphan_segment_with_a_forged_entry_is_not_signed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A segment with no checkpoint (as a crash leaves it) is only checkpointed when its
    entries continue the chain under trusted keys; a planted one is refused, unsigned."""
    root, feed = _archive(tmp_path, segments=2)
    record = _next_record(feed)
    records = read_segment((root / layout.segment_key(CHAIN, 1)).read_bytes())
    head = records[-1]
    forged = dict(record)
    forged["event"] = {**record["event"], "action": "approve"}
    reseal([head, forged], 1, signer("attacker"))
    write_object(root / layout.segment_key(CHAIN, 2), segment_bytes(CHAIN, [forged]))
    assert "unknown-key" in _refused(_restart(root), record, caplog)
    assert not (root / layout.checkpoint_key(CHAIN, 2)).exists()


def test_a_chain_advanced_by_another_archiver_is_checked_and_continued(
        tmp_path: Path) -> None:
    """Another archiver (same keys) advanced the chain: a stale writer notices at its next
    heartbeat, checks the new tail and goes on."""
    root, feed = _archive(tmp_path)
    stale = writer(open_store(root))
    stale.heartbeat(3600.0, [CHAIN])  # loads and checks the chain, writes nothing
    feed.segment(["auth.login"])  # the other archiver writes segment 3
    assert stale.heartbeat(0.0, [CHAIN]) == 0  # checkpoint 3 exists: reload
    stale.heartbeat(0.0, [CHAIN])  # checks the new tail (idle time counts from here)
    time.sleep(0.01)
    assert stale.heartbeat(0.0, [CHAIN]) == 1  # heartbeated after segment 3
    assert stale.tail_failures == 0
    assert verify_archive(open_store(root), KEYRING).ok
