"""Rebuilding the search index from the archive, verifying what it reads (through the one
verifier's reader: the same checks, and the same findings, as ``sealtrail verify``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sealtrail.core.findings import Finding
from sealtrail.search import IndexBackend, row_from_record
from sealtrail.verify import ArchiveReader

__all__ = ["RebuildResult", "rebuild_index"]


@dataclass
class RebuildResult:
    checked: int = 0
    indexed: int = 0
    chains: int = 0
    breaks: list[Finding] = field(default_factory=list)


def rebuild_index(source: ArchiveReader | object, index: IndexBackend, *, clear: bool = True
                  ) -> RebuildResult:
    """Index every event of every chain that checks out against its checkpoints. A chain
    is indexed up to its first break; the break is reported and the other chains go on.
    ``source``: an :class:`ArchiveReader` (or anything with one as ``reader``, such as
    replay's ArchiveSource)."""
    reader: ArchiveReader = getattr(source, "reader", source)  # type: ignore[assignment]
    result = RebuildResult()
    if clear:
        index.clear()
    for chain_id in reader.chain_ids():
        result.chains += 1
        plan = reader.plan(chain_id)
        for planned, outcome in reader.segments(plan, want_records=True):
            result.checked += outcome.entries
            if outcome.finding is not None:
                break
            rows = [r for rec in outcome.records or []
                    if (r := row_from_record(rec, planned.position))]
            result.indexed += len(rows)
            index.add(rows)
        if plan.problem is not None:
            result.breaks.append(plan.problem)
    return result
