"""What Apache Kafka fences for the sealer, checked on the real broker rather than taken from
its documentation (docs/architecture.md, "Exactly-once on Apache Kafka and on Tansu"):

* transactional-id epochs: a second producer initialising the same transactional.id aborts
  the first one's open transaction (read_committed readers never see it) and the first one
  can neither produce nor commit again;
* KIP-447: a transactional offset commit that carries a consumer's stale group metadata (it
  lost its partitions in a rebalance) is refused, so that transaction cannot commit.
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from sealtrail.config import Settings
from sealtrail.kafka.admin import ensure_topics
from sealtrail.runtime import dev


@pytest.fixture
def topics(kafka_stack: dev.Stack) -> Settings:
    tag = uuid.uuid4().hex[:8]
    s = Settings(bootstrap=kafka_stack.bootstrap, raw_topic=f"raw-{tag}",
                 sealed_topic=f"sealed-{tag}", dlq_topic=f"dlq-{tag}", partitions=1)
    ensure_topics(s)
    return s


def committed_values(bootstrap: str, topic: str) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "fence-reader",
                         "isolation.level": "read_committed", "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    return values
                continue
            values.append(msg.value())
    finally:
        consumer.close()
    raise AssertionError("could not read the topic to its end")


def txn_producer(bootstrap: str, txn_id: str) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id})
    producer.init_transactions(30)
    return producer


def test_a_new_owner_of_a_transactional_id_aborts_and_fences_the_old_one(
    topics: Settings,
) -> None:
    """Producer A has an open transaction; producer B initialises the same transactional.id.
    A's records are never visible to read_committed readers, B's are, and A's commit fails
    with a fatal fencing error: what one transactional.id per raw partition relies on."""
    txn_id = f"fence-{uuid.uuid4().hex[:8]}"
    old = txn_producer(topics.bootstrap, txn_id)
    old.begin_transaction()
    old.produce(topics.sealed_topic, b"zombie", partition=0)
    assert old.flush(30) == 0  # in the log, uncommitted
    new = txn_producer(topics.bootstrap, txn_id)
    new.begin_transaction()
    new.produce(topics.sealed_topic, b"heir", partition=0)
    new.commit_transaction(30)
    assert committed_values(topics.bootstrap, topics.sealed_topic) == [b"heir"]
    with pytest.raises(KafkaException) as caught:
        old.produce(topics.sealed_topic, b"late", partition=0)
        old.commit_transaction(30)
    err = caught.value.args[0]
    print(f"transactional-id fencing: {err.name()} fatal={err.fatal()} {err.str()!r}")
    assert err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                         KafkaError.INVALID_PRODUCER_EPOCH), err
    assert committed_values(topics.bootstrap, topics.sealed_topic) == [b"heir"]


def test_kip447_refuses_offsets_with_a_stale_group_generation(topics: Settings) -> None:
    """A member takes the raw partition; its producer holds the member's group metadata.
    The member is evicted (it stops polling past the session timeout) and the group moves
    on: sending offsets with the stale metadata fails and the transaction cannot commit."""
    group = f"g-{uuid.uuid4().hex[:8]}"
    conf = {"bootstrap.servers": topics.bootstrap, "group.id": group,
            "session.timeout.ms": 6000, "max.poll.interval.ms": 7000,
            "enable.auto.commit": False}
    stale = Consumer(conf)
    stale.subscribe([topics.raw_topic])
    deadline = time.monotonic() + 60
    while not stale.assignment() and time.monotonic() < deadline:
        stale.poll(0.2)
    assert stale.assignment(), "the first member got no partition"
    metadata = stale.consumer_group_metadata()
    heir = Consumer(conf)
    heir.subscribe([topics.raw_topic])
    deadline = time.monotonic() + 60
    while not heir.assignment() and time.monotonic() < deadline:
        heir.poll(0.2)  # the stale member does not poll: it is evicted, heir gets it all
    assert heir.assignment(), "the group did not move on"
    producer = txn_producer(topics.bootstrap, f"kip447-{uuid.uuid4().hex[:8]}")
    producer.begin_transaction()
    producer.produce(topics.sealed_topic, b"zombie", partition=0)
    with pytest.raises(KafkaException) as caught:
        producer.send_offsets_to_transaction([TopicPartition(topics.raw_topic, 0, 1)],
                                             metadata, 30)
        producer.commit_transaction(30)
    err = caught.value.args[0]
    print(f"KIP-447 fencing: {err.name()} {err.str()!r}")
    assert err.code() in (KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID,
                          KafkaError.FENCED_INSTANCE_ID, KafkaError._FENCED), err
    producer.abort_transaction(30)
    assert committed_values(topics.bootstrap, topics.sealed_topic) == []
    heir.close()
    stale.close()
