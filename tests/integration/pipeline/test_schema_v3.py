"""AuditEvent v3 (actor display name and e-mail, PII/PHI/PCI classifications): every
producer/sealer pairing of v1, v2 and v3, one verified chain of interleaved v1/v2/v3
events through the real pipeline, a chain sealed by a v2 then a v3 sealer, and emit()'s
new arguments."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
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
from helpers.privacy_checks import topic_messages
from helpers.stages import Stage

from sealtrail import schemas
from sealtrail.archive import open_store
from sealtrail.archive.segments import read_segment, write_segment
from sealtrail.config import Settings
from sealtrail.consumers.archiver import SegmentWriter
from sealtrail.core.avro import AvroCodec, frame
from sealtrail.core.chain import ChainHead, seal
from sealtrail.errors import EventValidationError
from sealtrail.pipeline.decode import Decoded, RawDecoder
from sealtrail.producers import AuditClient
from sealtrail.registry import RegistryServer
from sealtrail.schemas.cache import WriterSchemas
from sealtrail.schemas.registry_client import registry_client
from sealtrail.verify import verify_archive

VERSIONS = (1, 2, 3)


def make_event(n: int, version: int) -> dict[str, Any]:
    """A valid AuditEvent of ``version``; v3 events carry a display name, an e-mail and a
    v3-only classification."""
    event: dict[str, Any] = {
        "event_id": f"evt-{version}-{n:05d}", "event_type": "record.read", "action": "read",
        "occurred_at": 1_700_000_000_000_000 + n,
        "actor": {"id": f"u-{n % 5}", "type": "user", "principal": None},
        "origin": {"service": "billing", "instance": "b-1", "service_version": None,
                   "environment": None, "source_ip": None, "user_agent": None,
                   "request_id": None, "trace_id": None},
        "resource": {"type": "invoice", "id": f"inv-{n}"}, "outcome": "SUCCESS",
        "reason": None, "authorization": None, "tenant": "t-1",
        "classification": "CONFIDENTIAL", "attributes": {},
    }
    if version >= 2:
        event["session_id"] = "sess-9"
        event["actor"]["on_behalf_of"] = "support-3"
    if version >= 3:
        event["actor"]["display_name"] = f"Ada Lovelace {n}"
        event["actor"]["email"] = f"ada{n}@example.com"
        event["classification"] = "PHI"
    return event


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    with RegistryServer() as server:
        yield server


def writers_for(client: SchemaRegistryClient, subject: str) -> dict[int, tuple[int, AvroCodec]]:
    """v1, v2 then v3 registered under ``subject`` at the level sealtrail sets."""
    client.set_compatibility(subject, schemas.COMPATIBILITY[schemas.AUDIT_EVENT])
    out = {}
    for version in VERSIONS:
        schema = schemas.load(schemas.AUDIT_EVENT, version)
        sid = client.register_schema(subject, Schema(json.dumps(schema), "AVRO"))
        out[version] = (sid, AvroCodec(schema))
    return out


def _frame(writer: tuple[int, AvroCodec], event: dict[str, Any]) -> bytes:
    sid, codec = writer
    codec.validate(event)
    return frame(sid, codec.encode(event))


@pytest.mark.parametrize("producer", VERSIONS)
@pytest.mark.parametrize("sealer", VERSIONS)
def test_rolling_upgrade_decodes_every_pairing(
    registry: RegistryServer, producer: int, sealer: int
) -> None:
    """Any mix of v1, v2 and v3 decodes (none rejected) into the sealer's reader version:
    new fields defaulted or dropped, PHI read as INTERNAL by an older sealer."""
    client = registry_client(registry.url)
    writers = writers_for(client, "v3-rolling-value")
    reader = AvroCodec(schemas.load(schemas.AUDIT_EVENT, sealer))
    decoder = RawDecoder(WriterSchemas(client), reader, max_bytes=64 * 1024)
    outcome = decoder.decode(_frame(writers[producer], make_event(1, producer)))
    assert isinstance(outcome, Decoded), outcome
    got = outcome.event
    assert set(got) == {f["name"] for f in reader.schema["fields"]}
    if sealer < 3:
        assert "display_name" not in got["actor"] and "email" not in got["actor"]
        assert got["classification"] == ("INTERNAL" if producer == 3 else "CONFIDENTIAL")
    elif producer < 3:
        assert got["actor"]["display_name"] is None and got["actor"]["email"] is None
        assert got["classification"] == "CONFIDENTIAL"
    else:
        assert got["actor"]["display_name"] == "Ada Lovelace 1"
        assert got["classification"] == "PHI"


def test_interleaved_v1_v2_v3_stream_seals_into_one_verified_chain(
    settings: Settings, stages: list[Stage], tmp_path: Path
) -> None:
    """v1, v2 and v3 events on one raw partition become one chain that verifies (also
    with the independent verifier); v3's display name and e-mail are pseudonymised by the
    default policy; PHI events are retained as hipaa; the stock AvroDeserializer reads
    the sealed topic."""
    client = registry_client(settings.registry_url)
    writers = writers_for(client, f"{settings.raw_topic}-value")
    sent = [make_event(n, VERSIONS[n % 3]) for n in range(60)]
    produce_raw(settings, [_frame(writers[VERSIONS[n % 3]], e) for n, e in enumerate(sent)],
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
    keyring_file = settings.keys / "public.json"
    assert iv.verify_dir(Path(settings.archive), keyring_file) == []
    by_id = {r["event"]["event_id"]: r for r in archived_records(store)}
    for event in sent:
        record = by_id[event["event_id"]]
        actor = record["event"]["actor"]
        if "display_name" in event["actor"]:
            assert actor["display_name"].startswith("hmac:")
            assert actor["email"].startswith("hmac:")
            assert "actor.display_name=pseudonymize" in record["redaction"]["fields"]
            assert record["event"]["classification"] == "PHI"
        else:
            assert actor["display_name"] is None and actor["email"] is None
    text = json.dumps([r["event"] for r in by_id.values()])
    assert "Lovelace" not in text and "@example.com" not in text
    phi = [key for key in store.list("chains/") if key.endswith(".avro")]
    assert phi and all(store.retention(k).retention_class == "hipaa" for k in phi)
    deserialize = AvroDeserializer(registry_client(settings.registry_url))
    ctx = SerializationContext(settings.sealed_topic, MessageField.VALUE)
    decoded = [deserialize(v, ctx) for _, v, _ in topic_messages(settings, settings.sealed_topic)]
    assert sorted(d["event"]["event_id"] for d in decoded) == sorted(by_id)


def test_chain_sealed_by_v2_then_v3_sealer_verifies_with_both_verifiers(tmp_path: Path) -> None:
    """Entries sealed with the v2 reader, then (after an upgrade) with the v3 reader, from
    v1/v2/v3 producers, verify in one chain with both verifiers; tampering with a v3-only
    field is caught."""
    key = signer("evolution-v3")
    head = ChainHead.genesis("audit.raw.0.00000000000000bb")
    writer = SegmentWriter(open_store(tmp_path / "archive"), key, retention_days=1,
                           clock=lambda: 1_700_000_100_000_000)
    for n in range(9):
        sealer_version = 2 if n < 4 else 3
        sealed_schema = schemas.sealed_record(event_version=sealer_version)
        reader = AvroCodec(schemas.load(schemas.AUDIT_EVENT, sealer_version))
        producer = AvroCodec(schemas.load(schemas.AUDIT_EVENT, VERSIONS[n % 3]))
        event = reader.decode(producer.encode(make_event(n, VERSIONS[n % 3])), producer)
        record = seal(head, {
            "kind": "EVENT", "event": event, "rejection": None,
            "redaction": {"policy_id": "default", "policy_version": 3, "fields": []},
            "ingested_at": 1_700_000_000_000_000 + n,
            "source": {"topic": "audit.raw", "partition": 0, "offset": n,
                       "schema_id": VERSIONS[n % 3]},
        }, key)
        head = head.advance(record)
        sealed_codec = AvroCodec(sealed_schema)
        writer.add(sealed_codec.decode(sealed_codec.encode(record)), sealed_schema)
    writer.flush()
    keyring = keyring_of(key)
    assert verify_archive(open_store(tmp_path / "archive"), keyring).ok
    keyring_file = write_keyring(tmp_path / "public.json", keyring)
    assert iv.verify_dir(tmp_path / "archive", keyring_file) == []
    first, second = sorted((tmp_path / "archive").rglob("*.avro"))
    assert all("display_name" not in r["event"]["actor"]
               for r in read_segment(first.read_bytes()))
    records = read_segment(second.read_bytes())
    v3 = next(r for r in records if r["event"]["actor"]["display_name"])
    assert v3["event"]["classification"] == "PHI"
    header = fastavro.reader(io.BytesIO(second.read_bytes())).writer_schema
    v3["event"]["actor"]["display_name"] = "Someone Else"
    second.chmod(0o644)
    second.write_bytes(write_segment(records, {}, header))
    assert not verify_archive(open_store(tmp_path / "archive"), keyring).ok
    assert iv.verify_dir(tmp_path / "archive", keyring_file) != []


def test_emit_takes_v3_fields_any_case_enums_and_per_event_origin(
    settings: Settings, tmp_path: Path
) -> None:
    """emit() takes the actor's display name and e-mail, a per-event instance and
    version, and outcome/decision/classification in any case (normalised); an unknown
    symbol is still refused, naming the field."""
    codec = AvroCodec(schemas.load(schemas.AUDIT_EVENT))
    with AuditClient.from_settings(settings, service="svc", instance="default-1",
                                   service_version="1.0",
                                   spool_dir=tmp_path / "spool") as client:
        client.emit("record.read", "read", actor_id="u-1", actor_name="Ada",
                    actor_email="ada@example.com", resource_type="t", resource_id="1",
                    outcome="success", decision="Deny", classification="phi",
                    instance="worker-7", service_version="2.3.1")
        client.emit("record.read", "read", actor_id="u-2", resource_type="t",
                    resource_id="2", classification="Pci")
        client.emit_event({**make_event(3, 3), "outcome": "denied",
                           "classification": "pii"})
        with pytest.raises(EventValidationError) as caught:
            client.emit("record.read", "read", actor_id="u", resource_type="t",
                        resource_id="1", classification="secretish")
        assert caught.value.field == "classification"
        assert client.flush(30) == 0
    values = [v for _, v, _ in topic_messages(settings, settings.raw_topic)]
    by_actor = {e["actor"]["id"]: e for e in (codec.decode(v[5:]) for v in values)}
    first, second = by_actor["u-1"], by_actor["u-2"]
    assert (first["outcome"], first["authorization"]["decision"],
            first["classification"]) == ("SUCCESS", "DENY", "PHI")
    assert (first["actor"]["display_name"], first["actor"]["email"]) == ("Ada",
                                                                        "ada@example.com")
    assert (first["origin"]["instance"], first["origin"]["service_version"]) == (
        "worker-7", "2.3.1")
    assert (second["origin"]["instance"], second["origin"]["service_version"]) == (
        "default-1", "1.0")
    assert second["classification"] == "PCI"
    third = by_actor["u-3"]
    assert (third["outcome"], third["classification"]) == ("DENIED", "PII")
