"""``sealtrail verify --completeness``: per raw partition, the source offsets the archive's
chains cover, and any hole between them (G1).

Reads the segments that checkpoints cover, chain by chain, and hands runs of consecutive
source offsets to :func:`sealtrail.core.completeness.coverage`. Signatures and hashes are
``verify``'s job; this report is meaningful for an archive that verifies.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from sealtrail import layout
from sealtrail.archive import ArchiveStore
from sealtrail.core.checkpoint import SignedCheckpoint
from sealtrail.core.completeness import Coverage, Run, coverage, runs_of
from sealtrail.segments import read_segment

__all__ = ["archive_coverage", "print_completeness"]


def archive_coverage(store: ArchiveStore) -> list[Coverage]:
    """Coverage of every raw partition by the checkpointed segments of every chain."""
    runs: list[Run] = []
    keys = store.list(layout.CHAINS)
    for chain_id in layout.chain_ids(keys):
        coordinates: list[tuple[str, int, int]] = []
        prefix = f"{layout.CHAINS}{chain_id}/checkpoints/"
        for key in sorted(k for k in keys if k.startswith(prefix)):
            cp = SignedCheckpoint.from_bytes(store.get(key)).checkpoint
            for record in read_segment(store.get(cp.segment_key)):
                source = record["source"]
                coordinates.append((source["topic"], source["partition"], source["offset"]))
        runs.extend(runs_of(chain_id, coordinates))
    return coverage(runs)


def _ranges(ranges: tuple[tuple[int, int], ...]) -> str:
    return ", ".join(f"{a}..{b}" for a, b in ranges) or "-"


def to_json(found: list[Coverage]) -> dict[str, Any]:
    return {"completeness": [
        {"topic": c.topic, "partition": c.partition, "complete": c.complete,
         "covered": c.covered, "ranges": [list(r) for r in c.ranges],
         "holes": [list(r) for r in c.holes], "overlaps": [list(r) for r in c.overlaps],
         "chains": list(c.chains)}
        for c in found
    ]}


def print_completeness(store: ArchiveStore, *, as_json: bool = False,
                       out: TextIO | None = None) -> int:
    """Print the coverage report; 0 when every partition is complete, 1 otherwise."""
    out = out or sys.stdout
    found = archive_coverage(store)
    if as_json:
        json.dump(to_json(found), out, indent=2, sort_keys=True)
        out.write("\n")
    else:
        print("completeness: raw offsets covered per partition", file=out)
        for c in found:
            status = "COMPLETE" if c.complete else "HOLES" if c.holes else "TWICE"
            print(f"{status:8} {c.topic}/{c.partition}: offsets {_ranges(c.ranges)} "
                  f"({c.covered} records, {len(c.chains)} chain(s))", file=out)
            if c.holes:
                print(f"         unaccounted for: {_ranges(c.holes)}", file=out)
            if c.overlaps:
                print(f"         sealed more than once: {_ranges(c.overlaps)}", file=out)
        if not found:
            print("         no raw partition is covered (empty archive)", file=out)
    return 0 if found and all(c.complete for c in found) else 1
