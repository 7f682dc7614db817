"""Recovering a chain's head from what the sealed topic has committed.

The sealed chain, not the consumer group's offsets, says where sealing resumes:
the committed tail of sealed partition p is replayed with the readers' fencing
rule (sealtrail.core.fencing), so records of a zombie sealer are skipped exactly as
the archiver skips them; the admitted head gives the chain id, seq, hash and the
raw offset it came from, and the new owner opens the highest epoch seen + 1. The
recent event ids of admitted records rebuild the deduplication window.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from sealtrail.core.chain import ChainHead, sealed_prefix
from sealtrail.core.fencing import replay_tail
from sealtrail.errors import TransportError
from sealtrail.schemas.cache import WriterSchemas

__all__ = ["ChainState", "recover_chain"]


@dataclass
class ChainState:
    """The sealer's mutable view of one chain (one raw partition)."""

    head: ChainHead
    next_source_offset: int
    recent_ids: OrderedDict[str, int] = field(default_factory=OrderedDict)
    check_from: int | None = None
    """End of the sealed partition when recovery began (after init_transactions): until
    the new owner's first commit, a record after it that continues the recovered head was
    written by someone else."""
    refused: int = 0
    """Records of the tail the fencing rule refused (zombie writes)."""
    batch: list[bytes] = field(default_factory=list)
    """Entry hashes of the chain's open batch: the unsigned entries after its last signed
    one, up to the head (the next batch seal covers them)."""

    @property
    def batch_first_seq(self) -> int:
        """The seq the open batch starts at."""
        return self.head.seq + 1 - len(self.batch)

    def remember(self, event_id: str, seq: int, window: int) -> None:
        self.recent_ids[event_id] = seq
        if len(self.recent_ids) > window:
            self.recent_ids.popitem(last=False)


def recover_chain(
    consumer_conf: dict[str, Any],
    topic: str,
    partition: int,
    writers: WriterSchemas,
    window: int,
    timeout: float = 30.0,
) -> tuple[ChainState | None, int]:
    """The committed tail of sealed ``topic``/``partition`` as a ChainState (None if the
    partition holds no committed record), and the partition's end offset when recovery
    began: run after ``init_transactions``, so anything written after it was written by
    another sealer (what the first-write check looks for)."""
    conf = {
        **consumer_conf,
        "group.id": "sealtrail-recovery",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed",
    }
    consumer = Consumer(conf)
    # Watermarks from a read_uncommitted client: a read_committed one may report the last
    # stable offset, which an open transaction of another producer holds back (Tansu
    # even reports 0 then), and an empty-looking partition would start a second chain.
    probe = Consumer({**conf, "isolation.level": "read_uncommitted"})
    try:
        tp = TopicPartition(topic, partition)
        low, high = probe.get_watermark_offsets(tp, timeout=timeout)
        if high <= low:
            return None, high
        span = window + 2 * 2048 + 64  # the dedupe window plus a zombie batch or two
        while True:
            start = max(low, high - span)
            records = _read_range(consumer, tp, start, high, timeout)
            if records or start == low:
                break
            span *= 4  # only transaction markers in the tail: look further back
        replay = replay_tail([writers.decode(value)[0] for _, value in records])
        if replay is None:
            return None, high
        head = replay.head
        last = replay.admitted[-1]
        state = ChainState(
            head=ChainHead(head.chain_id, head.seq, head.entry_hash, replay.max_epoch + 1),
            next_source_offset=last["source"]["offset"] + 1,
            check_from=high,
            refused=replay.refused,
        )
        state.batch = _open_batch(replay.admitted, partition)
        for rec in replay.admitted[-window:]:
            if rec["kind"] == "EVENT":
                state.remember(rec["event"]["event_id"], rec["seq"], window)
        return state, high
    finally:
        consumer.close()
        probe.close()


def _open_batch(admitted: Sequence[Mapping[str, Any]], partition: int) -> list[bytes]:
    """The entry hashes of the unsigned entries after the last signed one of ``admitted``.

    There are some only when the previous owner's batch was cut short and its records
    still became visible (Tansu hands aborted records to read_committed readers): they
    continue the chain, so the new owner's first batch seal covers them too, as every
    reader's fencing rule admits them (docs/architecture.md, step 2)."""
    start = sealed_prefix(admitted)
    if start == 0 and admitted[0]["seq"] != 0:
        raise TransportError(
            f"sealed partition {partition}: no signed entry in the {len(admitted)} entries "
            "of the tail read, so the open batch's start is not known")
    return [rec["entry_hash"] for rec in admitted[start:]]


def _read_range(
    consumer: Consumer, tp: TopicPartition, start: int, end: int, timeout: float
) -> list[tuple[int, bytes]]:
    """(offset, value) of every committed record from ``start`` until the committed view
    reaches ``end`` (the partition's end when recovery began).

    A read_committed reader stops at the last stable offset, below ``end`` while a
    transaction is still open there. Taking that early end for the chain's end would
    start a second chain for the partition (docs/architecture.md, step 2), so the read
    waits for the rest and fails after ``timeout`` (the sealer then takes the partition
    again later)."""
    consumer.assign([TopicPartition(tp.topic, tp.partition, start)])
    values: list[tuple[int, bytes]] = []
    stable: int | None = None  # where the committed view ended, once it has
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                raise TransportError(f"reading sealed partition {tp.partition}: {err}")
            stable = msg.offset()
            if stable is not None and stable >= end:
                return values
            continue
        value = msg.value()
        if value is not None:
            values.append((msg.offset(), value))
    if stable is not None:
        raise TransportError(
            f"sealed partition {tp.partition}: its committed records still end at offset "
            f"{stable}, below the partition's end {end}, after {timeout:.0f} s: a "
            "transaction is open there (another writer's, or an abort not yet finished)")
    raise TransportError(f"timed out reading the tail of sealed partition {tp.partition}")
