"""Building the search index: ``index rebuild`` from a local archive, and the indexer
(``index run``) from the sealed topic.

* ``search.rebuild_eps``: events indexed per CPU-second of the process by
  ``rebuild_index`` (what ``sealtrail index rebuild --no-signatures`` runs: every segment
  checked against its signed checkpoint, hash chain and Merkle root, entry signatures not
  checked one by one) into a fresh SQLite index, on one core; ``search.rebuild_wall_eps``
  the same per second of wall time (the machine is shared).
* ``search.rebuild_python_eps`` / ``search.rebuild_vs_python``: the same rebuild on the
  reference path (native readers switched off, rows added batch by batch as before the
  bulk load), the baseline of the same run.
* ``search.run_eps``: the indexer (``sealtrail index run``) consuming the same events from
  the sealed topic of the embedded broker into a fresh index, per CPU-second of this
  process (its librdkafka threads included); ``search.run_wall_eps`` per wall second, from
  its start until every event is indexed.

The archive (``SEALTRAIL_BENCH_INDEX_EVENTS``, default 100000 events in 2 chains of
segments of 5000) is built with tests/helpers/archive_builder.py, without Kafka.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any


def _rebuild(built: Any, path: Path) -> tuple[int, float, float]:
    from sealtrail.replay import ArchiveSource
    from sealtrail.search import open_index
    from sealtrail.search._rebuild import rebuild_index

    index = open_index(str(path))
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        result = rebuild_index(ArchiveSource(built.store, built.keyring,
                                             check_signatures=False), index)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        index.close()
    assert not result.breaks, result.breaks
    return result.indexed, cpu, wall


def _rebuild_python(built: Any, path: Path) -> float:
    from sealtrail.archive import fast_segments
    from sealtrail.core import avro_program
    from sealtrail.search._sqlite import SqliteIndex

    saved = fast_segments.native, avro_program.native, fast_segments._codecs
    bulk = SqliteIndex.bulk
    fast_segments.native = avro_program.native = None
    fast_segments._codecs = {}
    del SqliteIndex.bulk  # type: ignore[attr-defined]
    try:
        n, cpu, _ = _rebuild(built, path)
    finally:
        fast_segments.native, avro_program.native, fast_segments._codecs = saved
        SqliteIndex.bulk = bulk  # type: ignore[method-assign]
    return n / cpu


def _run(built: Any, home: Path) -> dict[str, object]:
    """The indexer on the sealed topic holding the archive's events."""
    from confluent_kafka import Producer
    from confluent_kafka.schema_registry import Schema

    from sealtrail import schemas
    from sealtrail.config import Settings
    from sealtrail.consumers.indexer import Indexer
    from sealtrail.core.avro import AvroCodec, frame
    from sealtrail.kafka.admin import ensure_topics
    from sealtrail.runtime import dev
    from sealtrail.schemas.registry_client import registry_client
    from sealtrail.search import open_index

    stack = dev.start_stack(home / "stack")
    try:
        tag = uuid.uuid4().hex[:8]
        settings = Settings(home=home, bootstrap=stack.bootstrap, registry_url=stack.registry,
                            sealed_topic=f"sealed-{tag}", raw_topic=f"raw-{tag}",
                            archiver_group=f"archiver-{tag}", partitions=2)
        ensure_topics(settings)
        registry = registry_client(settings.registry_url)
        schema = schemas.sealed_record()
        schema_id = registry.register_schema(f"{settings.sealed_topic}-value",
                                             Schema(json.dumps(schema), "AVRO"))
        codec = AvroCodec(schema)
        producer = Producer({"bootstrap.servers": settings.bootstrap, "linger.ms": 20,
                             "compression.type": "lz4",
                             "queue.buffering.max.messages": 1_000_000})
        n = 0
        for partition, records in enumerate(built.records.values()):
            for record in records:
                producer.produce(settings.sealed_topic, frame(schema_id, codec.encode(record)),
                                 partition=partition)
                n += 1
                if n % 10_000 == 0:
                    producer.poll(0)
        assert producer.flush(60) == 0
        index = open_index(str(home / "run.sqlite"))
        indexer = Indexer(settings, index=index, registry=registry, group=f"indexer-{tag}")
        cpu, wall = time.process_time(), time.perf_counter()
        indexer.run(idle_exit=2.0)
        wall, cpu = time.perf_counter() - wall - 2.0, time.process_time() - cpu
        index.close()
        assert indexer.indexed == n, (indexer.indexed, n)
        return {"search.run_eps": round(n / cpu), "search.run_wall_eps": round(n / wall)}
    finally:
        dev.stop_stack(home / "stack")


def run() -> dict[str, object]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from helpers.archive_builder import build_archive

    events = int(os.environ.get("SEALTRAIL_BENCH_INDEX_EVENTS", "100000"))
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="sealtrail-bench-index-") as tmp:
        base = Path(tmp)
        built = build_archive(base, chains=2, segments=max(events // 10_000, 1),
                              records=5000, rejections=())
        records = built.records
        built.records = {}  # a rebuild does not hold the archive in memory
        n, cpu, wall = _rebuild(built, base / "index.sqlite")
        figures["search.rebuild_events"] = n
        figures["search.rebuild_eps"] = round(n / cpu)
        figures["search.rebuild_wall_eps"] = round(n / wall)
        python = _rebuild_python(built, base / "python.sqlite")
        figures["search.rebuild_python_eps"] = round(python)
        figures["search.rebuild_vs_python"] = round(n / cpu / python, 1)
        built.records = records
        figures.update(_run(built, base))
    return figures
