"""The chain check of a Kafka replay (sealtrail.replay._links): records are released only
once they are evidence (format 1: on their own; format 2: when the batch seal after them
verifies), a failing seal breaks its whole batch, a chain read from inside a batch is
anchored after its first signed entry, and a resumed run continues from the saved anchors."""

from __future__ import annotations

from typing import Any

from helpers.archive_builder import T0, _unsealed, keyring_of, signer

from sealtrail.core.chain import ChainHead, entry_hash, seal, seal_batch
from sealtrail.core.findings import Kind
from sealtrail.replay._links import ChainLinks

SEALER = signer("sealer-1")
KEYRING = keyring_of(SEALER)
CHAIN = "audit.raw.0.test"
TOPIC = "audit.sealed"


def chain(batches: list[int], *, format1: bool = False) -> list[dict[str, Any]]:
    """A chain of batches of the given sizes, sealed as the sealer does (format 2), or
    every entry signed on its own (format 1)."""
    head, records = ChainHead.genesis(CHAIN), []
    for size in batches:
        first, hashes = head.seq + 1, []
        for _ in range(size):
            n = head.seq + 1
            record = seal(head, _unsealed(n, 0, n, T0 + n * 1000, rejection=False), SEALER,
                          sign=format1)
            head = head.advance(record)
            hashes.append(record["entry_hash"])
            records.append(record)
        if not format1:
            seal_batch(first, hashes, records[-1], SEALER)
    return records


def feed(links: ChainLinks, records: list[dict[str, Any]], start: int = 0
         ) -> tuple[list[int], list[Any]]:
    """Check ``records`` as read from Kafka offsets ``start``..; the seqs released, breaks."""
    released, breaks = [], []
    for at, record in enumerate(records, start):
        if record["chain_id"] in links.broken or links.released_before(record):
            continue
        out, problem = links.check(record, 0, at)
        released += [r["seq"] for r in out]
        if problem is not None:
            breaks.append(problem)
    return released, breaks


def rechain(records: list[dict[str, Any]], start: int) -> None:
    """Re-link records from ``start`` on after a change, as anyone can (no key needed)."""
    for i in range(start, len(records)):
        if i:
            records[i]["prev_hash"] = records[i - 1]["entry_hash"]
        records[i]["entry_hash"] = entry_hash(records[i])


def test_batches_are_released_when_their_seal_verifies() -> None:
    """Each batch comes out whole at its seal, none of it before."""
    records = chain([3, 1, 4])
    links = ChainLinks(KEYRING, TOPIC)
    steps = [links.check(r, 0, at) for at, r in enumerate(records)]
    assert [[r["seq"] for r in out] for out, _ in steps] == [
        [], [], [0, 1, 2], [3], [], [], [], [4, 5, 6, 7]]
    assert all(problem is None for _, problem in steps)
    assert links.unsealed_count() == 0 and links.anchoring == 0 and links.held_from(0) is None
    assert links.anchors(0)[CHAIN]["seq"] == 7


def test_format_1_entries_are_released_one_by_one_even_read_mid_chain() -> None:
    """Entry signatures verify on their own: every record as soon as it is read."""
    records = chain([6], format1=True)
    links = ChainLinks(KEYRING, TOPIC)
    for at, record in enumerate(records[2:], 2):
        out, problem = links.check(record, 0, at)
        assert problem is None and [r["seq"] for r in out] == [record["seq"]]
    assert links.anchoring == 0 and not links.notes


def test_a_forged_seal_breaks_its_whole_batch() -> None:
    """An attacker rewrites an entry of the last batch, re-links it and reuses a real seal:
    the seal does not verify, the break names the batch and none of it is released."""
    records = chain([3, 4])
    records[4]["event"]["action"] = "forged"
    rechain(records, 4)
    records[6]["signature"] = records[2]["signature"]  # a real seal, of another batch
    released, breaks = feed(ChainLinks(KEYRING, TOPIC), records)
    assert released == [0, 1, 2]
    [problem] = breaks
    assert problem.kind == Kind.SIGNATURE and problem.seq == 3
    assert "the batch seal of seq 3..6" in problem.message
    assert problem.segment == f"{TOPIC}/0@3..6"


def test_unsigned_records_with_no_seal_are_held_not_released() -> None:
    """A batch whose seal is not read (past the run's end; or records of an aborted
    transaction a broker still shows) is held: not released, reported, not a break; the
    saved position stays at its first record."""
    records = chain([2, 3])[:4]
    for record in records[2:]:
        record["signature"] = b""
    rechain(records, 3)
    links = ChainLinks(KEYRING, TOPIC)
    released, breaks = feed(links, records, start=10)
    assert released == [0, 1] and breaks == []
    assert links.unsealed_count() == 2 and links.held_from(0) == 12
    assert links.unsealed() == [f"chain {CHAIN}: seq 2..3 are unsigned and no batch seal "
                                "after them covers them (a batch ends with its seal; these "
                                "are not evidence); not replayed"]


def test_an_entry_signature_after_unsigned_entries_is_a_break() -> None:
    """An entry signature does not close a batch: the unsigned entries before it stay
    unproven, and the break says so."""
    records = chain([3])
    records[1]["signature"] = b""
    records[2]["signature"] = SEALER.sign(b"sealtrail:sig:entry:v1\x00" + records[2]["entry_hash"])
    released, breaks = feed(ChainLinks(KEYRING, TOPIC), records)
    assert released == []
    assert [b.kind for b in breaks] == [Kind.SIGNATURE]
    assert "entry signature, not a batch seal" in breaks[0].message


def test_a_chain_read_from_inside_a_batch_anchors_after_its_seal() -> None:
    """Records read before a chain's first signed entry cannot be checked when their batch
    started earlier: they anchor the chain, are counted and named, never released; the
    batches after are released."""
    records = chain([5, 3])
    links = ChainLinks(KEYRING, TOPIC)
    released, breaks = feed(links, records[2:], start=2)
    assert released == [5, 6, 7] and breaks == []
    assert links.anchoring == 3
    assert links.notes == [f"chain {CHAIN}: seq 2..4 read only to anchor the chain (the "
                           "replay started inside their batch, so its seal cannot be "
                           "checked); not replayed"]


def test_a_chain_read_from_a_batch_start_is_released_whole() -> None:
    """A reader that happens to start at a batch start verifies that batch too."""
    records = chain([5, 3])
    links = ChainLinks(KEYRING, TOPIC)
    released, breaks = feed(links, records[5:], start=5)
    assert released == [5, 6, 7] and breaks == [] and links.anchoring == 0


def test_a_seal_by_an_unknown_key_is_a_break_even_mid_batch() -> None:
    """Starting mid-batch excuses a seal that does not cover what was read, not a seal by
    a key the keyring does not hold."""
    records = chain([5, 3])
    links = ChainLinks(keyring_of(signer("someone-else")), TOPIC)
    released, breaks = feed(links, records[2:], start=2)
    assert released == [] and [b.kind for b in breaks] == [Kind.UNKNOWN_KEY]


def test_a_forged_batch_after_the_anchor_is_still_a_break() -> None:
    """Anchoring mid-batch does not lower the bar for the batches after it."""
    records = chain([5, 3])
    records[6]["event"]["action"] = "forged"
    rechain(records, 6)
    released, breaks = feed(ChainLinks(KEYRING, TOPIC), records[2:], start=2)
    assert released == [] and [(b.kind, b.seq) for b in breaks] == [(Kind.SIGNATURE, 5)]


def test_a_resumed_run_continues_from_the_saved_anchor() -> None:
    """A run stopped with a batch held saves the chain's last signed entry and the offset
    of the first held record; the resumed run re-reads the batch, checks its link to the
    anchor and releases every record once over both runs."""
    records = chain([3, 4, 2])
    first = ChainLinks(KEYRING, TOPIC)
    released, _ = feed(first, records[:5])
    assert released == [0, 1, 2] and first.held_from(0) == 3
    anchors = first.anchors(0)
    assert anchors[CHAIN]["seq"] == 2 and anchors[CHAIN]["partition"] == 0
    saved = {chain_id: {**a, "chain_id": chain_id} for chain_id, a in anchors.items()}
    # a partition is re-read from its first held record; earlier ones are skipped
    second = ChainLinks(KEYRING, TOPIC, saved)
    more, breaks = feed(second, records[1:], start=1)
    assert breaks == [] and released + more == list(range(9))
    assert second.anchoring == 0


def test_a_resumed_run_checks_the_link_to_its_anchor() -> None:
    """The first record after a resume must link to the saved anchor."""
    records = chain([3, 4])
    saved = {CHAIN: {"chain_id": CHAIN, "seq": 2, "entry_hash": "00" * 32, "epoch": 0,
                     "raw_offset": 2, "partition": 0}}
    released, breaks = feed(ChainLinks(KEYRING, TOPIC, saved), records[3:], start=3)
    assert released == [] and [b.kind for b in breaks] == [Kind.LINK]


def test_without_signatures_batches_are_released_at_their_signed_entry() -> None:
    """--no-signatures checks hashes and links only, batch by batch as with signatures."""
    records = chain([3, 2])
    records[4]["signature"] = b"\x01" + bytes(64)  # not checked
    released, breaks = feed(ChainLinks(None, TOPIC), records)
    assert released == [0, 1, 2, 3, 4] and breaks == []
