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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.schema_registry import SchemaRegistryClient
from sealtrail.consumers.schema_record import SchemaRecorder

from sealtrail import layout
from sealtrail.archive import ArchiveStore, ObjectExistsError, Retention
from sealtrail.config import Settings
from sealtrail.core import merkle
from sealtrail.core.checkpoint import Checkpoint, SignedCheckpoint
from sealtrail.core.fencing import Fence
from sealtrail.core.hashing import ZERO_HASH
from sealtrail.core.signing import Signer
from sealtrail.errors import DecodeError
from sealtrail.kafka.client import group_config, kafka_config
from sealtrail.retention import RetentionPolicy
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
    head_hash: bytes = ZERO_HASH
    checkpoint_at: float | None = None  # monotonic time this process wrote its newest checkpoint
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
        state.head_hash = cp.head_hash
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
        retention_days: int = 365,
        retention_mode: str = "COMPLIANCE",
        clock: Callable[[], int] = lambda: time.time_ns() // 1000,
        policy: RetentionPolicy | None = None,
    ) -> None:
        self.store = store
        self._signer = signer
        self.policy = policy or RetentionPolicy.simple(retention_days, retention_mode)
        self._clock = clock
        self._chains: dict[str, ArchivedChain] = {}
        self.fence = Fence()  # refuses records of fenced (zombie) sealers
        self.buffered = 0
        self.segments_written = 0
        self.records_archived = 0

    def _chain(self, chain_id: str) -> ArchivedChain:
        state = self._chains.get(chain_id)
        if state is None:
            state = load_chain_tail(self.store, chain_id)
            state.checkpoint_at = time.monotonic()  # idle time counts from loading it
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
        records = read_segment(data)
        self._checkpoint(state, records, data, self._retention(records))

    def add(self, record: dict[str, Any], schema: dict[str, Any] | None = None) -> None:
        """Buffer one sealed record (sealed with ``schema``; the current SealedRecord when
        None) unless it is already archived. A record of another schema version than the
        buffer's closes the buffer as a segment first: a segment holds one schema."""
        state = self._chain(record["chain_id"])
        if not self.fence.admit(record, state.last_seq, state.head_hash, log.warning):
            return  # a zombie sealer's record, or one archived before a restart
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

    def known_chains(self) -> list[str]:
        return list(self._chains)

    def largest_buffer(self) -> int:
        return max((len(c.buffer) for c in self._chains.values()), default=0)

    def _retention(self, records: list[dict[str, Any]]) -> Retention:
        """Retention of an object holding ``records``: the longest class among their events,
        counted from now (wall clock), so never shorter than the class requires."""
        cls_ = self.policy.class_for_records(records)
        return self.policy.retention(cls_, datetime.now(UTC))

    def _checkpoint(self, state: ArchivedChain, records: list[dict[str, Any]], data: bytes,
                    retention: Retention) -> None:
        """Sign and write the checkpoint of segment ``data`` holding ``records`` (none and
        no segment: a heartbeat, docs/format.md "Heartbeat checkpoints")."""
        seg_key = layout.segment_key(state.chain_id, state.next_index) if records else ""
        cp = Checkpoint(
            chain_id=state.chain_id,
            index=state.next_index,
            first_seq=records[0]["seq"] if records else state.last_seq + 1,
            last_seq=records[-1]["seq"] if records else state.last_seq,
            head_hash=records[-1]["entry_hash"] if records else state.head_hash,
            merkle_root=merkle.root([r["entry_hash"] for r in records]),
            prev_checkpoint_hash=state.checkpoint_hash,
            segment_key=seg_key,
            segment_sha256=hashlib.sha256(data).digest(),
            segment_size=len(data),
            created_at=self._clock(),
            key_id=self._signer.key_id,
        )
        signed = cp.sign(self._signer)
        # Checkpoints carry no class (no lifecycle tag): they outlive purged segments and
        # keep the checkpoint chain whole (docs/archive.md, "retention purge").
        self.store.put(layout.checkpoint_key(state.chain_id, state.next_index),
                       signed.to_bytes(), retention=replace(retention, retention_class=None))
        state.next_index += 1
        state.last_seq = cp.last_seq
        state.head_hash = cp.head_hash
        state.checkpoint_hash = signed.checkpoint_hash
        state.checkpoint_at = time.monotonic()

    def heartbeat(self, max_idle_seconds: float, chain_ids: list[str] | None = None) -> int:
        """Write an empty signed checkpoint for every known chain (or ``chain_ids``) with
        nothing buffered whose newest checkpoint was written more than ``max_idle_seconds``
        ago (for a chain loaded from the archive: loaded more than that long ago). Returns
        how many were written.

        A chain another archiver advanced meanwhile (ObjectExistsError) is reloaded."""
        written = 0
        now = time.monotonic()
        for chain_id in chain_ids if chain_ids is not None else list(self._chains):
            state = self._chain(chain_id)
            if state.buffer or state.last_seq < 0:
                continue
            if state.checkpoint_at is not None and now - state.checkpoint_at < max_idle_seconds:
                continue
            try:
                self._checkpoint(state, [], b"", self.policy.retention(
                    self.policy.classes[self.policy.default_class], datetime.now(UTC)))
            except ObjectExistsError:
                log.warning("chain %s: checkpoint %d was written by another archiver; "
                            "reloading the chain", chain_id, state.next_index)
                del self._chains[chain_id]
                continue
            written += 1
        return written

    def write_segment(self, state: ArchivedChain) -> None:
        """Write ``state``'s buffer as its next segment; the checkpoint follows it."""
        records = state.buffer
        data = write_segment(records, {
            "sealtrail.chain_id": state.chain_id,
            "sealtrail.first_seq": str(records[0]["seq"]),
            "sealtrail.last_seq": str(records[-1]["seq"]),
        }, state.schema)
        retention = self._retention(records)
        self.store.put(layout.segment_key(state.chain_id, state.next_index), data,
                       retention=retention)
        self._checkpoint(state, records, data, retention)
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
            store, signer, clock=clock, policy=RetentionPolicy.from_settings(settings),
        )
        self._last_heartbeat = time.monotonic()
        self._writers = WriterSchemas(registry)
        self._schemas = SchemaRecorder(store, registry, self.writer.policy)
        self._oldest: float | None = None
        #: Called with the seconds each flush took (segments and checkpoints written).
        self.on_flush: Callable[[float], None] | None = None
        self._stop = threading.Event()
        self._assigned_chains: list[str] | None = None
        self._consumer = Consumer({
            **kafka_config(settings),
            **group_config(settings, settings.archiver_group),
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
        started = time.perf_counter()
        self.writer.flush()
        if self.on_flush is not None:
            self.on_flush(time.perf_counter() - started)
        self._oldest = None
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                raise

    def run(self) -> None:
        """Archive until :meth:`stop`; flushes what is buffered before returning."""
        self._consumer.subscribe([self.settings.sealed_topic], on_assign=self._on_assign,
                                 on_revoke=self._on_assign)
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
                    self._schemas.note(record["source"]["schema_id"])
                    self.writer.add(record, codec.schema)
                    if self._oldest is None:
                        self._oldest = time.monotonic()
                if self._due():
                    self._flush()
                self._heartbeat()
            if self.writer.buffered:
                self._flush()
        finally:
            self._consumer.close()

    def _on_assign(self, _consumer: Any, _partitions: Any) -> None:
        self._assigned_chains = None  # re-discovered at the next heartbeat

    def _heartbeat(self) -> None:
        """Every ``heartbeat_seconds``: an empty checkpoint for each idle chain of the
        partitions this archiver owns (docs/format.md, "Heartbeat checkpoints")."""
        interval = self.settings.heartbeat_seconds
        if interval <= 0 or time.monotonic() - self._last_heartbeat < min(interval, 5.0):
            return
        self._last_heartbeat = time.monotonic()
        if self._assigned_chains is None:
            try:
                owned = {p.partition for p in self._consumer.assignment()}
            except KafkaException:
                return
            if not owned:
                return
            found = layout.chain_ids(self.writer.store.list(layout.CHAINS))
            self._assigned_chains = [c for c in found if _raw_partition(c, self.settings) in owned]
        chains = sorted(set(self._assigned_chains) | set(self.writer.known_chains()))
        self.writer.heartbeat(interval, chains)

    def stop(self) -> None:
        self._stop.set()


def _raw_partition(chain_id: str, settings: Settings) -> int | None:
    """The raw partition a chain id names (``<raw topic>.<partition>.<random>``)."""
    prefix = f"{settings.raw_topic}."
    if not chain_id.startswith(prefix):
        return None
    middle = chain_id[len(prefix):].rsplit(".", 1)[0]
    return int(middle) if middle.isdigit() else None
