"""The values a chain walk (:mod:`sealtrail.core.chain_walk`) takes and gives: where it
reads segments from, the anchors it holds a chain to, what it counted, and each checkpoint
that checked out. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sealtrail.core.chain import ChainHead
from sealtrail.core.checkpoint import Checkpoint, SignedCheckpoint
from sealtrail.core.segment_check import SegmentOutcome, SegmentStart

__all__ = ["Anchor", "ChainSource", "ChainStats", "PlannedSegment", "Step"]


class ChainSource(Protocol):
    """Where a walk gets what it reads besides the checkpoints."""

    def segment(self, key: str) -> bytes | None:
        """The segment's bytes, None when there is no object at ``key``."""
        ...

    def present(self, key: str) -> bool:
        """Whether there is an object at ``key`` (claim mode reads no segment)."""
        ...

    def still_retained(self, checkpoint_key: str, segment_key: str) -> str | None:
        """Why, by the archive's own (unsigned) records, a missing segment should still be
        there (a legal hold, a later retain-until), or None. It can only make a purge a
        *missing* finding, never the reverse."""
        ...


@dataclass(frozen=True)
class Anchor:
    """A checkpoint that a signed record outside the chain says the chain reached."""

    source: str  # who says so: "archive index 57", "witness ops-1"
    checkpoint_index: int
    checkpoint_hash: bytes
    tree_size: int  # last_seq + 1 of that checkpoint


@dataclass
class ChainStats:
    """What a walk counted, over the checkpoints and entries that checked out."""

    segments: int = 0
    checkpoints: int = 0
    heartbeats: int = 0
    entries: int = 0
    events: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    purged: int = 0  # entries of segments purged after their signed retain-until
    last_checkpoint_at: int | None = None
    first_checkpoint_at: int | None = None
    unsigned_retention: int = 0  # checkpoints of format v1 (no signed retention)


@dataclass(frozen=True)
class PlannedSegment:
    """A checked checkpoint whose segment is read later (claim mode)."""

    position: int
    signed: SignedCheckpoint
    head_seq: int
    head_hash: bytes

    @property
    def checkpoint(self) -> Checkpoint:
        return self.signed.checkpoint

    def start(self) -> SegmentStart:
        """Where the chain stands before this segment, by the previous checkpoint's claim
        (epoch and raw offset unknown: checked where the segments meet)."""
        head = ChainHead(self.checkpoint.chain_id, self.head_seq, self.head_hash, 0)
        return SegmentStart(head, None, epoch_known=False)


@dataclass(frozen=True)
class Step:
    """One checkpoint that checked out, and its segment's outcome (None for a heartbeat,
    a purged segment, or in claim mode)."""

    position: int
    key: str
    signed: SignedCheckpoint
    outcome: SegmentOutcome | None = None
    purged: bool = False
    tree_root: bytes | None = None  # the chain's Merkle root after it (None: not known)
