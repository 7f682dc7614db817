"""Fencing stale writers out of a chain, decided by whoever reads the sealed topic.

The embedded broker (Tansu) does not fence zombie producers: a sealer that was paused
while its partition moved to another sealer can still commit records when it resumes.
So the chain fences for itself. Reading one sealed partition in offset order, a reader
keeps the *head* of the last record it admitted for a chain and admits the next record
only when it continues that head exactly:

* same ``chain_id``,
* ``seq`` is the head's seq + 1,
* ``prev_hash`` is the head's ``entry_hash`` (genesis hash for the first entry),
* ``epoch`` is not lower than the head's (a new owner opens a higher epoch; a record of
  an older epoch after a newer one comes from a writer that lost the partition).

Everything else is refused and never becomes the head: a zombie's records (stale epoch,
or a fork of history already admitted), the continuation of a refused branch, and
re-deliveries of records already admitted. The first record that continues the head
wins, so the outcome depends only on the order of the partition, and every reader
(archiver, the sealer's own recovery) that replays the same partition admits the same
records. See docs/architecture.md for the writer side that makes this sufficient.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sealtrail.core.chain import ChainHead

__all__ = ["Fence", "Replay", "Verdict", "describe", "judge", "replay_tail"]


class Verdict(Enum):
    """What a reader does with the next record of a chain."""

    ADMIT = "admit"
    """It continues the head: seq + 1, links to it, epoch not lower."""
    STALE = "stale"
    """Its epoch is lower than the head's: written by an owner that lost the partition."""
    BEHIND = "behind"
    """Its seq is at or before the head's: a re-delivery, or a fork of admitted history."""
    FORK = "fork"
    """Next seq, but it links to another entry than the head: a sibling of the head."""
    GAP = "gap"
    """Its seq is beyond the next one: it continues a branch that was refused."""
    OTHER_CHAIN = "other-chain"
    """It belongs to another chain than the head."""


def judge(head: ChainHead, record: Mapping[str, Any]) -> Verdict:
    """The verdict on ``record`` as the next record after ``head``."""
    if record["chain_id"] != head.chain_id:
        return Verdict.OTHER_CHAIN
    if record["epoch"] < head.epoch:
        return Verdict.STALE
    seq = record["seq"]
    if seq <= head.seq:
        return Verdict.BEHIND
    if seq > head.seq + 1:
        return Verdict.GAP
    if record["prev_hash"] != head.entry_hash:
        return Verdict.FORK
    return Verdict.ADMIT


def _head(record: Mapping[str, Any]) -> ChainHead:
    return ChainHead(record["chain_id"], record["seq"], record["entry_hash"], record["epoch"])


class Fence:
    """The rule applied to a stream of sealed records of many chains (the archiver).

    ``admit`` returns True for a record to keep. The first time a chain is seen, its head
    is seeded from what is already archived (``archived_seq``, ``archived_hash``; seq -1
    means nothing is, and the genesis hash is used); the archived head's epoch is not
    known then, so the epoch rule applies from the first admitted record on.
    """

    def __init__(self) -> None:
        self._heads: dict[str, ChainHead] = {}
        self.refused: dict[Verdict, int] = {}

    def head(self, chain_id: str) -> ChainHead | None:
        return self._heads.get(chain_id)

    def admit(
        self,
        record: Mapping[str, Any],
        archived_seq: int,
        archived_hash: bytes,
        report: Callable[[str], None] | None = None,
    ) -> bool:
        """Whether to keep ``record``; ``report`` is told why a record is refused (not for
        plain re-deliveries, which are expected after a restart)."""
        chain_id = record["chain_id"]
        head = self._heads.get(chain_id)
        if head is None or head.seq < archived_seq:
            head = (ChainHead.genesis(chain_id) if archived_seq < 0
                    else ChainHead(chain_id, archived_seq, archived_hash, 0))
        verdict = judge(head, record)
        if verdict is Verdict.ADMIT:
            self._heads[chain_id] = _head(record)
            return True
        self.refused[verdict] = self.refused.get(verdict, 0) + 1
        if report is not None and verdict is not Verdict.BEHIND:
            report(describe(verdict, head, record))
        return False


def describe(verdict: Verdict, head: ChainHead, record: Mapping[str, Any]) -> str:
    """A sentence naming the chain, seq and epochs of a refused record."""
    return (f"chain {record['chain_id']}: refused seq {record['seq']} epoch {record['epoch']} "
            f"({verdict.value}): the chain's head is seq {head.seq} epoch {head.epoch}; "
            "written by a sealer that no longer owns the partition (fenced)")


@dataclass(frozen=True)
class Replay:
    """The outcome of replaying the tail of a sealed partition: the admitted head, the
    admitted records (in order, oldest first, as far back as the tail shows them), the
    highest epoch seen in the tail (admitted or not) and how many records were refused."""

    head: ChainHead
    admitted: Sequence[Mapping[str, Any]]
    max_epoch: int
    refused: int


def replay_tail(records: Sequence[Mapping[str, Any]]) -> Replay | None:
    """The admitted chain in the tail ``records`` of one sealed partition (offset order).

    The tail may begin in the middle of the chain, so the first record is not
    necessarily admitted. The replay anchors on the first record of the highest epoch in
    the tail: the writer that opened that epoch recovered from an admitted head and
    checked, before committing, that nothing else was written after it (see
    docs/architecture.md), so its records are admitted; every record of an older epoch
    after it is stale. From the anchor the rule runs forward; backward, the admitted
    history is the path of ``prev_hash`` links from the anchor. None when ``records`` is
    empty. Only records of the anchor's chain count.
    """
    if not records:
        return None
    max_epoch = max(r["epoch"] for r in records)
    start = next(i for i, r in enumerate(records) if r["epoch"] == max_epoch)
    anchor = records[start]
    before = _linked_back(anchor, records[:start])
    head = _head(anchor)
    admitted = [*before, anchor]
    refused = start - len(before)
    for record in records[start + 1:]:
        if judge(head, record) is Verdict.ADMIT:
            admitted.append(record)
            head = _head(record)
        else:
            refused += 1
    return Replay(head, admitted, max_epoch, refused)


def _linked_back(
    anchor: Mapping[str, Any], earlier: Iterable[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The records of ``earlier`` on the path of prev_hash links ending at ``anchor``,
    oldest first (the first record with a given hash wins, as in the forward rule)."""
    by_hash: dict[bytes, Mapping[str, Any]] = {}
    for record in earlier:
        if record["chain_id"] == anchor["chain_id"]:
            by_hash.setdefault(record["entry_hash"], record)
    path: list[Mapping[str, Any]] = []
    want, seq = anchor["prev_hash"], anchor["seq"] - 1
    while (found := by_hash.get(want)) is not None and found["seq"] == seq:
        path.append(found)
        want, seq = found["prev_hash"], seq - 1
    path.reverse()
    return path
