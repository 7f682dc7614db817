"""The archiver: sealed topic -> segments and signed checkpoints in the archive.

Each flush writes, per chain, one segment (the records since the last
checkpoint) and then its checkpoint, and only after both are durable commits
the consumer offsets. The archive itself says how far each chain is archived,
so a restart skips what was written and completes a segment whose checkpoint
was not yet written (idempotent retries).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.schema_registry import SchemaRegistryClient

from sealtrail import layout
from sealtrail.archive import ArchiveStore, Retention
from sealtrail.config import Settings
from sealtrail.core import merkle
from sealtrail.core.checkpoint import Checkpoint, SignedCheckpoint
from sealtrail.core.hashing import ZERO_HASH
from sealtrail.core.signing import Signer
from sealtrail.errors import DecodeError
from sealtrail.schema_cache import WriterSchemas
from sealtrail.segments import read_segment, write_segment

__all__ = ["ArchivedChain", "Archiver", "load_chain_tail"]

log = logging.getLogger("sealtrail.archiver")


@dataclass
class ArchivedChain:
    """How far a chain is archived, and what is buffered for its next segment."""

    chain_id: str
    next_index: int = 0
    last_seq: int = -1
    checkpoint_hash: bytes = ZERO_HASH
    buffer: list[dict[str, Any]] = field(default_factory=list)
    schema: dict[str, Any] | None = None  # the schema the buffered records were sealed with


def load_chain_tail(store: ArchiveStore, chain_id: str) -> ArchivedChain:
    """The archived position of ``chain_id`` as recorded by its newest checkpoint."""
    keys = store.list(f"{layout.CHAINS}{chain_id}/checkpoints/")
    indices = sorted(i for k in keys if (i := layout.parse_index(k)) is not None)
    state = ArchivedChain(chain_id)
    if indices:
        key = layout.checkpoint_key(chain_id, indices[-1])
        signed = SignedCheckpoint.from_bytes(store.get(key))
        cp = signed.checkpoint
        state.next_index = cp.index + 1
        state.last_seq = cp.last_seq
        state.checkpoint_hash = signed.checkpoint_hash
    return state


class SegmentWriter:
    """Buffers sealed records per chain and writes them as segment + signed checkpoint.

    No Kafka here: the Archiver feeds it; tests and tools can drive it directly.
    """

    def __init__(
        self,
        store: ArchiveStore,
        signer: Signer,
        *,
        retention_days: int,
        retention_mode: str = "COMPLIANCE",
        clock: Callable[[], int] = lambda: time.time_ns() // 1000,
    ) -> None:
        self.store = store
        self._signer = signer
        self._retention_days = retention_days
        self._retention_mode = retention_mode
        self._clock = clock
        self._chains: dict[str, ArchivedChain] = {}
        self.buffered = 0
        self.segments_written = 0
        self.records_archived = 0

    def _chain(self, chain_id: str) -> ArchivedChain:
        state = self._chains.get(chain_id)
        if state is None:
            state = load_chain_tail(self.store, chain_id)
            self._complete_orphan(state)
            self._chains[chain_id] = state
        return state

    def _complete_orphan(self, state: ArchivedChain) -> None:
        """A segment written before a crash, whose checkpoint was not: checkpoint it now."""
        key = layout.segment_key(state.chain_id, state.next_index)
        if not self.store.exists(key):
            return
        data = self.store.get(key)
        log.info("chain %s: completing segment %d left by an interrupted run",
                 state.chain_id, state.next_index)
        self._checkpoint(state, read_segment(data), data)

    def add(self, record: dict[str, Any], schema: dict[str, Any] | None = None) -> None:
        """Buffer one sealed record (sealed with ``schema``; the current SealedRecord when
        None) unless it is already archived. A record of another schema version than the
        buffer's closes the buffer as a segment first: a segment holds one schema."""
        state = self._chain(record["chain_id"])
        if state.buffer and schema != state.schema:
            self.write_segment(state)
        state.schema = schema
        expected = state.last_seq + 1 + len(state.buffer)
        if record["seq"] < expected:
            return  # archived before a restart: re-delivered, skip
        if record["seq"] > expected:
            log.error("chain %s: seq %d arrived, expected %d; archiving it as is, verify "
                      "will report the gap", record["chain_id"], record["seq"], expected)
        state.buffer.append(record)
        self.buffered += 1

    def largest_buffer(self) -> int:
        return max((len(c.buffer) for c in self._chains.values()), default=0)

    def _retention(self) -> Retention:
        until = datetime.now(UTC) + timedelta(days=self._retention_days)
        return Retention(self._retention_mode, until, ())

    def _checkpoint(self, state: ArchivedChain, records: list[dict[str, Any]], data: bytes) -> None:
        seg_key = layout.segment_key(state.chain_id, state.next_index)
        cp = Checkpoint(
            chain_id=state.chain_id,
            index=state.next_index,
            first_seq=records[0]["seq"],
            last_seq=records[-1]["seq"],
            head_hash=records[-1]["entry_hash"],
            merkle_root=merkle.root([r["entry_hash"] for r in records]),
            prev_checkpoint_hash=state.checkpoint_hash,
            segment_key=seg_key,
            segment_sha256=hashlib.sha256(data).digest(),
            segment_size=len(data),
            created_at=self._clock(),
            key_id=self._signer.key_id,
        )
        signed = cp.sign(self._signer)
        self.store.put(layout.checkpoint_key(state.chain_id, state.next_index),
                       signed.to_bytes(), retention=self._retention())
        state.next_index += 1
        state.last_seq = cp.last_seq
        state.checkpoint_hash = signed.checkpoint_hash

    def write_segment(self, state: ArchivedChain) -> None:
        """Write ``state``'s buffer as its next segment; the checkpoint follows it."""
        records = state.buffer
        data = write_segment(records, {
            "sealtrail.chain_id": state.chain_id,
            "sealtrail.first_seq": str(records[0]["seq"]),
            "sealtrail.last_seq": str(records[-1]["seq"]),
        }, state.schema)
        self.store.put(layout.segment_key(state.chain_id, state.next_index), data,
                       retention=self._retention())
        self._checkpoint(state, records, data)
        self.segments_written += 1
        self.records_archived += len(records)
        self.buffered -= len(records)
        state.buffer = []

    def flush(self) -> None:
        """Write every chain's buffer as a segment plus its checkpoint."""
        for state in self._chains.values():
            if state.buffer:
                self.write_segment(state)


class Archiver:
    """Consumes the sealed topic into a SegmentWriter. ``run()`` until ``stop()``.

    Offsets are committed only after a flush has made everything consumed durable.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: ArchiveStore,
        signer: Signer,
        registry: SchemaRegistryClient,
        clock: Callable[[], int] = lambda: time.time_ns() // 1000,
    ) -> None:
        self.settings = settings
        self.writer = SegmentWriter(
            store, signer, retention_days=settings.retention_days,
            retention_mode=settings.retention_mode, clock=clock,
        )
        self._writers = WriterSchemas(registry)
        self._oldest: float | None = None
        self._stop = threading.Event()
        self._consumer = Consumer({
            "bootstrap.servers": settings.bootstrap,
            "group.id": settings.archiver_group,
            "session.timeout.ms": settings.session_timeout_ms,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        })

    def _due(self) -> bool:
        if not self.writer.buffered:
            return False
        if self.writer.largest_buffer() >= self.settings.segment_max_records:
            return True
        return (time.monotonic() - (self._oldest or 0)) >= self.settings.segment_max_seconds

    def _flush(self) -> None:
        self.writer.flush()
        self._oldest = None
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                raise

    def run(self) -> None:
        """Archive until :meth:`stop`; flushes what is buffered before returning."""
        self._consumer.subscribe([self.settings.sealed_topic])
        try:
            while not self._stop.is_set():
                for msg in self._consumer.consume(1000, 0.2):
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            log.warning("consumer: %s", err)
                        continue
                    try:
                        record, codec = self._writers.decode(msg.value())
                    except DecodeError as exc:
                        log.error("sealed record at %s/%d@%d does not decode (%s); not archived",
                                  msg.topic(), msg.partition(), msg.offset(), exc)
                        continue
                    self.writer.add(record, codec.schema)
                    if self._oldest is None:
                        self._oldest = time.monotonic()
                if self._due():
                    self._flush()
            if self.writer.buffered:
                self._flush()
        finally:
            self._consumer.close()

    def stop(self) -> None:
        self._stop.set()
