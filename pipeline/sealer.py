"""The sealer: consume the raw topic, seal every record into its partition's chain,
produce to the sealed topic, all inside one Kafka transaction per batch.

Exactly-once rests on two things: the transaction (sealed records and consumer
offsets commit together, read_committed downstream), and recovery from the
sealed chain itself (on every assignment the chain head and the raw offset to
resume from are read back from the sealed partition, so a restart or a
rebalance continues the chain with no gap and no duplicate).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from sealtrail import schemas
from sealtrail.config import Settings
from sealtrail.core.avro import AvroCodec, frame
from sealtrail.core.chain import ChainHead, seal
from sealtrail.core.hashing import sha256
from sealtrail.core.redaction import Policy
from sealtrail.core.signing import Signer
from sealtrail.errors import TransportError
from sealtrail.pipeline.decode import Decoded, RawDecoder, Rejected
from sealtrail.pipeline.recovery import ChainState, recover_chain

__all__ = ["Sealer"]

log = logging.getLogger("sealtrail.sealer")

BATCH = 500


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
        instance_id: str | None = None,
        clock: Callable[[], int] = lambda: time.time_ns() // 1000,
    ) -> None:
        self.settings = settings
        self._signer = signer
        self._policy = policy
        self._clock = clock
        self._stop = threading.Event()
        reader = AvroCodec(schemas.load(schemas.AUDIT_EVENT))
        self._decoder = RawDecoder(registry, reader, max_bytes=settings.max_event_bytes)
        sealed_schema = schemas.sealed_record()
        self._sealed = AvroCodec(sealed_schema)
        self._sealed_schema_id = registry.register_schema(
            f"{settings.sealed_topic}-value", Schema(json.dumps(sealed_schema), "AVRO")
        )
        self._base = {
            "bootstrap.servers": settings.bootstrap,
            "session.timeout.ms": settings.session_timeout_ms,
        }
        self._consumer = Consumer({
            **self._base,
            "group.id": settings.sealer_group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "partition.assignment.strategy": "range",
        })
        instance = instance_id or uuid.uuid4().hex[:12]
        self._producer = Producer({
            **self._base,
            "transactional.id": f"sealtrail-sealer-{settings.raw_topic}-{instance}",
            "linger.ms": 5,
            "compression.type": "lz4",
        })
        self._chains: dict[int, ChainState] = {}
        self.sealed = 0
        self.rejected = 0

    # -- partition ownership ---------------------------------------------------------

    def _recover(self, partition: int) -> ChainState:
        state = recover_chain(
            self._base, self.settings.sealed_topic, partition, self._sealed,
            self.settings.dedupe_window,
        )
        if state is None:
            chain_id = new_chain_id(self.settings.raw_topic, partition)
            state = ChainState(ChainHead.genesis(chain_id), next_source_offset=0)
            log.info("partition %d: new chain %s", partition, chain_id)
        else:
            log.info("partition %d: chain %s resumes after seq %d at raw offset %d (epoch %d)",
                     partition, state.head.chain_id, state.head.seq, state.next_source_offset,
                     state.head.epoch)
        return state

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            state = self._recover(tp.partition)
            self._chains[tp.partition] = state
            tp.offset = state.next_source_offset
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._chains.pop(tp.partition, None)

    # -- sealing ---------------------------------------------------------------------

    def _unsealed(self, msg: Message, schema_id: int | None) -> dict[str, Any]:
        return {
            "kind": "EVENT",
            "event": None,
            "rejection": None,
            "redaction": {"policy_id": self._policy.policy_id,
                          "policy_version": self._policy.version, "fields": []},
            "ingested_at": self._clock(),
            "source": {"topic": msg.topic(), "partition": msg.partition(),
                       "offset": msg.offset(), "schema_id": schema_id},
        }

    def seal_message(self, state: ChainState, msg: Message) -> tuple[dict[str, Any], Rejected | None]:
        """Seal one raw record as the next entry of ``state``'s chain."""
        value = msg.value()
        outcome = self._decoder.decode(value)
        if isinstance(outcome, Decoded):
            event_id = outcome.event["event_id"]
            original = state.recent_ids.get(event_id)
            if original is not None:
                outcome = Rejected("DUPLICATE", f"event_id {event_id} was sealed as seq "
                                   f"{original} of chain {state.head.chain_id}",
                                   outcome.schema_id)
        unsealed = self._unsealed(msg, outcome.schema_id)
        if isinstance(outcome, Decoded):
            unsealed["redaction"]["fields"] = self._policy.apply(outcome.event)
            unsealed["event"] = outcome.event
            rejected = None
        else:
            raw = value or b""
            unsealed["kind"] = "REJECTION"
            unsealed["rejection"] = {"reason": outcome.reason, "detail": outcome.detail[:1000],
                                     "raw_sha256": sha256(raw), "raw_size": len(raw)}
            rejected = outcome
        record = seal(state.head, unsealed, self._signer)
        state.head = state.head.advance(record)
        state.next_source_offset = msg.offset() + 1
        if rejected is None:
            state.remember(record["event"]["event_id"], record["seq"], self.settings.dedupe_window)
        return record, rejected

    def _process(self, msgs: list[Message]) -> None:
        self._producer.begin_transaction()
        for msg in msgs:
            state = self._chains.get(msg.partition())
            if state is None or msg.offset() < state.next_source_offset:
                continue  # revoked meanwhile, or already sealed before a rewind
            record, rejected = self.seal_message(state, msg)
            self._producer.produce(
                self.settings.sealed_topic,
                frame(self._sealed_schema_id, self._sealed.encode(record)),
                record["chain_id"].encode(),
                partition=msg.partition(),
            )
            if rejected is not None:
                self.rejected += 1
                self._producer.produce(
                    self.settings.dlq_topic, msg.value(), msg.key(),
                    headers={"reason": rejected.reason, "chain_id": record["chain_id"],
                             "seq": str(record["seq"])},
                )
            else:
                self.sealed += 1
        self._producer.send_offsets_to_transaction(
            self._consumer.position(self._consumer.assignment()),
            self._consumer.consumer_group_metadata(),
        )
        self._producer.commit_transaction()

    def _rewind(self) -> None:
        """After a failed transaction: forget in-memory heads and resume from the chain."""
        assignment = self._consumer.assignment()
        for tp in assignment:
            state = self._recover(tp.partition)
            self._chains[tp.partition] = state
            self._consumer.seek(TopicPartition(tp.topic, tp.partition, state.next_source_offset))

    def run(self) -> None:
        """Seal until :meth:`stop` is called. Transient failures are retried."""
        self._producer.init_transactions()
        self._consumer.subscribe(
            [self.settings.raw_topic], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        backoff = 0.5
        try:
            while not self._stop.is_set():
                msgs = self._consumer.consume(BATCH, 0.2)
                good = []
                for m in msgs:
                    err = m.error()
                    if err is None:
                        good.append(m)
                    elif err.code() != KafkaError._PARTITION_EOF:
                        log.warning("consumer: %s", err)
                if not good:
                    continue
                try:
                    self._process(good)
                    backoff = 0.5
                except (KafkaException, TransportError) as exc:
                    log.warning("batch not sealed, retrying: %s", exc)
                    self._abort()
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                    self._rewind()
        finally:
            self._consumer.close()
            self._producer.flush(10)

    def _abort(self) -> None:
        try:
            self._producer.abort_transaction()
        except KafkaException as exc:
            if exc.args and exc.args[0].fatal():
                raise
            log.warning("abort_transaction: %s", exc)

    def stop(self) -> None:
        self._stop.set()
