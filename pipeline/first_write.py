"""A new owner's first write, checked before it commits (fencing for brokers that do not
fence zombies, such as Tansu).

After taking a partition over, the sealer's first transaction must hold the first records
that continue the recovered head in the sealed partition. A record between the end of the
partition when recovery began and the first of ours that continues the head was written by
another sealer (a zombie that has not yet noticed it lost the partition): readers would
admit it and refuse ours, so the transaction is aborted (:class:`LostRaceError`) and the
chain recovered again. Otherwise ours are the first to continue the head, and from then on
a zombie's records can no longer link to the chain.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from sealtrail.core.chain import ChainHead
from sealtrail.errors import DecodeError, SealtrailError
from sealtrail.pipeline.recovery import ChainState
from sealtrail.schemas.cache import WriterSchemas

__all__ = ["FirstWriteCheck", "LostRaceError"]

log = logging.getLogger("sealtrail.sealer")

#: How long the check waits for our records to be delivered, and for the records before
#: them to be read back.
WAIT_S = 30


class LostRaceError(SealtrailError):
    """Another sealer wrote to the partition first since this one took it over: this
    sealer's transaction is aborted and the chain recovered again."""


class FirstWriteCheck:
    """Checks a new owner's first transaction (see the module docstring). ``base``: the
    client configuration (broker and credentials) its read-uncommitted probe starts from."""

    def __init__(self, base: dict[str, Any], sealed_topic: str, writers: WriterSchemas
                 ) -> None:
        self._base = base
        self._topic = sealed_topic
        self._writers = writers
        self._probe: Consumer | None = None
        #: per partition: the offset after our last write that reached the log (a check
        #: after an aborted attempt starts there: our own records are no competitor's)
        self.own_end: dict[int, int] = {}

    def check(self, partition: int, state: ChainState, base: ChainHead, producer: Producer,
              delivered: list[int]) -> None:
        """Wait until this transaction's records are in the log, then read (uncommitted)
        what lies between ``state.check_from`` and the first of them; raise
        :class:`LostRaceError` when a record there continues ``base``."""
        if producer.flush(WAIT_S) != 0 or not delivered:
            raise LostRaceError(f"partition {partition}: records not delivered within "
                                f"{WAIT_S} s")
        first = min(delivered)
        self.own_end[partition] = max(delivered) + 1
        for offset, value in self._read_sealed(partition, state.check_from or 0, first):
            try:
                record = self._writers.decode(value)[0]
            except DecodeError:
                continue
            if (base.seq < 0 and record["seq"] == 0) or (record["chain_id"] == base.chain_id
                                and record["seq"] == base.seq + 1
                                and record["prev_hash"] == base.entry_hash):
                raise LostRaceError(
                    f"partition {partition}: sealed offset {offset} (seq {record['seq']}, "
                    f"epoch {record['epoch']}) continues the recovered head before this "
                    "sealer's first write; recovering again")
        state.check_from = None
        log.info("partition %d: chain %s continues at seq %d in epoch %d", partition,
                 base.chain_id, base.seq + 1, base.epoch)

    def _read_sealed(self, partition: int, start: int, end: int) -> list[tuple[int, bytes]]:
        """(offset, value) of the sealed records at offsets start..end-1, uncommitted ones
        included."""
        if start >= end:
            return []
        if self._probe is None:
            self._probe = Consumer({**self._base, "group.id": "sealtrail-sealer-probe",
                                    "enable.auto.commit": False,
                                    "isolation.level": "read_uncommitted"})
        probe = self._probe
        probe.assign([TopicPartition(self._topic, partition, start)])
        found: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + WAIT_S
        try:
            while time.monotonic() < deadline:
                msg = probe.poll(0.2)
                if msg is None or msg.error() is not None:
                    continue
                if msg.offset() >= end:
                    return found
                found.append((msg.offset(), msg.value() or b""))
                if msg.offset() == end - 1:
                    return found
        finally:
            probe.unassign()
        raise LostRaceError(f"partition {partition}: timed out reading sealed offsets "
                            f"{start}..{end - 1}")
