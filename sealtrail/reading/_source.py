"""Sealed records from the archive, read through the one verifier (:mod:`sealtrail.verify`'s
reader): every checkpoint checked, each segment checked against its checkpoint as a whole
before any of its records is used. Segments are independent given their checkpoints, so
:func:`check_segment` can run on several cores (a pool initialised by :func:`init_worker`)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sealtrail.archive import ArchiveStore, open_store
from sealtrail.core import rows as R
from sealtrail.core.chain_walk import PlannedSegment
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.findings import Finding
from sealtrail.core.segment_check import SegmentOutcome
from sealtrail.core.signing import Keyring
from sealtrail.reading._json import jsonl_bytes
from sealtrail.reading._query import Query
from sealtrail.verify import ArchiveReader, ChainPlan, check_planned

#: Slack for the clocks of the sealer and the archiver (a checkpoint's ``created_at`` against
#: the ``ingested_at`` of its records) when choosing which segments a time range needs.
CLOCK_SKEW_US = 5 * 60 * 1_000_000


@dataclass(frozen=True)
class SegmentTask:
    """One segment to check and filter, with everything needed from its checkpoints."""

    store_url: str
    s3_endpoint: str | None
    chain_id: str
    index: int
    planned: PlannedSegment
    query: Query
    jsonl: bool
    spill_dir: str | None = None  # a worker process leaves its JSON lines in a file here

    @property
    def checkpoint(self) -> Checkpoint:
        return self.planned.checkpoint


@dataclass
class SegmentResult:
    index: int
    entries: int
    matched: list[dict[str, Any]]
    jsonl: bytes | None
    first_offset: int | None
    last_offset: int | None
    first_epoch: int
    last_epoch: int
    partition: int | None
    problem: Finding | None
    count: int = 0
    spilled: str | None = None  # the file holding ``jsonl`` (see SegmentTask.spill_dir)


_worker_keyring: Keyring | None = None
_worker_stores: dict[tuple[str, str | None], ArchiveStore] = {}


def init_worker(keyring: Keyring | None) -> None:
    """Pool initializer: the keyring :func:`check_segment` uses when given none."""
    global _worker_keyring
    _worker_keyring = keyring


def _store(url: str, endpoint: str | None) -> ArchiveStore:
    found = _worker_stores.get((url, endpoint))
    if found is None:
        found = _worker_stores[(url, endpoint)] = open_store(url, s3_endpoint_url=endpoint)
    return found


def check_segment(task: SegmentTask, keyring: Keyring | None = None) -> SegmentResult:
    """Read and check one segment against its (already checked) checkpoint, apart from the
    segment before it (the caller checks where they meet); the records matching the query
    when everything checks out. With ``task.spill_dir`` the JSON lines go to a file there
    rather than back through the pool's pipe: a parent that receives them by pickle spends
    as long on them as the worker spent making them."""
    result = _check_segment(task, keyring)
    if task.spill_dir is not None and result.jsonl:
        fd, path = tempfile.mkstemp(prefix=f"{task.index}-", suffix=".jsonl",
                                    dir=task.spill_dir)
        with os.fdopen(fd, "wb") as out:
            out.write(result.jsonl)
        result.jsonl, result.spilled = None, path
    return result


def _check_segment(task: SegmentTask, keyring: Keyring | None) -> SegmentResult:
    keyring = keyring if keyring is not None else _worker_keyring
    outcome = check_planned(_store(task.store_url, task.s3_endpoint), task.planned, keyring,
                            want_records=not task.jsonl)
    result = SegmentResult(task.index, outcome.entries, [], None, outcome.first_offset,
                           outcome.last_offset, outcome.first_epoch or 0, outcome.head.epoch,
                           outcome.partition, outcome.finding)
    if outcome.finding is not None:
        return result
    if outcome.rows is not None:
        return _matched_rows(task, outcome, result)
    records = outcome.records or []
    query = task.query
    if query == Query(include_rejections=query.include_rejections):  # no range, no filter
        matched = [r for r in records if query.include_rejections or r["event"] is not None]
    else:
        matched = [r for r in records if query.matches(r)]
    result.count = len(matched)
    if task.jsonl:  # encoded here, on the worker's core; the parent only writes bytes
        result.jsonl = jsonl_bytes(matched)
    else:
        result.matched = matched
    return result


def _matched_rows(task: SegmentTask, outcome: SegmentOutcome,
                  result: SegmentResult) -> SegmentResult:
    """The matching records of a segment read on the native path, as JSON lines (each line
    the canonical JSON of the record, as :func:`jsonl_bytes` writes)."""
    rows = outcome.rows or []
    query = task.query
    if query == Query(include_rejections=query.include_rejections):  # no range, no filter
        lines = [row[R.RECORD_JSON] for row in rows
                 if query.include_rejections or row[R.EVENT] is not None]
    else:
        lines = [row[R.RECORD_JSON] for row in rows
                 if query.matches(json.loads(row[R.RECORD_JSON]))]
    result.count = len(lines)
    result.jsonl = b"\n".join(lines) + b"\n" if lines else b""
    return result


class ArchiveSource:
    """Sealed records from the archive, checked against their checkpoints."""

    def __init__(self, store: ArchiveStore, keyring: Keyring, *, check_signatures: bool = True,
                 s3_endpoint: str | None = None) -> None:
        self.reader = ArchiveReader(store, keyring, check_signatures=check_signatures)
        self.store = store
        self.keyring = keyring
        self.entry_keyring = self.reader.entry_keyring
        self.s3_endpoint = s3_endpoint
        self.description = f"archive {store.url}"

    def plan(self, chain_id: str, query: Query, *, skew_us: int | None = None) -> ChainPlan:
        """Check every checkpoint of ``chain_id`` in order and find the first segment whose
        records can fall in the range (checkpoints are signed, segments are not read here).
        ``skew_us``: the clock slack allowed (default :data:`CLOCK_SKEW_US`)."""
        plan = self.reader.plan(chain_id)
        plan.skew_us = CLOCK_SKEW_US if skew_us is None else skew_us
        if query.since is not None:
            plan.skip_before(query.since)
        return plan

    def tasks(self, plan: ChainPlan, start: int, query: Query, jsonl: bool,
              spill_dir: str | None = None) -> Iterator[SegmentTask]:
        """The segments to read from checkpoint position ``start`` on, until the range."""
        for n, planned in enumerate(plan.segments):
            if planned.position < start:
                continue
            if n and query.until is not None and (
                    plan.segments[n - 1].checkpoint.created_at
                    > query.until + plan.skew_us):
                return  # the previous segment already reached past the range
            yield SegmentTask(self.store.url, self.s3_endpoint, plan.chain_id,
                              planned.position, planned, query, jsonl, spill_dir)
