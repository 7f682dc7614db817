"""``sealtrail verify --completeness``: per raw partition, the source offsets the archive's
chains cover, and any hole between them (G1).

Every raw partition the signed archive index knows is covered too: one the index lists
(with a chain) but of which no entry checked out is reported missing.

The runs of consecutive source offsets come from the verify run itself (the one verifier
records them while it checks each segment, and carries them across purged segments, whose
entries stood for the next offsets), and :func:`sealtrail.core.completeness.coverage`
merges them per raw partition. Only entries that checked out count.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from sealtrail.core.completeness import Coverage, coverage
from sealtrail.verify import ArchiveReport

__all__ = ["archive_coverage", "print_completeness"]


def archive_coverage(report: ArchiveReport) -> list[Coverage]:
    """Coverage of every raw partition by the entries a verify run checked."""
    return coverage(run for chain in report.chains for run in chain.runs)


def _ranges(ranges: tuple[tuple[int, int], ...]) -> str:
    return ", ".join(f"{a}..{b}" for a, b in ranges) or "-"


def uncovered(report: ArchiveReport, found: list[Coverage]) -> list[tuple[str, int, str]]:
    """The raw partitions the signed archive index knows (topic, partition, a chain of it)
    of which no checked entry covers anything."""
    covered = {(c.topic, c.partition) for c in found}
    return sorted({(t, p, c) for t, p, c in report.index_partitions if (t, p) not in covered})


def to_json(found: list[Coverage], missing: Sequence[tuple[str, int, str]] = ()
            ) -> dict[str, Any]:
    return {"completeness": [
        {"topic": c.topic, "partition": c.partition, "complete": c.complete,
         "covered": c.covered, "ranges": [list(r) for r in c.ranges],
         "holes": [list(r) for r in c.holes], "overlaps": [list(r) for r in c.overlaps],
         "chains": list(c.chains)}
        for c in found
    ] + [{"topic": t, "partition": p, "complete": False, "covered": 0, "ranges": [],
          "holes": [], "overlaps": [], "chains": [chain], "missing": True}
         for t, p, chain in missing]}


def print_completeness(report: ArchiveReport, *, as_json: bool = False,
                       out: TextIO | None = None) -> int:
    """Print the coverage report; 0 when every partition is complete, 1 otherwise."""
    out = out or sys.stdout
    found = archive_coverage(report)
    missing = uncovered(report, found)
    if as_json:
        json.dump(to_json(found, missing), out, indent=2, sort_keys=True)
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
        for topic, partition, chain in missing:
            print(f"MISSING  {topic}/{partition}: the signed archive index knows it (chain "
                  f"{chain}), but no entry of it checked out", file=out)
        if not found:
            print("         no raw partition is covered (empty archive)", file=out)
    return 0 if found and all(c.complete for c in found) and not missing else 1
