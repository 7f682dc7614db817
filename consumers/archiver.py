"""The archiver: sealed topic -> segments and signed checkpoints in the archive.

Each flush writes, per chain, one segment (the records since the last
checkpoint) and then its checkpoint, then the signed archive index, and only after
all are durable commits the consumer offsets. The archive itself says how far each
chain is archived, so a restart skips what was written and completes a segment whose
checkpoint was not yet written (idempotent retries). The writing itself is
:class:`~sealtrail.consumers.segment_writer.SegmentWriter`'s, which checks a chain's tail
before it writes after it: a record of a chain whose tail does not check out is not
archived, its partition is paused and no offset is committed until a restart.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from sealtrail.archive import ArchiveStore
from sealtrail.config import Settings
from sealtrail.consumers.schema_record import SchemaRecorder
from sealtrail.consumers.segment_writer import (
    ArchivedChain,
    ChainQuarantinedError,
    SegmentWriter,
    keyring_file,
)
from sealtrail.core import layout
from sealtrail.core.signing import Keyring, Signer
from sealtrail.errors import DecodeError
from sealtrail.governance.retention import RetentionPolicy
from sealtrail.kafka.client import group_config, kafka_config
from sealtrail.runtime.kafka_faults import is_fatal, usable
from sealtrail.schemas.cache import WriterSchemas

__all__ = ["ArchivedChain", "Archiver", "SegmentWriter"]  # the writer is segment_writer's

log = logging.getLogger("sealtrail.archiver")


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
        keyring: Keyring | Callable[[], Keyring] | None = None,
    ) -> None:
        """``keyring``: what chain tails must be signed by (default: the keys directory's
        public.json, read again when it changes; without one, the signer's own key)."""
        from sealtrail.keys import PUBLIC_KEYRING

        self.settings = settings
        public = settings.keys / PUBLIC_KEYRING
        if keyring is None and public.is_file():
            keyring = keyring_file(public)
        self.writer = SegmentWriter(
            store, signer, clock=clock, policy=RetentionPolicy.from_settings(settings),
            keyring=keyring,
        )
        self._last_heartbeat = time.monotonic()
        self._writers = WriterSchemas(registry)
        self._schemas = SchemaRecorder(store, registry, self.writer.policy,
                                       on_recorded=self.writer.note_schema)
        self._paused: set[tuple[str, int]] = set()  # partitions of quarantined chains
        self._oldest: float | None = None
        #: Called with the seconds each flush took (segments and checkpoints written).
        self.on_flush: Callable[[float], None] | None = None
        self._stop = threading.Event()
        self._assigned_chains: list[str] | None = None
        self._consumer = self._new_consumer()

    def _new_consumer(self) -> Consumer:
        return Consumer({
            **kafka_config(self.settings),
            **group_config(self.settings, self.settings.archiver_group),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        })

    def _subscribe(self) -> None:
        self._consumer.subscribe([self.settings.sealed_topic], on_assign=self._on_assign,
                                 on_revoke=self._on_assign)

    def _replace_consumer(self, exc: BaseException) -> None:
        """After a fatal consumer error (e.g. a static member id taken over): a new consumer
        joins the group. What is buffered stays; records delivered again are skipped, since
        the archive and the buffer say how far each chain is."""
        log.warning("consumer: fatal error (%s); joining the group again with a new consumer",
                    exc)
        with contextlib.suppress(Exception):
            self._consumer.close()
        self._consumer = self._new_consumer()
        self._assigned_chains = None
        self._subscribe()

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
        self._oldest = time.monotonic() if self.writer.buffered else None  # an open batch
        if self.writer.quarantined:  # re-read after a restart rather than lose a record
            log.error("offsets NOT committed: chain(s) %s quarantined (tail check failed)",
                      ", ".join(sorted(self.writer.quarantined)))
            return
        try:
            held = self.writer.held()
            if held:  # commit no further than the first record not yet in a segment
                self._consumer.commit(offsets=self._commit_offsets(held), asynchronous=False)
            else:
                self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if is_fatal(exc):
                self._replace_consumer(exc)
            elif exc.args[0].code() != KafkaError._NO_OFFSET:
                # e.g. a rebalance under way: the next flush commits; what is delivered again
                # meanwhile is already archived and skipped
                log.warning("commit after a flush failed, retried at the next flush: %s", exc)

    def _commit_offsets(self, held: dict[int, int]) -> list[TopicPartition]:
        """The consumer's positions, each lowered to the first record of its partition
        that is still buffered (an open batch waiting for its seal)."""
        offsets = []
        for tp in self._consumer.position(self._consumer.assignment()):
            offset = held.get(tp.partition, tp.offset)
            if tp.offset >= 0:
                offset = min(offset, tp.offset)
            if offset >= 0:
                offsets.append(TopicPartition(tp.topic, tp.partition, offset))
        return offsets

    def run(self) -> None:
        """Archive until :meth:`stop`; flushes what is buffered before returning."""
        self._subscribe()
        try:
            while not self._stop.is_set():
                try:
                    batch, fatal = usable(self._consumer.consume(1000, 0.2), log)
                except KafkaException as exc:
                    batch, fatal = [], exc
                if fatal is not None:
                    if is_fatal(fatal):
                        self._replace_consumer(fatal)
                    else:
                        log.warning("consumer: %s", fatal)
                for msg in batch:
                    try:
                        record, codec = self._writers.decode(msg.value())
                    except DecodeError as exc:
                        log.error("sealed record at %s/%d@%d does not decode (%s); not archived",
                                  msg.topic(), msg.partition(), msg.offset(), exc)
                        continue
                    self._schemas.note(record["source"]["schema_id"])
                    try:
                        self.writer.add(record, codec.schema, (msg.partition(), msg.offset()))
                    except ChainQuarantinedError:
                        self._pause(msg.topic(), msg.partition())
                        continue
                    if self._oldest is None:
                        self._oldest = time.monotonic()
                if self._due():
                    self._flush()
                self._heartbeat()
            if self.writer.buffered:
                self._flush()
        finally:
            self._consumer.close()

    def _pause(self, topic: str, partition: int) -> None:
        """Stop reading a partition whose chain is quarantined (its records would not be
        archived; its offsets are not committed, so a restart reads them again)."""
        if (topic, partition) in self._paused:
            return
        self._paused.add((topic, partition))
        try:
            self._consumer.pause([TopicPartition(topic, partition)])
        except KafkaException as exc:
            log.warning("could not pause %s/%d: %s", topic, partition, exc)

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
