"""Building the search index: ``index rebuild`` from a local archive, and the indexer
(``index run``) from the sealed topic.

* ``search.rebuild_eps``: events indexed per CPU-second of the process by
  ``rebuild_index`` (what ``sealtrail index rebuild --no-signatures`` runs: every segment
  checked against its signed checkpoint, hash chain and Merkle root, entry signatures not
  checked one by one) into a fresh SQLite index, on one core; ``search.rebuild_wall_eps``
  the same per second of wall time (the machine is shared).
* ``search.rebuild_signed_eps``: ``sealtrail index rebuild`` as it runs by default,
  every signature checked, of the same events sealed as the sealer writes them (record
  format 2, batches of 250), per CPU-second.
* ``search.rebuild_python_eps`` / ``search.rebuild_vs_python``: the same rebuild on the
  reference path (native readers switched off, rows added batch by batch as before the
  bulk load), the baseline of the same run.
* ``search.check_eps`` / ``search.load_eps``: the two parts of a rebuild that it cannot
  do without, each alone in the same run: checking the archive's segments (no records
  decoded), and SQLite loading the same rows, made beforehand, into a fresh index.
  ``search.rebuild_ceiling_eps`` = 1 / (1/check + 1/load): what a rebuild would reach if
  decoding records and building rows cost nothing; ``search.rebuild_vs_ceiling``.
* ``search.add_eps``: SQLite alone adding the same rows as the indexer does
  (``SqliteIndex.add``, batches of 2,000 into a fresh index), the floor of ``index run``;
  ``search.run_vs_add``.
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

SEGMENT_RECORDS = 5000


def _rebuild(built: Any, path: Path, *, signatures: bool = False
             ) -> tuple[int, float, float]:
    from sealtrail.replay import ArchiveSource
    from sealtrail.search import open_index
    from sealtrail.search._rebuild import rebuild_index

    index = open_index(str(path))
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        result = rebuild_index(ArchiveSource(built.store, built.keyring,
                                             check_signatures=signatures), index)
    finally:
        index.close()  # (closing writes the WAL back into the file: part of the work)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
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


def _check(built: Any) -> float:
    """Events checked per CPU-second: every segment against its checkpoint, no records."""
    from sealtrail.replay import ArchiveSource
    from sealtrail.search._rebuild import _without_cycle_collection

    reader = ArchiveSource(built.store, built.keyring, check_signatures=False).reader
    n, cpu = 0, time.process_time()
    with _without_cycle_collection():  # as in the rebuild
        for chain_id in reader.chain_ids():
            for _, outcome in reader.segments(reader.plan(chain_id), want_records=False):
                assert outcome.finding is None, outcome.finding
                n += outcome.entries
    return n / (time.process_time() - cpu)


def _load(records: dict[Any, list[dict[str, Any]]], base: Path) -> tuple[float, float]:
    """Rows per CPU-second that SQLite alone takes, from rows made beforehand: the bulk
    load of a rebuild (insert, secondary and full-text indexes built after, commit,
    ANALYZE), and ``SqliteIndex.add`` in the indexer's batches of 2,000 (every index
    kept up row by row, a transaction a batch)."""
    from sealtrail.search import IndexRow, row_values
    from sealtrail.search._sqlite import SqliteIndex

    values = [v for chain in records.values() for position, record in enumerate(chain)
              if (v := row_values(record, position // SEGMENT_RECORDS)) is not None]
    rows = [IndexRow(*v) for v in values]
    rates = []
    for name in ("bulk", "add"):
        index = SqliteIndex(str(base / f"{name}.sqlite"))
        cpu = time.process_time()
        try:
            if name == "bulk":
                with index.bulk() as loading:
                    loading.add_values(values)
            else:
                for at in range(0, len(rows), 2000):
                    index.add(rows[at:at + 2000])
        finally:
            index.close()
        rates.append(len(values) / (time.process_time() - cpu))
    return rates[0], rates[1]


def _run(built: Any, home: Path) -> dict[str, int]:
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
                              records=SEGMENT_RECORDS, rejections=())
        records = built.records
        built.records = {}  # a rebuild does not hold the archive in memory
        n, cpu, wall = _rebuild(built, base / "index.sqlite")
        figures["search.rebuild_events"] = n
        figures["search.rebuild_eps"] = round(n / cpu)
        figures["search.rebuild_wall_eps"] = round(n / wall)
        batched = build_archive(base / "batched", chains=2, segments=max(events // 10_000, 1),
                                records=SEGMENT_RECORDS, rejections=(), batch=250)
        batched.records = {}
        signed, signed_cpu, _ = _rebuild(batched, base / "signed.sqlite", signatures=True)
        figures["search.rebuild_signed_eps"] = round(signed / signed_cpu)
        python = _rebuild_python(built, base / "python.sqlite")
        figures["search.rebuild_python_eps"] = round(python)
        figures["search.rebuild_vs_python"] = round(n / cpu / python, 1)
        built.records = records
        check, (load, add) = _check(built), _load(records, base)
        ceiling = 1 / (1 / check + 1 / load)
        figures["search.check_eps"] = round(check)
        figures["search.load_eps"] = round(load)
        figures["search.rebuild_ceiling_eps"] = round(ceiling)
        figures["search.rebuild_vs_ceiling"] = round(n / cpu / ceiling, 2)
        figures["search.add_eps"] = round(add)
        run = _run(built, base)
        figures.update(run)
        figures["search.run_vs_add"] = round(run["search.run_eps"] / add, 2)
    return figures
