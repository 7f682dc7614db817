"""``sealtrail verify --completeness``: per raw partition, the source offsets the archive's
chains cover, and any hole between them (G1).

Reads the segments that checkpoints cover, chain by chain, and hands runs of consecutive
source offsets to :func:`sealtrail.core.completeness.coverage`. Signatures and hashes are
``verify``'s job; this report is meaningful for an archive that verifies, and works on
every one that does: heartbeat checkpoints cover no segment, and a segment purged after
its retention counts by its checkpoint's entry count (:class:`Purged`). Where a chain
cannot be read on (a checkpoint or segment that is missing, damaged or not what it
claims), its coverage stops there and the report says so; verify names the break.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from sealtrail import layout
from sealtrail.archive import ArchiveError, ArchiveStore, ObjectMissingError
from sealtrail.core.checkpoint import SignedCheckpoint
from sealtrail.core.completeness import Coverage, Purged, Run, coverage, runs_of
from sealtrail.errors import DataError
from sealtrail.segments import read_segment

__all__ = ["ArchiveCoverage", "archive_coverage", "print_completeness"]


@dataclass
class ArchiveCoverage:
    """Coverage per raw partition, the entries counted from purged segments' checkpoints,
    and the chains whose coverage stops early (with why)."""

    partitions: list[Coverage]
    chains: int = 0
    purged: int = 0
    stopped: list[str] = field(default_factory=list)


def _coordinates(store: ArchiveStore, chain_id: str, keys: list[str],
                 found: ArchiveCoverage) -> list[tuple[str, int, int] | Purged]:
    from sealtrail.verify import _purged  # the one rule for a legitimately purged segment

    out: list[tuple[str, int, int] | Purged] = []
    prefix = f"{layout.CHAINS}{chain_id}/checkpoints/"
    for key in sorted(k for k in keys if k.startswith(prefix)):
        try:
            cp = SignedCheckpoint.from_bytes(store.get(key)).checkpoint
            if not cp.segment_key:
                continue  # a heartbeat: no entries
            try:
                records = read_segment(store.get(cp.segment_key))
            except ObjectMissingError:
                if not _purged(store, key):
                    raise
                out.append(Purged(cp.size))
                found.purged += cp.size
                continue
            for record in records:
                source = record["source"]
                out.append((str(source["topic"]), int(source["partition"]),
                            int(source["offset"])))
        except (DataError, ArchiveError, KeyError, TypeError, ValueError) as exc:
            found.stopped.append(f"chain {chain_id}: coverage stops at {key}: "
                                 f"{type(exc).__name__}: {str(exc)[:300]}")
            break
    return out


def archive_coverage(store: ArchiveStore) -> ArchiveCoverage:
    """Coverage of every raw partition by the checkpointed segments of every chain."""
    found = ArchiveCoverage([])
    runs: list[Run] = []
    keys = store.list(layout.CHAINS)
    for chain_id in layout.chain_ids(keys):
        found.chains += 1
        runs.extend(runs_of(chain_id, _coordinates(store, chain_id, keys, found)))
    found.partitions = coverage(runs)
    return found


def _ranges(ranges: tuple[tuple[int, int], ...]) -> str:
    return ", ".join(f"{a}..{b}" for a, b in ranges) or "-"


def to_json(found: ArchiveCoverage) -> dict[str, Any]:
    return {"completeness": [
        {"topic": c.topic, "partition": c.partition, "complete": c.complete,
         "covered": c.covered, "ranges": [list(r) for r in c.ranges],
         "holes": [list(r) for r in c.holes], "overlaps": [list(r) for r in c.overlaps],
         "chains": list(c.chains)}
        for c in found.partitions
    ], "purged_entries": found.purged, "stopped": found.stopped}


def print_completeness(store: ArchiveStore, *, as_json: bool = False,
                       out: TextIO | None = None) -> int:
    """Print the coverage report; 0 when every partition is complete (and every chain
    could be read to its end), 1 otherwise."""
    out = out or sys.stdout
    found = archive_coverage(store)
    if as_json:
        json.dump(to_json(found), out, indent=2, sort_keys=True)
        out.write("\n")
    else:
        print("completeness: raw offsets covered per partition", file=out)
        for c in found.partitions:
            status = "COMPLETE" if c.complete else "HOLES" if c.holes else "TWICE"
            print(f"{status:8} {c.topic}/{c.partition}: offsets {_ranges(c.ranges)} "
                  f"({c.covered} records, {len(c.chains)} chain(s))", file=out)
            if c.holes:
                print(f"         unaccounted for: {_ranges(c.holes)}", file=out)
            if c.overlaps:
                print(f"         sealed more than once: {_ranges(c.overlaps)}", file=out)
        if found.purged:
            print(f"         {found.purged} entries were in segments purged after their "
                  "retention: counted from their checkpoints", file=out)
        for why in found.stopped:
            print(f"STOPPED  {why}", file=out)
        if not found.chains:
            print("         no raw partition is covered (empty archive)", file=out)
        elif not found.partitions:
            print(f"         no raw partition is covered: the {found.chains} chain(s) hold "
                  "no entries yet (heartbeats only) or only purged ones", file=out)
    ok = found.chains and not found.stopped
    return 0 if ok and all(c.complete for c in found.partitions) else 1
