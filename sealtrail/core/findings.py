"""What verification finds: one :class:`Finding` type for every reader of the archive.

``verify``, replay, search rebuild, export, ``prove``, completeness, the archiver's
adoption check and the witness all report broken evidence as a :class:`Finding` whose
``kind`` is a :class:`Kind`. A finding says where the evidence first breaks: the chain,
the segment (or other object) key, the first seq of the chain that can no longer be
trusted, and where it helps, the value the evidence should have (``expected``) and the
value found (``found``).

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["ARCHIVE", "Finding", "Kind"]

#: ``chain_id`` of a finding about the archive as a whole (its index, holds, schemas).
ARCHIVE = "-"


class Kind(StrEnum):
    """The ways evidence breaks. Values are the names verify has always printed."""

    MISSING = "missing"  # an object the evidence requires is absent
    MODIFIED = "modified"  # bytes differ from what a signature covers
    REORDERED = "reordered"  # an object from elsewhere in the chain, or another chain
    TRUNCATED = "truncated"  # cut short
    SIGNATURE = "signature"  # a signature or signed hash does not verify (or key out of window)
    UNKNOWN_KEY = "unknown-key"  # signed by a key the verifier's keyring does not hold
    LINK = "link"  # a prev_hash or prev_checkpoint_hash does not link
    HASH = "hash"  # an entry hash does not match its content, or cannot be computed
    SEQ = "seq"  # a seq out of order
    EPOCH = "epoch"  # an entry of a fenced (older) epoch
    CHAIN = "chain"  # an entry of another chain
    COMPLETENESS = "completeness"  # raw offsets unaccounted for
    UNREFERENCED = "unreferenced"  # a segment no checkpoint covers
    MALFORMED = "malformed"  # not an object of the format at all
    ROLLBACK = "rollback"  # a chain or index behind what a signed index or a witness saw
    FORK = "fork"  # another checkpoint or index where a signed index or a witness saw one
    UNINDEXED = "unindexed"  # a chain older than the newest signed index but not in it
    STALE = "stale"  # the newest checkpoint or index is older than --max-age
    UNLOCKED = "unlocked"  # an object without Object Lock retention
    UNDER_RETAINED = "under-retained"  # retained less than its class requires
    HOLD_MISSING = "hold-missing"  # a legal hold a manifest calls for is off
    LOCK_UNREADABLE = "lock-unreadable"  # the lock state could not be read (server error)


@dataclass(frozen=True)
class Finding:
    """One piece of broken evidence. ``segment`` and ``seq`` say where the evidence first
    breaks: the object key (a segment, checkpoint or index), and the first seq of the
    chain that can no longer be trusted."""

    kind: Kind
    chain_id: str
    message: str
    segment: str | None = None
    seq: int | None = None
    expected: str | None = None
    found: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", Kind(self.kind))

    def __str__(self) -> str:
        where = f"chain {self.chain_id}" if self.chain_id != ARCHIVE else "archive"
        if self.segment:
            where += f", segment {self.segment}"
        if self.seq is not None:
            where += f", seq {self.seq}"
        return f"{where}: {self.kind.value}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "chain_id": self.chain_id, "message": self.message,
                "segment": self.segment, "seq": self.seq, "expected": self.expected,
                "found": self.found}
