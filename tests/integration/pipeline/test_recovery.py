"""Where a new owner of a raw partition resumes its chain (pipeline/recovery.py), on the real
brokers: only from what the sealed partition has committed, and never from a committed view
that an open transaction still holds back (that view looks empty, and an empty partition
starts a second chain for the same raw offsets)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from helpers.chaos import sealed_framer
from helpers.pipeline_checks import archived_records, store_of, verify, wait_until
from helpers.stages import Stage, on_both_brokers

from sealtrail.config import Settings
from sealtrail.core.chain import ChainHead, seal, seal_batch
from sealtrail.core.hashing import sha256
from sealtrail.errors import TransportError
from sealtrail.keys import load_signer
from sealtrail.pipeline.recovery import recover_chain
from sealtrail.pipeline.sealer import new_chain_id
from sealtrail.schemas.cache import WriterSchemas
from sealtrail.schemas.registry_client import registry_client


def rejections(settings: Settings, head: ChainHead, offsets: range, *,
               sign: bool = False) -> list[dict[str, object]]:
    """Entries after ``head`` for raw ``offsets`` of partition 0 (rejections), sealed with
    the settings' key: unsigned as a sealer writes them before the batch seal (record
    format 2), or each signed on its own (``sign``)."""
    signer = load_signer(settings.keys)
    records = []
    for offset in offsets:
        raw = b"\x00junk"
        record = seal(head, {
            "kind": "REJECTION", "event": None,
            "rejection": {"reason": "UNDECODABLE", "detail": "test", "raw_sha256": sha256(raw),
                          "raw_size": len(raw)},
            "redaction": {"policy_id": "default", "policy_version": 1, "fields": []},
            "ingested_at": time.time_ns() // 1000,
            "source": {"topic": settings.raw_topic, "partition": 0, "offset": offset,
                       "schema_id": None},
        }, signer, sign=sign)
        head = head.advance(record)
        records.append(record)
    return records


def genesis_entry(settings: Settings) -> tuple[dict[str, object], bytes]:
    """The first entry of a new chain for raw partition 0 (a rejection of raw offset 0),
    signed, and its framed bytes for the sealed topic."""
    [record] = rejections(settings, ChainHead.genesis(new_chain_id(settings.raw_topic, 0)),
                          range(1), sign=True)
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
    record, value = genesis_entry(settings)
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


@on_both_brokers
def test_a_batch_cut_short_is_sealed_once_by_the_next_owner(
    broker: str, settings: Settings, stages: list[Stage], tmp_path: Path,
) -> None:
    """The previous owner committed a batch for raw offsets 0..2, then died producing the
    next (offsets 3..4: unsigned entries, no seal, the transaction aborted). Tansu hands
    aborted records to read_committed readers, Kafka does not. Either way the next owner
    continues so that every raw offset is sealed exactly once and the archive verifies:
    on Tansu its first batch seal covers the left-over entries, on Kafka it seals those
    offsets again itself."""
    conf = {"bootstrap.servers": settings.bootstrap}
    raw = Producer(conf)
    for _ in range(10):
        raw.produce(settings.raw_topic, b"\x00junk", partition=0)
    assert raw.flush(30) == 0
    frame_ = sealed_framer(settings)
    signer = load_signer(settings.keys)
    first = rejections(settings, ChainHead.genesis(new_chain_id(settings.raw_topic, 0)),
                        range(3))
    seal_batch(0, [r["entry_hash"] for r in first], first[-1], signer)
    orphans = rejections(settings, ChainHead.genesis(first[0]["chain_id"]).advance(first[-1]),
                          range(3, 5))
    writer = Producer({**conf, "transactional.id": f"old-owner-{uuid.uuid4().hex[:8]}"})
    writer.init_transactions(30)
    for batch, commit in ((first, True), (orphans, False)):
        writer.begin_transaction()
        for record in batch:
            writer.produce(settings.sealed_topic, frame_(record), partition=0)
        assert writer.flush(30) == 0
        (writer.commit_transaction if commit else writer.abort_transaction)(30)

    stages.append(Stage(settings, "seal", tmp_path / "seal.log"))
    stages.append(Stage(settings, "archive", tmp_path / "archive.log"))
    store = store_of(settings)
    wait_until(lambda: len(archived_records(store)) >= 10, 120, "raw offsets 0..9 archived",
               alive=lambda: all(s.alive() for s in stages))
    for stage in stages:  # the archiver writes the archive index after the segment
        assert stage.stop() == 0, stage.output()
    records = sorted(archived_records(store), key=lambda r: r["seq"])
    assert [r["source"]["offset"] for r in records] == list(range(10))  # once each, in order
    assert {r["chain_id"] for r in records} == {first[0]["chain_id"]}
    assert records[2]["entry_hash"] == first[2]["entry_hash"]
    adopted = [r["entry_hash"] for r in records[3:5]] == [r["entry_hash"] for r in orphans]
    assert adopted == (broker == "tansu")
    report = verify(settings)
    assert report.ok, report.to_json()
