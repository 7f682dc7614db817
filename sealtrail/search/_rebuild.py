"""Rebuilding the search index from the archive, verifying what it reads (through the one
verifier's reader: the same checks, and the same findings, as ``sealtrail verify``)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sealtrail.core.findings import Finding
from sealtrail.search import IndexBackend, row_from_record, row_values
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

    Segments are checked and decoded on the native path where it is built (sealtrail.
    fast_segments); with ``clear`` an index that can load in bulk (SQLite) builds its
    secondary and full-text indexes once, after the rows are in.

    ``source``: an :class:`ArchiveReader` (or anything with one as ``reader``, such as
    :class:`sealtrail.reading.ArchiveSource`)."""
    reader: ArchiveReader = getattr(source, "reader", source)  # type: ignore[assignment]
    result = RebuildResult()
    if clear:
        index.clear()
    with _loader(index, clear) as add, _without_cycle_collection():
        for chain_id in reader.chain_ids():
            result.chains += 1
            plan = reader.plan(chain_id)
            for planned, outcome in reader.segments(plan, want_records=True):
                result.checked += outcome.entries
                if outcome.finding is not None:
                    break
                result.indexed += add(outcome.records or [], planned.position)
            if plan.problem is not None:
                result.breaks.append(plan.problem)
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
