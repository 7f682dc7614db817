"""Creating sealtrail's topics when they do not exist."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from sealtrail.config import Settings
from sealtrail.errors import TransportError
from sealtrail.kafka.client import kafka_config

__all__ = ["ensure_topics"]


def ensure_topics(settings: Settings, timeout: float = 15.0) -> None:
    """Create the raw, sealed and DLQ topics (``settings.partitions`` each) if missing;
    the DLQ with ``retention.ms`` from ``dlq_retention_hours``.

    The sealed topic must have at least as many partitions as the raw topic: raw
    partition p is sealed into sealed partition p.
    """
    admin = AdminClient(kafka_config(settings))
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise TransportError(f"broker {settings.bootstrap} is unreachable: {exc}") from None
    wanted = [settings.raw_topic, settings.sealed_topic, settings.dlq_topic]
    # The DLQ holds raw records that never went through the redaction policy (encrypted):
    # kept only as long as triage needs.
    dlq_config = {"retention.ms": str(int(settings.dlq_retention_hours * 3_600_000))}
    missing = [NewTopic(t, settings.partitions, 1,
                        config=dlq_config if t == settings.dlq_topic else {})
               for t in wanted if t not in existing]
    if missing:
        for topic, future in admin.create_topics(missing).items():
            try:
                future.result(timeout)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise TransportError(f"cannot create topic {topic}: {exc}") from None
        existing = _wait_for_topics(admin, wanted, timeout)
    raw = len(existing[settings.raw_topic].partitions)
    sealed = len(existing[settings.sealed_topic].partitions)
    if sealed < raw:
        raise TransportError(
            f"topic {settings.sealed_topic} has {sealed} partitions but {settings.raw_topic} "
            f"has {raw}: the sealed topic needs at least as many"
        )


def _wait_for_topics(admin: AdminClient, wanted: list[str], timeout: float) -> dict[str, Any]:
    """Metadata once every topic of ``wanted`` shows with its partitions: Apache Kafka
    answers CreateTopics before every broker's metadata has the new topics."""
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=timeout).topics
        ready = all(t in topics and topics[t].partitions and topics[t].error is None
                    for t in wanted)
        if ready or time.monotonic() > deadline:
            return dict(topics)
        time.sleep(0.1)
