"""The archive-reading layer: sealed records out of the archive, checked while read, for
the tools that hand records out (replay, search's index rebuild, export, report).

* :class:`ArchiveSource`: every checkpoint of every chain checked (signature, link to the
  previous one, seq continuity, segment key); the segments whose records can fall in a
  time range found; each segment checked against its checkpoint as a whole
  (:func:`check_segment`, on a worker's core when given a pool) before any of its records
  is used;
* :class:`Query`: the ``ingested_at`` range and exact-match filters on the event;
* :func:`parse_time` / :func:`format_time` (from :mod:`sealtrail.core.times`): the one
  way every tool reads and shows a time;
* :func:`record_to_json` / :func:`jsonl_bytes`: a sealed record as the canonical JSON
  every tool writes.

Nothing here writes anywhere: where records go is the caller's business (replay's sinks,
the search index, an export bundle).
"""

from __future__ import annotations

from sealtrail.core.times import format_time, optional_time, parse_time
from sealtrail.reading._json import jsonl_bytes, record_to_json
from sealtrail.reading._query import Query
from sealtrail.reading._source import (
    CLOCK_SKEW_US,
    ArchiveSource,
    SegmentResult,
    SegmentTask,
    check_segment,
    init_worker,
)

__all__ = [
    "CLOCK_SKEW_US",
    "ArchiveSource",
    "Query",
    "SegmentResult",
    "SegmentTask",
    "check_segment",
    "format_time",
    "init_worker",
    "jsonl_bytes",
    "optional_time",
    "parse_time",
    "record_to_json",
]
