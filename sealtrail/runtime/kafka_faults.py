"""Kafka errors a stage must survive: which ones are fatal, and when to take a partition
back after one.

A fatal error (librdkafka's ``fatal()``: a producer fenced by a newer one with the same
transactional.id, a fatal idempotence or transaction error; a consumer's static member id
taken over) leaves that client unusable. Kafka documents what to do: drop the client and
make a new one. The sealer drops the partition's producer and chain state, and takes the
partition again (new producer, ``init_transactions``, chain recovered from what was
committed) only after a group session has passed, and only if the group still gives it
the partition: a zombie that was paused past its session timeout learns meanwhile that
the partition moved, instead of fencing the new owner in turn. Until then its records
are not read on (the consumer is sent back to the recovered offset when it takes the
partition again), so nothing is lost or sealed twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError, KafkaException, Message

__all__ = ["FENCED", "Retakes", "is_fatal", "kafka_error", "usable"]

#: Codes that mean "a newer client took over", whether or not librdkafka raised them as
#: fatal: the client must not write again.
FENCED = frozenset({KafkaError._FENCED, KafkaError.INVALID_PRODUCER_EPOCH,
                    KafkaError.PRODUCER_FENCED, KafkaError.FENCED_INSTANCE_ID,
                    KafkaError._FATAL})


def kafka_error(exc: BaseException) -> KafkaError | None:
    """The KafkaError inside a KafkaException, if there is one."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def is_fatal(exc: BaseException | KafkaError | None) -> bool:
    """Whether ``exc`` (an exception or a KafkaError) leaves its client unusable."""
    err = exc if isinstance(exc, KafkaError) else kafka_error(exc) if exc is not None else None
    return err is not None and (bool(err.fatal()) or err.code() in FENCED)


class Retakes:
    """Partitions whose producer was dropped after a fatal error, each with the instant it
    may be taken again."""

    def __init__(self, delay_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._delay = delay_seconds
        self._clock = clock
        self._due: dict[int, float] = {}

    def mark(self, partition: int) -> None:
        self._due[partition] = self._clock() + self._delay

    def pending(self, partition: int) -> bool:
        return partition in self._due

    def due(self, partition: int) -> bool:
        return self._clock() >= self._due.get(partition, float("inf"))

    def clear(self, partition: int) -> None:
        self._due.pop(partition, None)

    def partitions(self) -> list[int]:
        return sorted(self._due)


def usable(msgs: Sequence[Message], log: logging.Logger) -> tuple[list[Message],
                                                                 KafkaException | None]:
    """The records of a consume() batch, and the first fatal error among its error events
    (others are logged, end-of-partition events ignored)."""
    out: list[Message] = []
    fatal: KafkaException | None = None
    for m in msgs:
        err = m.error()
        if err is None:
            out.append(m)
        elif is_fatal(err):
            fatal = fatal or KafkaException(err)
        elif err.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer: %s", err)
    return out, fatal
