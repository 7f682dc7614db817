"""Rebuilding the search index from the archive, verifying what it reads."""

from __future__ import annotations

from dataclasses import dataclass, field

from sealtrail import layout
from sealtrail.replay import ArchiveSource, Break, Query, check_segment
from sealtrail.search import IndexBackend, row_from_record

__all__ = ["RebuildResult", "rebuild_index"]


@dataclass
class RebuildResult:
    checked: int = 0
    indexed: int = 0
    chains: int = 0
    breaks: list[Break] = field(default_factory=list)


def rebuild_index(source: ArchiveSource, index: IndexBackend, *, clear: bool = True
                  ) -> RebuildResult:
    """Index every event of every chain that checks out against its checkpoints. A chain
    is indexed up to its first break; the break is reported and the other chains go on."""
    result = RebuildResult()
    if clear:
        index.clear()
    everything = Query()
    for chain_id in layout.chain_ids(source.store.list(layout.CHAINS)):
        result.chains += 1
        plan = source.plan(chain_id, everything)
        problem = None
        last_offset: int | None = None
        for task in source.tasks(plan, 0, everything, jsonl=False):
            seg = check_segment(task, source.entry_keyring)
            result.checked += seg.entries
            problem = seg.problem
            if problem is None and last_offset is not None and seg.first_offset != last_offset + 1:
                problem = Break("completeness", chain_id, f"raw offset {seg.first_offset} "
                                f"follows {last_offset}", task.checkpoint.segment_key,
                                task.checkpoint.first_seq)
            if problem is not None:
                break
            last_offset = seg.last_offset
            rows = [r for rec in seg.matched if (r := row_from_record(rec, task.index))]
            result.indexed += len(rows)
            index.add(rows)
        problem = problem or plan.problem
        if problem is not None:
            result.breaks.append(problem)
    return result


