"""Rebuilding the search index from the archive, verifying what it reads."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sealtrail import layout
from sealtrail.replay import ArchiveSource, Break, Query, check_segment
from sealtrail.search import IndexBackend, row_from_record, row_values

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
    is indexed up to its first break; the break is reported and the other chains go on.

    Segments are checked and decoded on the native path where it is built (sealtrail.
    fast_segments); with ``clear`` an index that can load in bulk (SQLite) builds its
    secondary and full-text indexes once, after the rows are in."""
    result = RebuildResult()
    if clear:
        index.clear()
    everything = Query()
    with _loader(index, clear) as add, _without_cycle_collection():
        for chain_id in layout.chain_ids(source.store.list(layout.CHAINS)):
            result.chains += 1
            plan = source.plan(chain_id, everything)
            problem = None
            last_offset: int | None = None
            for task in source.tasks(plan, 0, everything, jsonl=False):
                seg = check_segment(task, source.entry_keyring)
                result.checked += seg.entries
                problem = seg.problem
                if problem is None and last_offset is not None \
                        and seg.first_offset != last_offset + 1:
                    problem = Break("completeness", chain_id, f"raw offset {seg.first_offset} "
                                    f"follows {last_offset}", task.checkpoint.segment_key,
                                    task.checkpoint.first_seq)
                if problem is not None:
                    break
                last_offset = seg.last_offset
                result.indexed += add(seg.matched, task.index)
            problem = problem or plan.problem
            if problem is not None:
                result.breaks.append(problem)
    return result


Add = Callable[[list[dict[str, Any]], int], int]


@contextlib.contextmanager
def _loader(index: IndexBackend, clear: bool) -> Iterator[Add]:
    """A function adding a segment's records to ``index``; in bulk when the index was
    cleared and can load so (rows are new, so each counts as indexed)."""
    bulk = getattr(index, "bulk", None)
    if clear and bulk is not None:
        with bulk() as loading:
            def add_bulk(records: list[dict[str, Any]], segment: int) -> int:
                values = [v for r in records if (v := row_values(r, segment)) is not None]
                loading.add_values(values)
                return len(values)

            yield add_bulk
        return

    def add_rows(records: list[dict[str, Any]], segment: int) -> int:
        rows = [row for r in records if (row := row_from_record(r, segment)) is not None]
        index.add(rows)
        return len(rows)

    yield add_rows


@contextlib.contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Pause Python's cycle collector while segments are decoded and indexed: they make
    tens of thousands of dicts and lists a segment, none in a cycle (reference counting
    frees them), and the collector's passes over them cost three times the decoding."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
