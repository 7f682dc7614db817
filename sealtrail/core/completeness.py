"""Completeness per raw partition (G1): which source offsets the sealed chains cover.

Every raw record becomes exactly one entry (an event or a rejection) of the chain of its
partition, so the entries' ``source`` coordinates must cover each raw partition's
offsets with no hole and no offset twice, across all the chains that partition ever
had (a recreated topic or a replaced cluster starts a new chain). The input is runs of
consecutive offsets, as a verifier reads them chain by chain; the output says, per raw
topic and partition, the ranges covered, the holes between them and the offsets covered
more than once.

Segments purged after their retention (docs/format.md, "Purged segments") no longer say
which offsets they held, only how many entries: a :class:`Purged` marker in a chain's
coordinates stands for them, and the offsets across it count as covered when the entries
on both sides are exactly that many offsets apart.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Coverage", "Purged", "Run", "coverage", "runs_of"]


@dataclass(frozen=True)
class Run:
    """Offsets ``first..last`` (inclusive) of raw ``topic``/``partition``, consecutive in
    chain ``chain_id``."""

    chain_id: str
    topic: str
    partition: int
    first: int
    last: int


@dataclass(frozen=True)
class Coverage:
    """What the chains cover of one raw partition. ``ranges`` are merged, inclusive and
    sorted; ``holes`` lie between them; ``overlaps`` are ranges covered more than once."""

    topic: str
    partition: int
    ranges: tuple[tuple[int, int], ...]
    holes: tuple[tuple[int, int], ...]
    overlaps: tuple[tuple[int, int], ...]
    chains: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """No hole and no offset twice, from the first covered offset to the last."""
        return not self.holes and not self.overlaps

    @property
    def covered(self) -> int:
        return sum(last - first + 1 for first, last in self.ranges)


@dataclass(frozen=True)
class Purged:
    """``count`` entries of a chain whose segment was purged after its retention."""

    count: int


def runs_of(chain_id: str, coordinates: Iterable[tuple[str, int, int] | Purged]) -> list[Run]:
    """Runs of consecutive offsets in ``coordinates`` (topic, partition, offset), in the
    order of one chain's entries; a new run starts wherever an offset does not follow. Across
    :class:`Purged` entries, an offset follows when it is exactly that many further on."""
    runs: list[Run] = []
    current: Run | None = None
    purged = 0
    for item in coordinates:
        if isinstance(item, Purged):
            purged += item.count
            continue
        topic, partition, offset = item
        if (current is not None and current.topic == topic and current.partition == partition
                and current.last + purged == offset - 1):
            current = Run(chain_id, topic, partition, current.first, offset)
            purged = 0
            continue
        if current is not None:
            runs.append(current)
        current = Run(chain_id, topic, partition, offset, offset)
        purged = 0
    if current is not None:
        runs.append(current)
    return runs


def coverage(runs: Iterable[Run]) -> list[Coverage]:
    """Per raw topic and partition (sorted), the merged coverage of ``runs``."""
    by_partition: dict[tuple[str, int], list[Run]] = {}
    for run in runs:
        if run.last < run.first:
            raise ValueError(f"run {run} ends before it starts")
        by_partition.setdefault((run.topic, run.partition), []).append(run)
    out = []
    for (topic, partition), found in sorted(by_partition.items()):
        found.sort(key=lambda r: (r.first, r.last))
        ranges: list[tuple[int, int]] = []
        holes: list[tuple[int, int]] = []
        overlaps: list[tuple[int, int]] = []
        for run in found:
            if not ranges:
                ranges.append((run.first, run.last))
                continue
            first, last = ranges[-1]
            if run.first <= last:
                overlaps.append((run.first, min(last, run.last)))
                ranges[-1] = (first, max(last, run.last))
            elif run.first == last + 1:
                ranges[-1] = (first, run.last)
            else:
                holes.append((last + 1, run.first - 1))
                ranges.append((run.first, run.last))
        out.append(Coverage(topic, partition, tuple(ranges), tuple(holes), tuple(overlaps),
                            tuple(sorted({r.chain_id for r in found}))))
    return out
