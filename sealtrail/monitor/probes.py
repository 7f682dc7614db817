"""Probes the monitor and ``sealtrail status`` share: consumer lag per stage and the
newest checkpoint of each chain in the archive. I/O lives here; judging is in rules."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from sealtrail.archive import ArchiveStore
from sealtrail.config import Settings
from sealtrail.core import layout
from sealtrail.core.checkpoint import SignedCheckpoint
from sealtrail.errors import TransportError
from sealtrail.kafka.client import kafka_config

__all__ = ["ChainCheckpoint", "StageLag", "archive_heads", "stage_lags"]


@dataclass(frozen=True)
class StageLag:
    """A consumer group's lag on its input topic: high watermark minus committed offset,
    summed over partitions (a partition with no committed offset counts from its low
    watermark)."""

    stage: str
    group: str
    topic: str
    lag: int
    partitions: dict[int, int]


@dataclass(frozen=True)
class ChainCheckpoint:
    """The newest checkpoint of one chain in the archive."""

    chain_id: str
    index: int
    last_seq: int
    created_at_us: int


def group_lag(settings: Settings, group: str, topic: str, timeout: float = 10.0
              ) -> dict[int, int]:
    """Per partition of ``topic``: high watermark minus ``group``'s committed offset."""
    consumer = Consumer({**kafka_config(settings), "group.id": group,
                         "enable.auto.commit": False,
                         "session.timeout.ms": settings.session_timeout_ms})
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None:
            return {}
        tps = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        committed = consumer.committed(tps, timeout=timeout)
        lags = {}
        for tp in committed:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, tp.partition), timeout=timeout, cached=False)
            start = tp.offset if tp.offset >= 0 else low
            lags[tp.partition] = max(0, high - start)
        return lags
    except KafkaException as exc:
        raise TransportError(f"broker {settings.bootstrap}: cannot read lag of group "
                             f"{group}: {exc}") from None
    finally:
        consumer.close()


def stage_lags(settings: Settings) -> list[StageLag]:
    """Lag of the sealer (on the raw topic) and the archiver (on the sealed topic)."""
    out = []
    for stage, group, topic in (("sealer", settings.sealer_group, settings.raw_topic),
                                ("archiver", settings.archiver_group, settings.sealed_topic)):
        parts = group_lag(settings, group, topic)
        out.append(StageLag(stage, group, topic, sum(parts.values()), parts))
    return out


def archive_heads(store: ArchiveStore) -> list[ChainCheckpoint]:
    """The newest checkpoint of every chain in ``store`` (signatures not checked here:
    `sealtrail verify` does that; this is for operations)."""
    newest: dict[str, tuple[int, str]] = {}
    for key in store.list(layout.CHAINS):
        if "/checkpoints/" not in key:
            continue
        index = layout.parse_index(key)
        chain = key[len(layout.CHAINS):].split("/", 1)[0]
        if index is not None and index >= newest.get(chain, (-1, ""))[0]:
            newest[chain] = (index, key)
    out = []
    for chain, (index, key) in sorted(newest.items()):
        cp = SignedCheckpoint.from_bytes(store.get(key)).checkpoint
        out.append(ChainCheckpoint(chain, index, cp.last_seq, cp.created_at))
    return out
