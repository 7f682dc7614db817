"""Schema evolution end to end: v1 and v2 AuditEvents through decoder, sealer, archive,
verify and the stock AvroDeserializer, and rolling upgrades in both directions."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka import Consumer, KafkaError
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext
from helpers import independent_verifier as iv
from helpers.archive_builder import keyring_of, signer, write_keyring
from helpers.pipeline_checks import (
    archived_count,
    archived_records,
    produce_raw,
    store_of,
    verify,
    wait_until,
)
from helpers.stages import Stage

from sealtrail import schemas
from sealtrail.archive import open_store
from sealtrail.archive.segments import read_segment, write_segment
from sealtrail.config import Settings
from sealtrail.consumers.archiver import SegmentWriter
from sealtrail.core import layout
from sealtrail.core.avro import AvroCodec, frame
from sealtrail.core.chain import ChainHead, seal
from sealtrail.pipeline.decode import Decoded, RawDecoder, Rejected
from sealtrail.registry import RegistryServer
from sealtrail.schemas.cache import WriterSchemas
from sealtrail.schemas.registry_client import registry_client
from sealtrail.verify import verify_archive

V1 = schemas.load(schemas.AUDIT_EVENT, 1)
V2 = schemas.load(schemas.AUDIT_EVENT, 2)
NEW_IN_V2 = {"session_id": "sess-9", "actor.on_behalf_of": "support-agent-3"}


def make_event(n: int, version: int) -> dict[str, Any]:
    """A valid AuditEvent of ``version`` (v2 events carry values in the v2 fields)."""
    event: dict[str, Any] = {
        "event_id": f"evt-{version}-{n:05d}", "event_type": "record.read", "action": "read",
        "occurred_at": 1_700_000_000_000_000 + n,
        "actor": {"id": f"u-{n % 5}", "type": "user", "principal": None},
        "origin": {"service": "billing", "instance": "b-1", "service_version": None,
                   "environment": None, "source_ip": None, "user_agent": None,
                   "request_id": None, "trace_id": None},
        "resource": {"type": "invoice", "id": f"inv-{n}"}, "outcome": "SUCCESS",
        "reason": None, "authorization": None, "tenant": "t-1",
        "classification": "INTERNAL", "attributes": {"n": str(n)},
    }
    if version >= 2:
        event["session_id"] = NEW_IN_V2["session_id"]
        event["actor"]["on_behalf_of"] = NEW_IN_V2["actor.on_behalf_of"]
    return event


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    """An in-memory embedded registry for the in-process tests."""
    with RegistryServer() as server:
        yield server


@dataclass(frozen=True)
class Writer:
    """A producer on one AuditEvent version: its registered id and codec."""

    schema_id: int
    codec: AvroCodec

    def frame(self, event: dict[str, Any]) -> bytes:
        self.codec.validate(event)
        return frame(self.schema_id, self.codec.encode(event))


def writers_for(client: SchemaRegistryClient, subject: str) -> dict[int, Writer]:
    """Register v1 then v2 under ``subject`` (as two producer releases would)."""
    out = {}
    for version, schema in ((1, V1), (2, V2)):
        sid = client.register_schema(subject, Schema(json.dumps(schema), "AVRO"))
        out[version] = Writer(sid, AvroCodec(schema))
    return out


# -- the decoder: any registered writer, resolved to the reader ----------------------------------


@pytest.mark.parametrize(("producer", "sealer"), [(1, 1), (1, 2), (2, 1), (2, 2)])
def test_rolling_upgrade_decodes_every_pairing(
    registry: RegistryServer, producer: int, sealer: int
) -> None:
    """Producer and sealer on any mix of v1 and v2: every event decodes (none rejected),
    resolved to the sealer's reader version, new fields defaulted or dropped as Avro says."""
    client = registry_client(registry.url)
    writers = writers_for(client, "rolling-value")
    reader = AvroCodec(schemas.load(schemas.AUDIT_EVENT, sealer))
    decoder = RawDecoder(WriterSchemas(client), reader, max_bytes=64 * 1024)
    sent = make_event(1, producer)
    outcome = decoder.decode(writers[producer].frame(sent))
    assert isinstance(outcome, Decoded), outcome
    assert outcome.schema_id == writers[producer].schema_id
    got = outcome.event
    assert set(got) == {f["name"] for f in reader.schema["fields"]}
    assert got["event_id"] == sent["event_id"] and got["attributes"] == sent["attributes"]
    if sealer == 1:
        assert "session_id" not in got and "on_behalf_of" not in got["actor"]
    elif producer == 1:
        assert got["session_id"] is None and got["actor"]["on_behalf_of"] is None
    else:
        assert got["session_id"] == "sess-9"
        assert got["actor"]["on_behalf_of"] == "support-agent-3"


def test_writer_the_level_forbids_is_rejected_as_invalid(registry: RegistryServer) -> None:
    """A writer lacking a field the reader requires (what FULL_TRANSITIVE forbids) is a
    sealed INVALID rejection naming the schema id, not a crash and not a silent default."""
    client = registry_client(registry.url)
    broken = copy.deepcopy(V2)
    broken["fields"] = [f for f in broken["fields"] if f["name"] != "action"]
    sid = client.register_schema("forbidden-value", Schema(json.dumps(broken), "AVRO"))
    event = make_event(2, 2)
    del event["action"]
    decoder = RawDecoder(WriterSchemas(client), AvroCodec(V2), max_bytes=64 * 1024)
    outcome = decoder.decode(frame(sid, AvroCodec(broken).encode(event)))
    assert isinstance(outcome, Rejected)
    assert (outcome.reason, outcome.schema_id) == ("INVALID", sid)
    assert f"schema id {sid}" in outcome.detail


def test_registry_refuses_at_full_transitive_what_the_decoder_would_reject(
    registry: RegistryServer,
) -> None:
    """With the level sealtrail sets (FULL_TRANSITIVE), the registry refuses the breaking
    writer above before any producer could use it, and accepts v1 then v2."""
    client = registry_client(registry.url)
    client.set_compatibility("guarded-value", schemas.COMPATIBILITY[schemas.AUDIT_EVENT])
    writers_for(client, "guarded-value")
    broken = copy.deepcopy(V2)
    broken["fields"] = [f for f in broken["fields"] if f["name"] != "action"]
    with pytest.raises(SchemaRegistryError) as info:
        client.register_schema("guarded-value", Schema(json.dumps(broken), "AVRO"))
    assert info.value.http_status_code == 409
    assert "action" in info.value.error_message


# -- the pipeline: interleaved v1 and v2 events, one chain, verified ------------------------------


def _sealed_values(settings: Settings, want: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": "evo-reader",
                         "auto.offset.reset": "earliest", "enable.partition.eof": True,
                         "isolation.level": "read_committed",
                         "session.timeout.ms": settings.session_timeout_ms})
    consumer.subscribe([settings.sealed_topic])
    values: list[bytes] = []
    try:
        wait_until(lambda: _poll_into(consumer, values) >= want, 60, "sealed records")
    finally:
        consumer.close()
    return values


def _poll_into(consumer: Consumer, values: list[bytes]) -> int:
    for msg in consumer.consume(500, 0.5):
        err = msg.error()
        if err is None and msg.value() is not None:
            values.append(msg.value())
        elif err is not None and err.code() != KafkaError._PARTITION_EOF:
            raise AssertionError(str(err))
    return len(values)


def test_interleaved_v1_and_v2_stream_seals_into_one_verified_chain(
    settings: Settings, stages: list[Stage], tmp_path: Path
) -> None:
    """v1 and v2 events interleaved on one raw partition become one chain that verifies;
    each archived entry records the schema id it was written with; v2 values survive; and
    the stock AvroDeserializer decodes the sealed topic through the registry."""
    client = registry_client(settings.registry_url)
    writers = writers_for(client, f"{settings.raw_topic}-value")
    sent = [make_event(n, 1 + n % 2) for n in range(60)]
    written_with = {e["event_id"]: writers[1 + n % 2].schema_id for n, e in enumerate(sent)}
    produce_raw(settings, [writers[1 + n % 2].frame(e) for n, e in enumerate(sent)],
                key=b"one-partition")
    stages.append(Stage(settings, "seal", tmp_path / "seal.log"))
    stages.append(Stage(settings, "archive", tmp_path / "archive.log"))
    store = store_of(settings)
    wait_until(lambda: archived_count(store) >= len(sent), 90, "archive",
               alive=lambda: all(s.alive() for s in stages))
    for stage in stages:
        assert stage.stop() == 0, stage.output()

    report = verify(settings)
    assert report.ok, [str(f) for c in report.chains for f in c.findings]
    assert [c.events for c in report.chains] == [len(sent)]
    records = archived_records(store)
    assert len({r["chain_id"] for r in records}) == 1
    assert [r["kind"] for r in records] == ["EVENT"] * len(sent)
    assert {r["event"]["event_id"]: r["source"]["schema_id"] for r in records} == written_with
    assert {r["source"]["schema_id"] for r in records} == {w.schema_id for w in writers.values()}
    by_id = {r["event"]["event_id"]: r["event"] for r in records}
    for event in sent:
        archived = by_id[event["event_id"]]
        assert archived["session_id"] == event.get("session_id")
        assert archived["actor"]["on_behalf_of"] == event["actor"].get("on_behalf_of")
    # Which version each event was written with, from the archive alone: the archiver
    # keeps every writer schema at schemas/<id>.json with its subject and version.
    for version, writer in writers.items():
        doc = json.loads(store.get(layout.schema_key(writer.schema_id)))
        assert doc["format"] == "sealtrail-schema/v1" and doc["schema_id"] == writer.schema_id
        assert {"subject": f"{settings.raw_topic}-value", "version": version} in doc["versions"]
        assert doc["schema"]["fields"] == schemas.load("AuditEvent", version)["fields"]
        assert store.retention(layout.schema_key(writer.schema_id)).mode == "COMPLIANCE"
    # And the same from the registry (what an auditor with registry access would ask).
    for version, writer in writers.items():
        found = client.lookup_schema(f"{settings.raw_topic}-value",
                                     Schema(json.dumps(schemas.load("AuditEvent", version)),
                                            "AVRO"))
        assert (found.schema_id, found.version) == (writer.schema_id, version)

    deserialize = AvroDeserializer(registry_client(settings.registry_url))
    ctx = SerializationContext(settings.sealed_topic, MessageField.VALUE)
    decoded = [deserialize(v, ctx) for v in _sealed_values(settings, len(sent))]
    assert sorted(d["event"]["event_id"] for d in decoded) == sorted(written_with)
    assert [d["seq"] for d in sorted(decoded, key=lambda d: d["seq"])] == list(range(len(sent)))
    assert {d["event"]["event_id"]: d["source"]["schema_id"] for d in decoded} == written_with


# -- the archive: a chain whose sealer was upgraded from v1 to v2 part way ------------------------


def test_chain_sealed_by_v1_then_v2_sealer_verifies_with_both_verifiers(tmp_path: Path) -> None:
    """Entries sealed with the v1 reader, then (after a sealer upgrade) with the v2 reader,
    archive as segments with different header schemas; sealtrail's verifier and the
    independent one both accept the chain, and tampering with a v2-only field is caught."""
    key = signer("evolution")
    head = ChainHead.genesis("audit.raw.0.00000000000000aa")
    writer = SegmentWriter(open_store(tmp_path / "archive"), key, retention_days=1,
                           clock=lambda: 1_700_000_100_000_000)
    for n in range(8):
        sealer_version = 1 if n < 4 else 2
        sealed_schema = schemas.sealed_record(event_version=sealer_version)
        reader = AvroCodec(schemas.load(schemas.AUDIT_EVENT, sealer_version))
        producer = AvroCodec(schemas.load(schemas.AUDIT_EVENT, 1 + n % 2))  # v1 and v2 mixed
        event = reader.decode(producer.encode(make_event(n, 1 + n % 2)), producer)
        record = seal(head, {
            "kind": "EVENT", "event": event, "rejection": None,
            "redaction": {"policy_id": "default", "policy_version": 1, "fields": []},
            "ingested_at": 1_700_000_000_000_000 + n,
            "source": {"topic": "audit.raw", "partition": 0, "offset": n,
                       "schema_id": 1 + n % 2},
        }, key)
        head = head.advance(record)
        sealed_codec = AvroCodec(sealed_schema)  # what the sealed topic carries
        writer.add(sealed_codec.decode(sealed_codec.encode(record)), sealed_schema)
    writer.flush()
    keyring = keyring_of(key)
    report = verify_archive(open_store(tmp_path / "archive"), keyring)
    assert report.ok, [str(f) for c in report.chains for f in c.findings]
    assert [c.events for c in report.chains] == [8]
    assert writer.segments_written == 2  # one per SealedRecord schema
    keyring_file = write_keyring(tmp_path / "public.json", keyring)
    assert iv.verify_dir(tmp_path / "archive", keyring_file) == []
    first, second = sorted((tmp_path / "archive").rglob("*.avro"))
    assert all("session_id" not in r["event"] for r in read_segment(first.read_bytes()))
    records = read_segment(second.read_bytes())
    assert records[1]["event"]["session_id"] == "sess-9"  # v2 value kept by the v2 sealer
    header = fastavro.reader(io.BytesIO(second.read_bytes())).writer_schema
    records[1]["event"]["session_id"] = "sess-forged"
    second.chmod(0o644)
    second.write_bytes(write_segment(records, {}, header))
    assert not verify_archive(open_store(tmp_path / "archive"), keyring).ok
    assert iv.verify_dir(tmp_path / "archive", keyring_file) != []
