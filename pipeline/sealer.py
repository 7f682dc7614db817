"""The sealer: consume the raw topic, seal every record into its partition's chain,
produce to the sealed topic, all inside one Kafka transaction per batch.

Exactly-once rests on three things:

- one transactional producer per raw partition, with a transactional.id derived
  from the topic and partition, so whoever owns partition p next resolves the
  previous owner's unfinished transaction when it calls init_transactions
  (Kafka aborts it; Tansu commits it, see docs/architecture.md);
- the transaction: sealed records and consumer offsets commit together, and
  everything downstream reads with isolation.level=read_committed;
- recovery from the sealed chain itself: after init_transactions, the chain head
  and the raw offset to resume from are read back from the sealed partition, so a
  restart or a rebalance continues the chain with no gap and no duplicate;
- fencing by the chain, for brokers that do not fence zombies (Tansu): each new owner
  opens a higher epoch, checks before its first commit that nobody else continued the
  head, and every reader (archiver, recovery) refuses records that do not continue the
  head they admitted (sealtrail.core.fencing).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from sealtrail.config import Settings
from sealtrail.core.chain import ChainHead
from sealtrail.core.redaction import Policy
from sealtrail.core.signing import Signer
from sealtrail.errors import TransportError
from sealtrail.kafka.client import group_config, kafka_config
from sealtrail.pipeline.decode import Rejected
from sealtrail.pipeline.dlq import DlqCipher
from sealtrail.pipeline.first_write import FirstWriteCheck, LostRaceError
from sealtrail.pipeline.guard import dlq_value
from sealtrail.pipeline.recovery import ChainState, recover_chain
from sealtrail.pipeline.sealing import RecordSealer
from sealtrail.runtime.kafka_faults import Retakes, is_fatal, usable
from sealtrail.schemas.cache import WriterSchemas

__all__ = ["Sealer"]

log = logging.getLogger("sealtrail.sealer")

BATCH = 2000


def new_chain_id(topic: str, partition: int) -> str:
    """A fresh chain id: topic and partition plus a random part, so chains of a recreated
    topic or a replaced cluster never collide with older ones in the archive."""
    return f"{topic}.{partition}.{uuid.uuid4().hex[:16]}"


class Sealer:
    """One sealer process's worth of work. ``run()`` loops until ``stop()``."""

    def __init__(
        self,
        settings: Settings,
        *,
        signer: Signer,
        policy: Policy,
        registry: SchemaRegistryClient,
        clock: Callable[[], int] = lambda: time.time_ns() // 1000,
        dlq: DlqCipher | None = None,
    ) -> None:
        self.settings = settings
        # Dead letters are encrypted under their own key (pipeline/dlq.py).
        self._dlq = dlq or DlqCipher.for_keys(settings.keys)
        self._stop = threading.Event()
        self._writers = WriterSchemas(registry, settings.decode_limits)
        #: The per-record path (decode, dedupe, redact, seal, encode): no Kafka I/O.
        self.records = RecordSealer(settings, signer=signer, policy=policy,
                                    registry=registry, writers=self._writers, clock=clock)
        # What producers and the recovery readers share: no group settings (librdkafka warns
        # about consumer properties handed to a producer).
        self._base = kafka_config(settings)
        self._first_write = FirstWriteCheck(self._base, settings.sealed_topic, self._writers)
        self._consumer = self._new_consumer()
        self._retakes = Retakes(settings.session_timeout_ms / 1000)
        self._chains: dict[int, ChainState] = {}
        self._producers: dict[int, Producer] = {}
        self._commits: dict[int, Future[None]] = {}  # per partition: its pending commit
        self._count_lock = threading.Lock()
        self._committer = ThreadPoolExecutor(4, thread_name_prefix="sealtrail-commit")
        self.sealed = 0
        self.rejected = 0
        #: Called with (records, seconds) when a batch's transaction has committed: the
        #: time from taking the batch to its records being visible downstream.
        self.on_batch: Callable[[int, float], None] | None = None

    def _new_consumer(self) -> Consumer:
        return Consumer({
            **self._base,
            **group_config(self.settings, self.settings.sealer_group),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            # Small fetches per partition, so that one consume() call holds records of
            # several partitions and they progress together.
            "max.partition.fetch.bytes": 128 * 1024,
        })

    # -- partition ownership ---------------------------------------------------------

    def _recover(self, partition: int) -> ChainState:
        state, end = recover_chain(
            self._base, self.settings.sealed_topic, partition, self._writers,
            self.settings.dedupe_window,
        )
        if state is None:
            chain_id = new_chain_id(self.settings.raw_topic, partition)
            state = ChainState(ChainHead.genesis(chain_id), next_source_offset=0, check_from=end)
            log.info("partition %d: new chain %s", partition, chain_id)
        else:
            log.info("partition %d: chain %s resumes after seq %d at raw offset %d (epoch %d; "
                     "%d fenced records in the tail)", partition, state.head.chain_id,
                     state.head.seq, state.next_source_offset, state.head.epoch, state.refused)
        return state

    def transactional_id(self, partition: int) -> str:
        """One transactional.id per raw partition: its next owner fences the last one."""
        return f"sealtrail-sealer.{self.settings.raw_topic}.{partition}"

    def _take(self, partition: int) -> ChainState:
        """Become the writer of ``partition``: resolve the previous owner's transaction,
        then read the chain back."""
        producer = Producer({
            **self._base,
            "transactional.id": self.transactional_id(partition),
            # One request in flight: Tansu was seen to lose every other small batch of a
            # transactional producer under load with several in flight.
            "max.in.flight.requests.per.connection": 1,
            "linger.ms": 5,
            "compression.type": "lz4",
        })
        producer.init_transactions(30)
        self._producers[partition] = producer
        state = self._recover(partition)
        self._chains[partition] = state
        return state

    def _release(self, partition: int) -> None:
        log.info("partition %d: released", partition)
        self._await_commit(partition, quiet=True)
        self._chains.pop(partition, None)
        producer = self._producers.pop(partition, None)
        if producer is not None:
            producer.flush(10)

    # Assignments are incremental (cooperative-sticky, or KIP-848): the callbacks get only
    # the partitions that change hands, and the others keep sealing through a rebalance.

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Partitions are taken over one after another: concurrent init_transactions for
        # different transactional ids left Tansu with producer states whose first produce
        # failed with _STATE and whose abort hung (tests/integration/pipeline/test_fatal_kafka.py).
        for tp in partitions:
            self._retakes.clear(tp.partition)
        for tp in partitions:
            try:
                tp.offset = self._take(tp.partition).next_source_offset
            except Exception as exc:  # a broker or registry that does not answer yet
                self._drop(tp.partition, exc, "could not take it over")
        consumer.incremental_assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._retakes.clear(tp.partition)
            self._release(tp.partition)
        consumer.incremental_unassign(partitions)

    def _drop(self, partition: int, exc: BaseException, what: str) -> None:
        """Forget the partition's producer and chain after ``exc`` (a fatal Kafka error, or
        a failure to take the partition or recover its chain); take it again later, if the
        group still gives it to us (sealtrail.runtime.kafka_faults)."""
        log.warning("partition %d: %s (%s: %s); dropping its producer, taking it again in "
                    "%.0f s if it is still ours", partition, what, type(exc).__name__, exc,
                    self.settings.session_timeout_ms / 1000)
        self._await_commit(partition, quiet=True)
        self._chains.pop(partition, None)
        self._producers.pop(partition, None)  # unusable after a fatal error: never flushed
        self._retakes.mark(partition)

    def _retake(self, partition: int) -> None:
        """Take a dropped partition again once it is due and still assigned to us, and send
        the consumer back to the chain's recovered offset."""
        if not self._retakes.due(partition):
            return
        if partition not in {tp.partition for tp in self._consumer.assignment()}:
            self._retakes.clear(partition)  # it moved to another sealer meanwhile
            return
        self._retakes.clear(partition)
        try:
            state = self._take(partition)
            self._consumer.seek(
                TopicPartition(self.settings.raw_topic, partition, state.next_source_offset))
        except Exception as exc:
            self._drop(partition, exc, "could not take it over again")

    # -- sealing ---------------------------------------------------------------------

    def seal_value(
        self, state: ChainState, value: bytes | None, topic: str, partition: int, offset: int
    ) -> tuple[bytes, dict[str, Any], Rejected | None]:
        """Seal one raw record as the next entry of ``state``'s chain (see
        :meth:`RecordSealer.seal_value`): the framed sealed record, the record, and the
        rejection if it was rejected."""
        return self.records.seal_value(state, value, topic, partition, offset)

    def _seal_partition(self, partition: int, msgs: list[Message]) -> None:
        """Seal ``msgs`` (all of one raw partition) in one transaction.

        The first transaction after taking a partition over is checked before it commits:
        its records must be the first to continue the recovered head in the sealed
        partition (sealtrail.pipeline.first_write)."""
        state = self._chains.get(partition)
        producer = self._producers.get(partition)
        if state is None or producer is None:
            return  # revoked meanwhile
        self._await_commit(partition)
        started = time.perf_counter()
        base = state.head
        fresh = state.check_from is not None
        delivered: list[int] = []

        def on_delivery(err: KafkaError | None, m: Message) -> None:
            if err is None:
                delivered.append(m.offset())

        producer.begin_transaction()
        sealed = rejected_n = 0
        topic = self.settings.sealed_topic
        kwargs = {"on_delivery": on_delivery} if fresh else {}
        last: tuple[bytes, dict[str, Any]] | None = None  # held back: it becomes the seal
        for msg in msgs:
            if msg.offset() < state.next_source_offset:
                continue  # sealed before a rewind
            framed, record, rejected = self.seal_value(
                state, msg.value(), msg.topic(), partition, msg.offset())
            if last is not None:
                producer.produce(topic, last[0], last[1]["chain_id"].encode(),
                                 partition=partition, **kwargs)
            last = framed, record
            if rejected is None:
                sealed += 1
                continue
            rejected_n += 1
            dead, omitted = dlq_value(msg.value())
            coordinates = {"topic": msg.topic(), "partition": partition,
                           "offset": msg.offset()}
            producer.produce(
                self.settings.dlq_topic,
                self._dlq.seal(msg.key(), dead, **coordinates),
                record["chain_id"].encode(),
                headers={**self._dlq.headers(reason=rejected.reason,
                                             chain_id=record["chain_id"],
                                             seq=record["seq"], **coordinates), **omitted},
            )
        if last is not None:  # the batch ends with its seal, in the same transaction
            producer.produce(topic, self.records.close_batch(state, last[1]),
                             last[1]["chain_id"].encode(), partition=partition, **kwargs)
        if fresh and sealed + rejected_n:
            self._first_write.check(partition, state, base, producer, delivered)
        offsets = [TopicPartition(self.settings.raw_topic, partition, state.next_source_offset)]
        group = self._consumer.consumer_group_metadata()

        def commit() -> None:
            producer.send_offsets_to_transaction(offsets, group)
            producer.commit_transaction()
            with self._count_lock:
                self.sealed += sealed
                self.rejected += rejected_n
            if self.on_batch is not None:
                self.on_batch(sealed + rejected_n, time.perf_counter() - started)

        # Committing waits on the broker: do it on a thread while this one seals the next
        # partition's batch. The partition's next batch waits for it (_await_commit).
        self._commits[partition] = self._committer.submit(commit)

    def _await_commit(self, partition: int, *, quiet: bool = False) -> None:
        """Wait for the partition's pending commit; raise its error unless ``quiet``."""
        pending = self._commits.pop(partition, None)
        if pending is None:
            return
        try:
            pending.result()
        except Exception:
            if not quiet:
                raise

    def _rewind(self, partition: int) -> None:
        """After a failed transaction: abort it, forget the in-memory head, resume from
        what the chain committed."""
        self._await_commit(partition, quiet=True)
        producer = self._producers.get(partition)
        if producer is None:
            return
        try:
            producer.abort_transaction(10)
        except KafkaException as exc:
            # Fatal (fenced by a newer owner of the partition, a broker-side fatal error) or
            # not done in time: this producer's transaction state is unknown, so it must not
            # write again (a fenced producer's failure can first surface as _STATE, and its
            # abort then times out for ever). Take the partition again later with a new one.
            self._drop(partition, exc, "abort_transaction failed")
            return
        state = self._recover(partition)
        if state.check_from is not None:  # skip our own aborted attempt when checking again
            state.check_from = max(state.check_from,
                                   self._first_write.own_end.get(partition, 0))
        self._chains[partition] = state
        self._consumer.seek(
            TopicPartition(self.settings.raw_topic, partition, state.next_source_offset))

    def run(self) -> None:
        """Seal until :meth:`stop` is called. Transient failures are retried; a fatal Kafka
        error drops the client concerned and makes a new one
        (sealtrail.runtime.kafka_faults)."""
        self._subscribe()
        self._backoff = 0.5
        try:
            while not self._stop.is_set():
                by_partition: dict[int, list[Message]] = {}
                for m in self._consume():
                    by_partition.setdefault(m.partition(), []).append(m)
                for partition in self._retakes.partitions():
                    self._retake(partition)
                for partition, msgs in by_partition.items():
                    if self._retakes.pending(partition):
                        continue  # read again from the recovered offset once retaken
                    self._seal_or_rewind(partition, msgs)
        finally:
            for partition in list(self._commits):
                self._await_commit(partition, quiet=True)
            self._consumer.close()
            for partition in list(self._producers):
                self._release(partition)
            self._committer.shutdown()

    def _subscribe(self) -> None:
        self._consumer.subscribe(
            [self.settings.raw_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )

    def _consume(self) -> list[Message]:
        """The next batch of raw records. A fatal consumer error (e.g. a static member id
        taken over) replaces the consumer: every partition is released and the new consumer
        joins the group afresh."""
        try:
            records, fatal = usable(self._consumer.consume(BATCH, 0.2), log)
        except KafkaException as exc:
            records, fatal = [], exc
        if fatal is None:
            return records
        if not is_fatal(fatal):
            log.warning("consumer: %s", fatal)
            return []
        # With static membership this happens when a restarted process's instance id is
        # still held by its killed predecessor (KIP-848: UNRELEASED_INSTANCE_ID until that
        # member's session expires) or was taken over (FENCED_INSTANCE_ID).
        log.warning("consumer: fatal error (%s); releasing every partition and joining the "
                    "group again with a new consumer in 1 s", fatal)
        for partition in list(self._producers):
            self._release(partition)
        self._retakes = Retakes(self.settings.session_timeout_ms / 1000)
        with contextlib.suppress(Exception):
            self._consumer.close()
        self._stop.wait(1.0)
        self._consumer = self._new_consumer()
        self._subscribe()
        return []

    def _seal_or_rewind(self, partition: int, msgs: list[Message]) -> None:
        """Seal one partition's batch; on failure retry from the chain's committed head,
        or drop the producer when the failure is fatal. Nothing here stops the loop."""
        try:
            self._seal_partition(partition, msgs)
            self._backoff = 0.5
            return
        except Exception as exc:
            if is_fatal(exc):
                self._drop(partition, exc, "fatal Kafka error")
                return
            expected = isinstance(exc, KafkaException | TransportError | LostRaceError)
            (log.warning if expected else log.error)(
                "partition %d: batch not sealed, retrying: %s: %s", partition,
                type(exc).__name__, exc if expected else "(unexpected)")
        time.sleep(self._backoff)
        self._backoff = min(self._backoff * 2, 10.0)
        try:
            self._rewind(partition)
        except Exception as exc:
            self._drop(partition, exc, "could not recover the chain")

    def stop(self) -> None:
        self._stop.set()
