"""The archiver checks a chain's tail before it writes after it (guarantee G3).

An archiver that takes over a chain it finds in the archive (on start, after a rebalance,
or when another archiver advanced it) continues it: the next segment links to the newest
checkpoint and its heartbeats restate that checkpoint's head, signed with the current key.
So before it writes anything for such a chain it checks, with the one verifier
(:mod:`sealtrail.core.chain_walk`):

* the checkpoints from the one the signed archive index lists for the chain (whose hash
  must be the index's) to the newest: signed by trusted keys, linked, contiguous, with no
  chain the index lists gone or behind it; a chain the index does not list, from its first
  checkpoint on;
* the newest segment itself, entry by entry, against its checkpoint;
* a chain it wrote itself earlier in this process: that the checkpoint it wrote last is
  still there, unchanged.

A chain whose tail does not check out is never written to or heartbeated: the archiver
raises :class:`TailCheckError`, which the archiver logs loudly, counts in a metric
(``sealtrail_archiver_tail_check_failures_total``) and keeps the chain quarantined.
"""

from __future__ import annotations

from sealtrail.archive import ArchiveStore, ObjectMissingError
from sealtrail.archive.segments import read_segment
from sealtrail.core import layout, merkle
from sealtrail.core.chain import ChainHead
from sealtrail.core.chain_walk import ChainWalk, PlannedSegment
from sealtrail.core.checkpoint import SignedCheckpoint
from sealtrail.core.findings import Finding, Kind
from sealtrail.core.index import SignedIndex
from sealtrail.core.merkle import Frontier
from sealtrail.core.signing import Keyring
from sealtrail.errors import IntegrityError
from sealtrail.verify import check_planned, now_us
from sealtrail.verify._reader import DECODER, StoreSource

__all__ = ["Tail", "TailCheckError", "check_tail", "check_written", "frontier_of"]


class TailCheckError(IntegrityError):
    """A chain's tail in the archive does not check out; nothing is written after it."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(f"refusing to write after chain {finding.chain_id}: its tail in the "
                         f"archive does not check out: {finding}")
        self.finding = finding


class Tail:
    """Where a checked chain stands: its newest checkpoint (None: no checkpoint yet)."""

    def __init__(self, chain_id: str, signed: SignedCheckpoint | None,
                 frontier: Frontier) -> None:
        self.chain_id = chain_id
        self.signed = signed
        self.frontier = frontier


def _fail(chain_id: str, message: str, key: str | None = None, seq: int | None = None,
          kind: Kind = Kind.MISSING) -> TailCheckError:
    return TailCheckError(Finding(kind, chain_id, message, key, seq))


def check_tail(store: ArchiveStore, chain_id: str, keyring: Keyring,
               index: SignedIndex | None, *, now: int | None = None) -> Tail:
    """Check ``chain_id``'s tail as the module docstring says; TailCheckError if it does not
    check out."""
    keys = store.list(f"{layout.CHAINS}{chain_id}/")
    checkpoints = sorted(k for k in keys if "/checkpoints/" in k)
    segments = [k for k in keys if "/segments/" in k]
    listed = index.chain(chain_id) if index is not None else None
    if not checkpoints:
        if listed is not None:
            raise _fail(chain_id, f"the chain has no checkpoint, but the signed archive index "
                        f"{index.seq if index else '?'} lists it at checkpoint "
                        f"{listed.checkpoint_index}")
        return Tail(chain_id, None, Frontier())
    walk = ChainWalk(chain_id, keyring, StoreSource(store, now or now_us(), segments), DECODER,
                     now_us=now or now_us(), claim=True)
    start = 0
    if listed is not None:
        key = layout.checkpoint_key(chain_id, listed.checkpoint_index)
        try:
            signed = SignedCheckpoint.from_bytes(store.get(key))
        except ObjectMissingError:
            raise _fail(chain_id, f"checkpoint {listed.checkpoint_index}, which the signed "
                        "archive index lists, is gone", key, listed.tree_size,
                        Kind.ROLLBACK) from None
        problem = signed.problem(keyring) or signed.checkpoint.inconsistency()
        if problem:
            kind = Kind.UNKNOWN_KEY if problem.startswith("unknown key") else Kind.SIGNATURE
            raise _fail(chain_id, f"checkpoint {listed.checkpoint_index}: {problem}", key,
                        None, kind)
        if signed.checkpoint_hash != listed.checkpoint_hash:
            raise _fail(chain_id, f"checkpoint {listed.checkpoint_index} is not the one the "
                        "signed archive index lists", key, None, Kind.FORK)
        walk.resume(signed)
        start = listed.checkpoint_index + 1
    for key in checkpoints[start:]:
        if walk.step(key, store.get(key)) is None:
            break
    # A segment right after the newest checkpoint is what a crash before its checkpoint
    # leaves: the writer checks its entries before it signs one (_complete_orphan).
    orphan = layout.segment_key(chain_id, walk.position)
    walk.finish([k for k in segments if k != orphan])
    if walk.finding is not None:
        raise TailCheckError(walk.finding)
    assert walk.last is not None
    newest = walk.planned[-1] if walk.planned else _planned(store, walk.last)
    if newest is not None:  # the newest segment itself, entry by entry
        outcome = check_planned(store, newest, keyring)
        if outcome.finding is not None:
            raise TailCheckError(outcome.finding)
    frontier = walk.last.checkpoint.frontier or frontier_of(store, chain_id,
                                                             walk.last.checkpoint.index)
    return Tail(chain_id, walk.last, frontier)


def _planned(store: ArchiveStore, signed: SignedCheckpoint) -> PlannedSegment | None:
    """``signed`` (a checked checkpoint) as a segment to check, from the checkpoint before
    it; None for a heartbeat or a segment no longer there (purged)."""
    cp = signed.checkpoint
    if not cp.segment_key or not store.exists(cp.segment_key):
        return None
    if cp.index == 0:
        genesis = ChainHead.genesis(cp.chain_id)
        return PlannedSegment(0, signed, genesis.seq, genesis.entry_hash)
    before = SignedCheckpoint.from_bytes(
        store.get(layout.checkpoint_key(cp.chain_id, cp.index - 1))).checkpoint
    return PlannedSegment(cp.index, signed, before.last_seq, before.head_hash)


def check_written(store: ArchiveStore, chain_id: str, index: int, checkpoint_hash: bytes
                  ) -> None:
    """The checkpoint this archiver wrote last for ``chain_id`` is still there, the same."""
    key = layout.checkpoint_key(chain_id, index)
    try:
        found = SignedCheckpoint.from_bytes(store.get(key))
    except ObjectMissingError:
        raise _fail(chain_id, f"checkpoint {index}, which this archiver wrote, is gone", key,
                    None, Kind.ROLLBACK) from None
    if found.checkpoint_hash != checkpoint_hash:
        raise _fail(chain_id, f"checkpoint {index} is not the one this archiver wrote", key,
                    None, Kind.FORK)


def frontier_of(store: ArchiveStore, chain_id: str, last: int) -> Frontier:
    """The Merkle tree of a chain whose newest checkpoint is format v1 (no tree stated):
    read from its segments, once, when an archiver takes such a chain over."""
    frontier = Frontier()
    for index in range(last + 1):
        cp = SignedCheckpoint.from_bytes(store.get(layout.checkpoint_key(chain_id, index)))
        if cp.checkpoint.frontier is not None:
            frontier = cp.checkpoint.frontier
        elif cp.checkpoint.segment_key:
            records = read_segment(store.get(cp.checkpoint.segment_key))
            frontier.extend(merkle.leaf_hashes([r["entry_hash"] for r in records]))
    return frontier
