"""``sealtrail verify --completeness``: per raw partition, the source offsets the archive's
chains cover, and any hole between them (G1).

Every raw partition the signed archive index knows is covered too: one the index lists
(with a chain) but of which no entry checked out is reported missing.

The runs of consecutive source offsets come from the verify run itself (the one verifier
records them while it checks each segment, and carries them across purged segments,
whose entries stood for the next offsets: docs/format.md, "Purged segments"), and
:func:`sealtrail.core.completeness.coverage` merges them per raw partition. Only entries
that checked out count: heartbeat checkpoints cover none, and where a chain breaks (a
checkpoint or segment missing, damaged or not what it claims) its coverage stops there and
the report says so, naming verify's finding.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from sealtrail.core.completeness import Coverage, coverage
from sealtrail.core.findings import Kind
from sealtrail.verify import ArchiveReport

__all__ = ["ArchiveCoverage", "archive_coverage", "print_completeness"]


@dataclass
class ArchiveCoverage:
    """Coverage per raw partition, the entries purged after their retention, the chains
    whose coverage stops early (with why), and the partitions the index knows that no
    checked entry covers."""

    partitions: list[Coverage]
    chains: int = 0
    purged: int = 0
    stopped: list[str] = field(default_factory=list)
    missing: list[tuple[str, int, str]] = field(default_factory=list)  # topic, partition, chain


#: Findings after which a chain's entries were still all read (the hole is what this
#: report shows; the others are about locks, age, or the index).
_READ_ON = frozenset({Kind.COMPLETENESS, Kind.STALE, Kind.UNLOCKED, Kind.UNDER_RETAINED,
                      Kind.HOLD_MISSING, Kind.LOCK_UNREADABLE, Kind.UNINDEXED})


def archive_coverage(report: ArchiveReport) -> ArchiveCoverage:
    """Coverage of every raw partition by the entries a verify run checked."""
    found = ArchiveCoverage(coverage(run for chain in report.chains for run in chain.runs),
                            chains=len(report.chains),
                            purged=sum(c.purged for c in report.chains))
    for chain in report.chains:
        for finding in chain.findings:
            if finding.kind not in _READ_ON:
                found.stopped.append(f"chain {chain.chain_id}: coverage stops at "
                                     f"{finding.segment or 'its start'}: {finding.kind.value}"
                                     f": {finding.message[:300]}")
                break
    covered = {(c.topic, c.partition) for c in found.partitions}
    read = {c.chain_id for c in report.chains if c.checkpoints}  # even if all purged
    found.missing = sorted({(t, p, c) for t, p, c in report.index_partitions
                            if (t, p) not in covered and c not in read})
    return found


def _ranges(ranges: tuple[tuple[int, int], ...]) -> str:
    return ", ".join(f"{a}..{b}" for a, b in ranges) or "-"


def to_json(found: ArchiveCoverage) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [
        {"topic": c.topic, "partition": c.partition, "complete": c.complete,
         "covered": c.covered, "ranges": [list(r) for r in c.ranges],
         "holes": [list(r) for r in c.holes], "overlaps": [list(r) for r in c.overlaps],
         "chains": list(c.chains)}
        for c in found.partitions]
    rows += [{"topic": t, "partition": p, "complete": False, "covered": 0, "ranges": [],
              "holes": [], "overlaps": [], "chains": [chain], "missing": True}
             for t, p, chain in found.missing]
    return {"completeness": rows, "purged_entries": found.purged, "stopped": found.stopped}


def _print(found: ArchiveCoverage, out: TextIO) -> None:
    print("completeness: raw offsets covered per partition", file=out)
    for c in found.partitions:
        status = "COMPLETE" if c.complete else "HOLES" if c.holes else "TWICE"
        print(f"{status:8} {c.topic}/{c.partition}: offsets {_ranges(c.ranges)} "
              f"({c.covered} records, {len(c.chains)} chain(s))", file=out)
        if c.holes:
            print(f"         unaccounted for: {_ranges(c.holes)}", file=out)
        if c.overlaps:
            print(f"         sealed more than once: {_ranges(c.overlaps)}", file=out)
    for topic, partition, chain in found.missing:
        print(f"MISSING  {topic}/{partition}: the signed archive index knows it (chain "
              f"{chain}), but no entry of it checked out", file=out)
    if found.purged:
        print(f"         {found.purged} entries were in segments purged after their "
              "retention: counted from their checkpoints", file=out)
    for why in found.stopped:
        print(f"STOPPED  {why}", file=out)
    if not found.chains:
        print("         no raw partition is covered (empty archive)", file=out)
    elif not found.partitions and not found.missing:
        print(f"         no raw partition is covered: the {found.chains} chain(s) hold "
              "no entries yet (heartbeats only) or only purged ones", file=out)


def print_completeness(report: ArchiveReport, *, as_json: bool = False,
                       out: TextIO | None = None) -> bool:
    """Print the coverage report; True when every partition is complete (and every chain
    could be read to its end)."""
    out = out or sys.stdout
    found = archive_coverage(report)
    if as_json:
        json.dump(to_json(found), out, indent=2, sort_keys=True)
        out.write("\n")
    else:
        _print(found, out)
    ok = found.chains and not found.stopped and not found.missing
    return bool(ok) and all(c.complete for c in found.partitions)
