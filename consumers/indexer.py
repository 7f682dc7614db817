"""The indexer: sealed topic -> search index (SQLite embedded, PostgreSQL in production).

Consumes the sealed topic in its own consumer group (read_committed), decodes each
record with its own writer schema and adds one row per event to the index; offsets are
committed only after the rows are in the index, and adding a row twice is a no-op, so a
restart re-delivers without duplicating. Rows added from Kafka do not know their archive
segment yet; ``sealtrail index rebuild`` (from the archive) fills it, and export finds it
from the checkpoints either way. The indexer does not verify: the index is a finding aid,
and export proves every event it returns against the archive.
"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.schema_registry import SchemaRegistryClient

from sealtrail.config import Settings
from sealtrail.errors import DecodeError
from sealtrail.kafka.client import kafka_config
from sealtrail.schemas.cache import WriterSchemas
from sealtrail.search import IndexBackend, IndexRow, row_from_record

__all__ = ["Indexer"]

log = logging.getLogger("sealtrail.indexer")


class Indexer:
    """Consumes the sealed topic into an :class:`IndexBackend`. ``run()`` until ``stop()``."""

    def __init__(self, settings: Settings, *, index: IndexBackend,
                 registry: SchemaRegistryClient, group: str | None = None) -> None:
        self.settings = settings
        self.index = index
        self._writers = WriterSchemas(registry)
        self._stop = threading.Event()
        self.indexed = 0
        self.seen = 0
        self._consumer = Consumer({
            **kafka_config(settings),
            "group.id": group or f"{settings.archiver_group}-indexer",
            "session.timeout.ms": settings.session_timeout_ms,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        })

    def run(self, idle_exit: float | None = None) -> None:
        """Index until :meth:`stop` (or, with ``idle_exit``, until nothing arrived for that
        many seconds after something was indexed)."""
        import time

        self._consumer.subscribe([self.settings.sealed_topic])
        last = time.monotonic()
        try:
            while not self._stop.is_set():
                msgs = self._consumer.consume(2000, 0.5)
                rows: list[IndexRow] = []
                for msg in msgs:
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            log.warning("consumer: %s", err)
                        continue
                    self.seen += 1
                    try:
                        record, _ = self._writers.decode(msg.value() or b"")
                    except DecodeError as exc:
                        log.error("sealed record at %s/%d@%d does not decode (%s); not indexed",
                                  msg.topic(), msg.partition(), msg.offset(), exc)
                        continue
                    row = row_from_record(record)
                    if row is not None:
                        rows.append(row)
                if rows:
                    self.indexed += self.index.add(rows)
                if msgs:
                    last = time.monotonic()
                    try:
                        self._consumer.commit(asynchronous=False)
                    except KafkaException as exc:
                        if exc.args[0].code() != KafkaError._NO_OFFSET:
                            raise
                elif idle_exit is not None and self.seen and time.monotonic() - last > idle_exit:
                    break
        finally:
            self._consumer.close()

    def stop(self) -> None:
        self._stop.set()
