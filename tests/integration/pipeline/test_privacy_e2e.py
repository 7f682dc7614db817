"""Privacy by default (G9), end to end on the real embedded pipeline: what the shipped
default policy removes appears in no sink, rejections seal no raw value, the DLQ holds
ciphertext only, custody events and erasure receipts never name the subject."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from confluent_kafka.schema_registry import Schema
from helpers.hostile_inputs import POISON_COUNT, pad_writer_schema, zigzag
from helpers.pipeline_checks import archived_count, produce_raw, store_of, wait_until
from helpers.privacy_checks import (
    cli,
    event_values,
    leaks,
    message_bytes,
    private_modes,
    topic_messages,
    tree_bytes,
)
from helpers.stages import Stage, with_settings

from sealtrail import schemas
from sealtrail.config import Settings
from sealtrail.core.avro import AvroCodec, frame
from sealtrail.producers import AuditClient
from sealtrail.runtime.dev import free_port
from sealtrail.schemas.registry_client import registry_client
from sealtrail.search import open_index

IPV6 = "2001:db8:1234:5678::1"
CARD = "4111-1111-1111-1111"


def _client(settings: Settings, tmp_path: Path, service: str = "billing") -> AuditClient:
    return AuditClient.from_settings(settings, service=service, spool_dir=tmp_path / "spool")


def _invalid_event(event_type: str, **changes: Any) -> dict[str, Any]:
    """An AuditEvent that decodes but breaks an envelope rule."""
    event: dict[str, Any] = {
        "event_id": "raw-1", "event_type": event_type, "action": "login",
        "occurred_at": 1_700_000_000_000_000,
        "actor": {"id": "u-raw", "type": "user", "principal": None, "on_behalf_of": None},
        "origin": {"service": "raw", "instance": "r-1", "service_version": None,
                   "environment": None, "source_ip": None, "user_agent": None,
                   "request_id": None, "trace_id": None},
        "resource": {"type": "session", "id": "s-1"}, "outcome": "SUCCESS", "reason": None,
        "authorization": None, "tenant": None, "session_id": None,
        "classification": "INTERNAL", "attributes": {},
    }
    event.update(changes)
    return event


def _replay(tmp_path: Path, settings: Settings, name: str) -> list[dict[str, Any]]:
    out = tmp_path / f"{name}.jsonl"
    proc = cli(tmp_path, settings, "replay", "--source", "archive", "--include-rejections",
               "--to", f"file:{out}", "--keys", settings.keys / "public.json")
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_acceptance_no_canary_in_sealed_records_or_dlq(
    settings: Settings, stages: list[Stage], tmp_path: Path
) -> None:
    """The issue's acceptance check: 20 events through AuditClient with Password,
    api_token, Authorization: Bearer, client_secret and SESSION_COOKIE canaries and
    source_ip 2001:db8:1234:5678::1, plus one raw record whose event_type holds an e-mail
    and a password canary. After archiving, no canary is in the replayed sealed records
    (events and rejections) or anywhere in the DLQ topic, the rejection is sealed, and
    every sealed source_ip keeps 2001:db8:1234 and drops 5678."""
    stages.append(Stage(settings, "seal", tmp_path / "seal.log"))
    stages.append(Stage(settings, "archive", tmp_path / "archive.log"))
    canaries = [b"CNRY-pw", b"CNRY-tok", b"CNRY-bearer", b"CNRY-cs", b"CNRY-cookie",
                b"ada.cnry@example.com", b"CNRY-hunter2"]
    with _client(settings, tmp_path) as client:
        for n in range(20):
            client.emit("auth.login", "login", actor_id=f"u-{n}", resource_type="session",
                        resource_id=f"s-{n}", source_ip=IPV6, attributes={
                            "Password": f"CNRY-pw-{n}", "api_token": f"CNRY-tok-{n}",
                            "Authorization": f"Bearer CNRY-bearer-{n}",
                            "client_secret": f"CNRY-cs-{n}",
                            "SESSION_COOKIE": f"CNRY-cookie-{n}"})
        assert client.flush(30) == 0
        schema_id = client.schema_id
    raw = _invalid_event("login for ada.cnry@example.com password=CNRY-hunter2")
    codec = AvroCodec(schemas.load(schemas.AUDIT_EVENT))
    produce_raw(settings, [frame(schema_id, codec.encode(raw))], key=b"ada.cnry@example.com")
    store = store_of(settings)
    wait_until(lambda: archived_count(store) >= 21, 120, "archive",
               alive=lambda: all(s.alive() for s in stages))

    records = _replay(tmp_path, settings, "acceptance")
    assert len(records) == 21
    rejections = [r for r in records if r["kind"] == "REJECTION"]
    assert [r["rejection"]["reason"] for r in rejections] == ["INVALID"]
    detail = rejections[0]["rejection"]["detail"]
    assert "event_type" in detail and "characters" in detail  # field, rule, length, classes
    events = [r["event"] for r in records if r["kind"] == "EVENT"]
    assert len(events) == 20
    for event in events:
        assert event["origin"]["source_ip"] == "2001:db8:1234::/48"
        assert event["attributes"] == {}
    for record in records:
        for value in event_values(record):
            if "2001:db8" in value:
                assert value.startswith("2001:db8:1234") and "5678" not in value
    replayed = (tmp_path / "acceptance.jsonl").read_bytes()
    dlq = topic_messages(settings, settings.dlq_topic)
    assert len(dlq) == 1
    found = leaks({"replayed sealed records": replayed, "DLQ topic": message_bytes(dlq)},
                  # the dropped group with its neighbour: "5678" alone turns up by chance
                  # in hashes, signatures and timestamps
                  [*canaries, IPV6.encode(), b"1234:5678"])
    assert found == [], found
    # The dead letter is readable with the DLQ key, and only with it: the raw record comes
    # back byte for byte for repair.
    proc = cli(tmp_path, settings, "dlq", "read", "--out", tmp_path / "letters")
    assert proc.returncode == 0, proc.stderr
    assert "1 dead letters read" in proc.stderr and "INVALID" in proc.stdout
    assert b"CNRY" not in proc.stdout.encode()  # listing shows no value
    letters = sorted((tmp_path / "letters").iterdir())
    assert [p.suffix for p in letters] == [".key", ".value"]
    assert letters[0].read_bytes() == b"ada.cnry@example.com"
    assert letters[1].read_bytes() == frame(schema_id, codec.encode(raw))
    assert private_modes(letters) == {}
    for stage in stages:
        assert stage.stop() == 0, stage.output()


def _emit_canaries(settings: Settings, tmp_path: Path) -> tuple[str, int]:
    """Valid events carrying canaries wherever a service might put them; returns the id
    of one (for a duplicate) and the schema id."""
    with _client(settings, tmp_path, "crm") as client:
        first = ""
        for n in range(10):
            event_id = client.emit(
                "record.update", "update", actor_id=f"u-{n}",
                principal=f"cnry-principal-{n}@idp.example.com", resource_type="customer",
                resource_id=f"c-{n}", source_ip=IPV6 if n % 2 else "203.0.113.77",
                user_agent="Mozilla/5.0 " + "x" * 60 + " CNRY-ua",
                reason=f"declined: Authorization: Bearer CNRY-reason-{n} "
                       f"password=CNRY-rpw-{n} card {CARD}",
                attributes={"Password": "CNRY-pw", "api_token": "CNRY-tok",
                            "Authorization": "Bearer CNRY-bearer",
                            "client_secret": "CNRY-cs", "SESSION_COOKIE": "CNRY-cookie",
                            "ada.cnry@example.com": "admin", "note": "CNRY-unknown",
                            "email": "cnry.mail@example.com", "phone": "555-CNRY-1234"})
            first = first or event_id
        assert client.flush(30) == 0
        return first, client.schema_id


def _raw_rejections(settings: Settings, schema_id: int, duplicate_of: str) -> int:
    """One raw record per rejection reason, each full of canaries; returns how many."""
    codec = AvroCodec(schemas.load(schemas.AUDIT_EVENT))
    pad_schema = pad_writer_schema()
    pad_id = registry_client(settings.registry_url).register_schema(
        f"{settings.raw_topic}-value", Schema(json.dumps(pad_schema), "AVRO"))
    padded = AvroCodec(pad_schema).encode({**_invalid_event(
        "auth.login", event_id="raw-limit", reason="CNRY-limit"), "pad": []})
    values: list[bytes | None] = [
        b"\x01CNRY-undecodable",                                      # UNDECODABLE (magic)
        frame(schema_id, b"\x10CNRY\xff\xfe-bad-utf8"),               # UNDECODABLE (body)
        frame(987_654, b"CNRY-unknown-schema"),                       # UNKNOWN_SCHEMA
        frame(schema_id, codec.encode(_invalid_event(                 # INVALID (event_type)
            "login for ada.cnry@example.com password=CNRY-evt"))),
        frame(schema_id, codec.encode(_invalid_event(                 # INVALID (length)
            "auth.login", event_id="raw-2",
            resource={"type": "t", "id": "CNRY-long-" * 40}))),
        frame(schema_id, b"CNRY" * (settings.max_event_bytes // 4)),  # OVERSIZE
        None,                                                          # UNDECODABLE (empty)
        frame(pad_id, padded[:-1] + zigzag(POISON_COUNT) + b"\x00"),  # LIMIT (2^62 nulls)
        frame(schema_id, codec.encode(_invalid_event(                 # DUPLICATE
            "auth.login", event_id=duplicate_of, reason="CNRY-dup"))),
    ]
    produce_raw(settings, values[:-1], key=b"CNRY-key")
    produce_raw(settings, values[-1:], key=b"u-0")  # the original's partition (its actor)
    return len(values)


def test_canaries_reach_no_sink(settings: Settings, stages: list[Stage], tmp_path: Path) -> None:
    """Canary secrets sent through every path (valid events, each rejection reason, DLQ,
    custody events of search/export/report/replay/dlq read, the forget receipt) appear in
    no sink: archive, sealed topic, DLQ topic, replay output, search index, export bundle,
    report, metrics, stage logs and every command's output. Outputs are 0600."""
    settings = with_settings(settings, index_url=str(tmp_path / "out" / "index.sqlite"))
    port = free_port()
    stages.append(Stage(with_settings(settings, metrics_port=port), "seal",
                        tmp_path / "seal.log"))
    stages.append(Stage(settings, "archive", tmp_path / "archive.log"))
    duplicate_of, schema_id = _emit_canaries(settings, tmp_path)
    rejected = _raw_rejections(settings, schema_id, duplicate_of)
    store = store_of(settings)
    wait_until(lambda: archived_count(store) >= 10 + rejected, 120, "archive",
               alive=lambda: all(s.alive() for s in stages))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        metrics = resp.read()
    assert b"sealtrail_redactions_total" in metrics

    out = tmp_path / "out"
    outputs: dict[str, bytes] = {}

    def run(name: str, *args: str | Path, code: int = 0) -> None:
        proc = cli(tmp_path, settings, *args)
        assert proc.returncode == code, (name, proc.stderr)
        outputs[f"{name} stdout"] = proc.stdout.encode()
        outputs[f"{name} stderr"] = proc.stderr.encode()

    keyring = settings.keys / "public.json"
    run("index rebuild", "index", "rebuild", "--keys", keyring)
    run("search", "search", "CNRY-query actor:u-1", "--operator", "auditor-1")
    run("search all", "search", "", "--json")
    run("export", "export", "type:record.update", "--out", out / "bundle.zip",
        "--keys", keyring)
    run("report", "report", "--out", out / "report.html", "--keys", keyring)
    run("forget refused", "forget", "SUBJ-CNRY-7", "--reason", "erase subj-cnry-7 now",
        code=2)
    run("forget", "forget", "SUBJ-CNRY-7", "--reason", "DSR-2291")
    run("dlq read", "dlq", "read")
    # 5 custody events (search x2, export, report, dlq read) and the erasure receipt
    wait_until(lambda: archived_count(store) >= 10 + rejected + 6, 120, "custody archived",
               alive=lambda: all(s.alive() for s in stages))
    run("replay", "replay", "--source", "archive", "--include-rejections",
        "--to", f"file:{out / 'replay.jsonl'}", "--keys", keyring)
    # the indexer's own path too: the sealed topic into a second index
    run("index run", "index", "run", "--index", out / "from-kafka.sqlite", "--idle-exit", "5")
    kafka_index = open_index(str(out / "from-kafka.sqlite"))
    assert kafka_index.coverage().events >= 10 + 6
    kafka_index.close()
    records = [json.loads(x) for x in (out / "replay.jsonl").read_text().splitlines()]
    custody = [r["event"] for r in records
               if r["kind"] == "EVENT" and r["event"]["event_type"] == "audit.access"]
    assert {e["action"] for e in custody} == {"search", "export", "report", "dlq"}
    for event in custody:
        assert set(event["attributes"]) == {"tool", "count", "query_id", "query_terms",
                                            "query_hmac"}
        assert event["attributes"]["query_hmac"].startswith("hmac:")
    assert any(e["attributes"]["query_terms"] == "actor,text" for e in custody)
    receipt = next(r["event"] for r in records if r["kind"] == "EVENT"
                   and r["event"]["event_type"] == "privacy.erasure")
    assert receipt["attributes"]["reason"] == "DSR-2291"
    reasons = sorted(r["rejection"]["reason"] for r in records if r["kind"] == "REJECTION")
    assert reasons == sorted(["UNDECODABLE", "UNDECODABLE", "UNKNOWN_SCHEMA", "INVALID",
                              "INVALID", "OVERSIZE", "UNDECODABLE", "LIMIT", "DUPLICATE"])
    for stage in stages:
        assert stage.stop() == 0, stage.output()

    sinks = {**tree_bytes(Path(settings.archive)), **tree_bytes(out), **outputs,
             "metrics": metrics,
             "sealed topic": message_bytes(topic_messages(settings, settings.sealed_topic)),
             "DLQ topic": message_bytes(topic_messages(settings, settings.dlq_topic)),
             **{s.command + " log": s.log.read_bytes() for s in stages}}
    needles = [b"CNRY", b"cnry", IPV6.encode(), b"203.0.113.77", CARD.encode(),
               CARD.replace("-", "").encode()[:12], b"SUBJ-CNRY-7"]
    found = leaks(sinks, needles)
    assert found == [], found
    outputs_created = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in outputs_created} >= {"bundle.zip", "report.html", "replay.jsonl",
                                                 "index.sqlite", "from-kafka.sqlite"}
    assert private_modes(outputs_created) == {}
