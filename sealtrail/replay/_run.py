"""One entry point for both sources (the loops are in ``_archive`` and ``_kafka``)."""

from __future__ import annotations

from typing import Any

from sealtrail.reading import ArchiveSource, Query
from sealtrail.replay._archive import replay_archive
from sealtrail.replay._kafka import replay_kafka
from sealtrail.replay._result import ReplayResult
from sealtrail.replay._sources import KafkaSource


def replay(source: ArchiveSource | KafkaSource, query: Query, dest: str, **kwargs: Any
           ) -> ReplayResult:
    """Replay from either source (keyword arguments as for replay_archive/replay_kafka)."""
    if isinstance(source, ArchiveSource):
        return replay_archive(source, query, dest, **kwargs)
    kwargs.pop("workers", None)
    kwargs.pop("kafka", None)
    return replay_kafka(source, query, dest, **kwargs)
