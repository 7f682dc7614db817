"""Faults on the real stack: a sealer killed with SIGKILL, and bad input on the raw topic."""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from pathlib import Path

import fastavro
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import Schema
from helpers.pipeline_checks import (
    archived_count,
    archived_records,
    finish_producer,
    produce_raw,
    run_producer,
    store_of,
    verify,
    wait_until,
)
from helpers.stages import Stage, on_both_brokers

from sealtrail import schemas
from sealtrail.config import Settings
from sealtrail.core.avro import AvroCodec, frame
from sealtrail.producers import AuditClient
from sealtrail.schemas.registry_client import registry_client


class SealedProgress:
    """Sealed records written so far per partition (high watermarks of the sealed topic)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._consumer = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": "probe"})

    def counts(self) -> list[int]:
        out = []
        for p in range(self._settings.partitions):
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(self._settings.sealed_topic, p), timeout=10, cached=False)
            out.append(high - low)
        return out

    def close(self) -> None:
        self._consumer.close()


@on_both_brokers
def test_sealer_killed_mid_stream_resumes_without_gap_or_duplicate(
    settings: Settings, stages: list[Stage], tmp_path: Path
) -> None:
    """SIGKILL the sealer while it seals, start a new one: every event is sealed exactly
    once and every chain continues from its committed head."""
    first = Stage(settings, "seal", tmp_path / "seal-1.log")
    stages.append(first)
    wait_until(lambda: first.output().count("new chain") == settings.partitions, 60,
               "the sealer to own every partition", alive=first.alive)
    producer = run_producer(settings, "billing", 24_000, seed=3, rate=2_500)
    progress = SealedProgress(settings)
    wait_until(lambda: min(progress.counts()) > 100, 60,
               "sealing to reach every partition", alive=first.alive)
    first.kill()
    progress.close()
    assert producer.poll() is None, "the producer had finished: the kill was not mid-stream"
    emitted = finish_producer(producer)["emitted"]
    stages.append(Stage(settings, "seal", tmp_path / "seal-2.log"))
    stages.append(Stage(settings, "archive", tmp_path / "archive.log"))
    store = store_of(settings)
    wait_until(lambda: archived_count(store) >= emitted, 120, "archive",
               alive=lambda: all(s.alive() for s in stages[1:]))
    time.sleep(2)  # anything beyond N would be a duplicate: give it a chance to show
    for stage in stages[1:]:
        assert stage.stop() == 0
    report = verify(settings)
    assert report.ok, [str(f) for c in report.chains for f in c.findings]
    assert sum(c.events for c in report.chains) == emitted
    assert sum(c.entries for c in report.chains) == emitted
    assert len(report.chains) == settings.partitions  # the same chains continued, no new ones
    records = archived_records(store)
    ids = Counter(r["event"]["event_id"] for r in records)
    assert len(ids) == emitted and max(ids.values()) == 1
    assert "resumes after seq" in (tmp_path / "seal-2.log").read_text()
    epochs: dict[str, set[int]] = {}
    for r in records:
        epochs.setdefault(r["chain_id"], set()).add(r["epoch"])
    # The restart opened epoch 1 on each chain it continued; the kill came mid-stream.
    assert all(e <= {0, 1} for e in epochs.values()), epochs
    assert any(e == {0, 1} for e in epochs.values()), epochs


def test_bad_input_becomes_sealed_rejections_and_the_sealer_stays_up(
    settings: Settings, stages: list[Stage], tmp_path: Path
) -> None:
    """Garbage, a wrong magic byte, an unknown schema id, a record missing required fields,
    an invalid field value, an oversize record, an empty record and a duplicate event_id
    are each sealed as a rejection with its reason; good events around them are sealed."""
    sealer = Stage(settings, "seal", tmp_path / "seal.log")
    stages.append(sealer)
    stages.append(Stage(settings, "archive", tmp_path / "archive.log"))
    registry = registry_client(settings.registry_url)
    partial = {"type": "record", "name": "AuditEvent", "namespace": "io.sealtrail",
               "fields": [{"name": "event_id", "type": "string"}]}
    partial_id = registry.register_schema("partial-value", Schema(json.dumps(partial), "AVRO"))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(partial), {"event_id": "e-1"})
    with AuditClient(service="svc", bootstrap=settings.bootstrap,
                     registry_url=settings.registry_url, topic=settings.raw_topic,
                     spool_dir=tmp_path / "spool") as client:
        good_id = client.schema_id
        first = client.emit("auth.login", "login", actor_id="u-1", resource_type="session",
                            resource_id="s-1")
    codec = AvroCodec(schemas.load(schemas.AUDIT_EVENT))
    event = {
        "event_id": "e-bad-type", "event_type": "Not A Type", "action": "x", "occurred_at": 5,
        "actor": {"id": "u", "type": "user", "principal": None},
        "origin": {"service": "s", "instance": "i", "service_version": None,
                   "environment": None, "source_ip": None, "user_agent": None,
                   "request_id": None, "trace_id": None},
        "resource": {"type": "t", "id": "1"}, "outcome": "SUCCESS", "reason": None,
        "authorization": None, "tenant": None, "classification": "INTERNAL",
        "attributes": {},
    }
    duplicate = dict(event, event_id=first, event_type="auth.login")
    produce_raw(settings, [
        b"\xde\xad\xbe\xef garbage",
        b"\x01\x00\x00\x00\x01abc",
        frame(987_654, b"\x02x"),
        frame(partial_id, buf.getvalue()),
        frame(good_id, codec.encode(event)),
        frame(good_id, b"\x00" * (settings.max_event_bytes + 1)),
        None,
        frame(good_id, codec.encode(duplicate)),
        frame(good_id, codec.encode(event)[:-3]),
    ], key=b"u-1")
    with AuditClient(service="svc", bootstrap=settings.bootstrap,
                     registry_url=settings.registry_url, topic=settings.raw_topic,
                     spool_dir=tmp_path / "spool") as client:
        last = client.emit("auth.logout", "logout", actor_id="u-1", resource_type="session",
                           resource_id="s-1")
    store = store_of(settings)
    wait_until(lambda: archived_count(store) >= 11, 60, "archive",
               alive=lambda: all(s.alive() for s in stages))
    assert sealer.alive()
    records = archived_records(store)
    events = [r["event"]["event_id"] for r in records if r["kind"] == "EVENT"]
    assert events == [first, last]
    reasons = [r["rejection"]["reason"] for r in records if r["kind"] == "REJECTION"]
    assert reasons == ["UNDECODABLE", "UNDECODABLE", "UNKNOWN_SCHEMA", "INVALID", "INVALID",
                       "OVERSIZE", "UNDECODABLE", "DUPLICATE", "UNDECODABLE"]
    details = [r["rejection"]["detail"] for r in records if r["kind"] == "REJECTION"]
    assert "not the magic byte 0" in details[1]
    assert "987654" in details[2]
    assert "event_type" in details[4]
    assert "was sealed as seq" in details[7] and first not in details[7]
    # Details name the field, the rule, the length and the character classes, never the
    # value (they are sealed into WORM storage).
    assert "Not A Type" not in details[4] and "10 characters" in details[4]
    for stage in stages:
        assert stage.stop() == 0
    assert verify(settings).ok
