"""The archiver never splits a batch (record format 2): a segment ends with a signed entry,
an open batch stays buffered until its seal arrives, and the consumer offsets it commits
stop at the first record still buffered, so a restart reads the open batch again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.archive_builder import _unsealed
from helpers.compliance import CHAIN, KEYRING, SIGNER, writer

from sealtrail.archive import open_store
from sealtrail.archive.segments import read_segment
from sealtrail.core import layout
from sealtrail.core.chain import ChainHead, seal, seal_batch
from sealtrail.errors import TransportError
from sealtrail.pipeline.recovery import _open_batch
from sealtrail.verify import verify_archive


def _batch(head: ChainHead, size: int, *, close: bool = True) -> list[dict[str, Any]]:
    """``size`` entries after ``head`` as the sealer writes them: unsigned, the last one
    carrying the batch seal (unless ``close`` is False: a batch cut short)."""
    records, hashes = [], []
    for _ in range(size):
        n = head.seq + 1
        record = seal(head, _unsealed(n, 0, n, 1_700_000_000_000_000 + n, rejection=False),
                      SIGNER, sign=False)
        head = head.advance(record)
        hashes.append(record["entry_hash"])
        records.append(record)
    if close:
        seal_batch(records[0]["seq"], hashes, records[-1], SIGNER)
    return records


def _head(records: list[dict[str, Any]]) -> ChainHead:
    return ChainHead.genesis(CHAIN).advance(records[-1])


def test_a_segment_ends_at_a_seal_and_the_open_batch_waits(tmp_path: Path) -> None:
    store = open_store(tmp_path / "a")
    w = writer(store)
    first = _batch(ChainHead.genesis(CHAIN), 3)
    second = _batch(_head(first), 4)
    for offset, record in enumerate([*first, *second[:2]]):
        w.add(record, position=(0, 100 + offset))
    w.flush()
    segment = read_segment(store.get(layout.segment_key(CHAIN, 0)))
    assert [r["seq"] for r in segment] == [0, 1, 2]  # the first batch, not the open one
    assert w.buffered == 2
    assert w.held() == {0: 103}  # the commit stops at the open batch's first record
    assert verify_archive(store, KEYRING).ok

    for offset, record in enumerate(second[2:], 5):
        w.add(record, position=(0, 100 + offset))
    w.flush()
    assert [r["seq"] for r in read_segment(store.get(layout.segment_key(CHAIN, 1)))] == \
        [3, 4, 5, 6]
    assert w.buffered == 0 and w.held() == {}
    assert verify_archive(store, KEYRING).ok


def test_an_open_batch_alone_writes_nothing(tmp_path: Path) -> None:
    store = open_store(tmp_path / "a")
    w = writer(store)
    for offset, record in enumerate(_batch(ChainHead.genesis(CHAIN), 3, close=False)):
        w.add(record, position=(2, offset))
    w.flush()
    assert w.segments_written == 0 and not store.exists(layout.segment_key(CHAIN, 0))
    assert w.held() == {2: 0}


def test_a_batch_cut_short_is_covered_by_the_next_owners_seal(tmp_path: Path) -> None:
    """Tansu shows the start of an aborted batch: the next owner's first seal covers it
    (recovery hands it those entries as the open batch), and the archive verifies."""
    store = open_store(tmp_path / "a")
    w = writer(store)
    sealed = _batch(ChainHead.genesis(CHAIN), 2)
    orphans = _batch(_head(sealed), 3, close=False)
    hashes = _open_batch([*sealed, *orphans], 0)
    assert hashes == [r["entry_hash"] for r in orphans]
    new_owner = _batch(_head(orphans), 2, close=False)  # its batch, sealed over both
    hashes += [r["entry_hash"] for r in new_owner]
    seal_batch(orphans[0]["seq"], hashes, new_owner[-1], SIGNER)
    for record in [*sealed, *orphans, *new_owner]:
        w.add(record)
    w.flush()
    assert verify_archive(store, KEYRING).ok


def test_the_open_batch_of_a_tail(tmp_path: Path) -> None:
    sealed = _batch(ChainHead.genesis(CHAIN), 3)
    assert _open_batch(sealed, 0) == []
    orphans = _batch(_head(sealed), 2, close=False)
    assert _open_batch([*sealed, *orphans], 0) == [r["entry_hash"] for r in orphans]
    first = _batch(ChainHead.genesis(CHAIN), 2, close=False)
    assert _open_batch(first, 0) == [r["entry_hash"] for r in first]  # from seq 0
    # a tail that starts mid-chain with no signed entry cannot say where its batch began
    with pytest.raises(TransportError, match="no signed entry"):
        _open_batch(orphans, 0)


def test_a_segment_that_ends_unsealed_fails_verification(tmp_path: Path) -> None:
    """The archiver never writes one; an attacker who cuts a segment after an unsigned
    entry (and could re-sign the checkpoint) still fails: unsealed entries are not
    evidence."""
    from sealtrail.core.findings import Kind
    from sealtrail.core.segment_check import check_entries

    records = _batch(ChainHead.genesis(CHAIN), 4)
    head, _, broken = check_entries(ChainHead.genesis(CHAIN), None, records[:3], KEYRING)
    assert broken is not None and broken.kind is Kind.SIGNATURE and broken.seq == 0
    assert head.seq == -1  # nothing of the open batch is taken
    head, _, broken = check_entries(ChainHead.genesis(CHAIN), None, records, KEYRING)
    assert broken is None and head.seq == 3
