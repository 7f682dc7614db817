"""Where a new owner of a raw partition resumes its chain (pipeline/recovery.py), on the real
brokers: only from what the sealed partition has committed, and never from a committed view
that an open transaction still holds back (that view looks empty, and an empty partition
starts a second chain for the same raw offsets)."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer
from helpers.chaos import sealed_framer
from helpers.stages import on_both_brokers

from sealtrail.config import Settings
from sealtrail.core.chain import ChainHead, seal
from sealtrail.core.hashing import sha256
from sealtrail.errors import TransportError
from sealtrail.keys import load_signer
from sealtrail.pipeline.recovery import recover_chain
from sealtrail.pipeline.sealer import new_chain_id
from sealtrail.schemas.cache import WriterSchemas
from sealtrail.schemas.registry_client import registry_client


def genesis_entry(settings: Settings, partition: int) -> tuple[dict[str, object], bytes]:
    """The first entry of a new chain for raw ``partition`` (a rejection of raw offset 0),
    sealed with the settings' key, and its framed bytes for the sealed topic."""
    raw = b"\x00junk"
    record = seal(ChainHead.genesis(new_chain_id(settings.raw_topic, partition)), {
        "kind": "REJECTION", "event": None,
        "rejection": {"reason": "UNDECODABLE", "detail": "test", "raw_sha256": sha256(raw),
                      "raw_size": len(raw)},
        "redaction": {"policy_id": "default", "policy_version": 1, "fields": []},
        "ingested_at": 1,
        "source": {"topic": settings.raw_topic, "partition": partition, "offset": 0,
                   "schema_id": None},
    }, load_signer(settings.keys))
    return record, sealed_framer(settings)(record)


@on_both_brokers
def test_recovery_waits_for_an_open_transaction_instead_of_starting_a_second_chain(
    settings: Settings,
) -> None:
    """The sealed partition holds one entry, in a transaction still open: recovery must not
    read that as an empty partition (a new chain, and raw offset 0 sealed twice once the
    entry commits). It fails with a TransportError that says what holds it back (the
    sealer takes the partition again later); once the transaction commits, it resumes
    that entry's chain after raw offset 0."""
    writers = WriterSchemas(registry_client(settings.registry_url))
    conf = {"bootstrap.servers": settings.bootstrap}
    record, value = genesis_entry(settings, 0)
    writer = Producer({**conf, "transactional.id": f"other-{uuid.uuid4().hex[:8]}"})
    writer.init_transactions(30)
    writer.begin_transaction()
    writer.produce(settings.sealed_topic, value, partition=0)
    assert writer.flush(30) == 0  # in the log, not committed
    with pytest.raises(TransportError, match=r"sealed partition 0: .*below the partition's "
                                             r"end .* a transaction is open there"):
        recover_chain(conf, settings.sealed_topic, 0, writers, 100, timeout=4)
    writer.commit_transaction(30)
    state, end = recover_chain(conf, settings.sealed_topic, 0, writers, 100)
    assert state is not None
    assert state.head.chain_id == record["chain_id"] and state.head.seq == 0
    assert state.next_source_offset == 1 and end >= 1
