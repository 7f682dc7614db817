"""Hostile traffic against the real pipeline (G10): sealer and archiver processes on
the embedded stack, raw records of every hostile shape on every partition, interleaved with
valid events from AuditClient. The sealer stays up, every raw offset is sealed exactly once,
every valid event is archived, and the offline checks pass."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema
from helpers.hostile_inputs import (
    EXPECTED_REASON,
    SCHEMA_ID_RECORD,
    Ids,
    hostile_values,
    pad_writer_schema,
    poison_record,
)
from helpers.pipeline_checks import archived_count, archived_records, store_of, verify, wait_until
from helpers.stages import Stage

from sealtrail import schemas
from sealtrail.config import Settings
from sealtrail.core.avro import AvroCodec
from sealtrail.keys import PUBLIC_KEYRING
from sealtrail.producers import AuditClient
from sealtrail.schemas.registry_client import registry_client


def register(settings: Settings) -> Ids:
    """The newest AuditEvent and the pad writer schema (a compatible AuditEvent with an
    ``array<null>``), registered for the raw topic as a service would."""
    registry = registry_client(settings.registry_url)
    subject = f"{settings.raw_topic}-value"
    good = registry.register_schema(subject, Schema(json.dumps(
        schemas.load(schemas.AUDIT_EVENT)), "AVRO"))
    pad = registry.register_schema(subject, Schema(json.dumps(pad_writer_schema()), "AVRO"))
    return Ids(good, pad)


def produce(settings: Settings, values: list[tuple[int, bytes | None]]) -> None:
    """``values`` as (partition, value) to the raw topic, in order."""
    producer = Producer({"bootstrap.servers": settings.bootstrap,
                         "message.max.bytes": 2_000_000})
    for partition, value in values:
        producer.produce(settings.raw_topic, value, b"hostile", partition=partition)
        producer.poll(0)
    assert producer.flush(60) == 0


def emit_valid(settings: Settings, tmp_path: Path, count: int) -> list[str]:
    with AuditClient(service="valid", bootstrap=settings.bootstrap,
                     registry_url=settings.registry_url, topic=settings.raw_topic,
                     spool_dir=tmp_path / "spool") as client:
        ids = [client.emit("record.read", "read", actor_id=f"u-{i % 37}",
                           resource_type="customer", resource_id=f"c-{i}")
               for i in range(count)]
        assert client.flush(60) == 0
    return ids


def offline_checks(settings: Settings) -> None:
    """`sealtrail verify --completeness` on the archive exits 0 (a real process)."""
    result = subprocess.run(
        [sys.executable, "-m", "sealtrail.cli.main", "verify", settings.archive, "--keys",
         str(settings.keys / PUBLIC_KEYRING), "--completeness"],
        capture_output=True, text=True, timeout=300, env={**os.environ, **settings.to_env()})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HOLES" not in result.stdout and "TWICE" not in result.stdout


def no_traceback(*stages: Stage) -> None:
    for stage in stages:
        assert "Traceback" not in stage.output(), stage.output()[-3000:]


def test_issue_records_never_stop_a_real_sealer_even_across_restarts(
    settings: Settings, stages: list[Stage], tmp_path: Path
) -> None:
    """The two records that once broke the sealer (schema id 2^32 - 1; the array poison record), on
    every partition: sealer processes SIGKILLed at several points and restarted on the
    same offsets each take them, none dies or hangs, and the final archive accounts for
    every offset exactly once."""
    ids = register(settings)
    pad = AvroCodec(pad_writer_schema())
    records: list[tuple[int, bytes | None]] = []
    for run in range(3):  # each run starts where the last one's commits left it
        wave = [(p, value) for p in range(settings.partitions) for value in
                (SCHEMA_ID_RECORD, poison_record(ids.pad, pad, run))] * 10
        produce(settings, wave)
        records += wave
        sealer = Stage(settings, "seal", tmp_path / f"seal-{run}.log")
        stages.append(sealer)
        # Killed once its first transaction is in the log (committed or not): the next
        # run resumes from what was committed, on the same offsets when it was not.
        wait_until(lambda s=sealer: "continues at seq" in s.output(),  # type: ignore[misc]
                   60, "the sealer's first write", alive=sealer.alive)
        assert sealer.alive(), sealer.output()
        sealer.kill()
    sealer = Stage(settings, "seal", tmp_path / "seal-final.log")
    archiver = Stage(settings, "archive", tmp_path / "archive.log")
    stages += [sealer, archiver]
    store = store_of(settings)
    wait_until(lambda: archived_count(store) >= len(records), 120, "archive",
               alive=lambda: sealer.alive() and archiver.alive())
    assert sealer.stop() == 0 and archiver.stop() == 0
    no_traceback(*stages)
    archived = archived_records(store)
    report = verify(settings)
    assert report.ok, [str(f) for c in report.chains for f in c.findings]
    assert len(archived) == len(records), (
        Counter(r["chain_id"] for r in archived),
        Counter(r["source"]["offset"] for r in archived).most_common(3),
        [(c.chain_id, c.entries) for c in report.chains])
    reasons = Counter((r["rejection"]["reason"], r["source"]["schema_id"]) for r in archived)
    assert reasons == {("UNKNOWN_SCHEMA", 2**32 - 1): 30 * settings.partitions,
                       ("LIMIT", ids.pad): 30 * settings.partitions}
    report = verify(settings)
    assert report.ok, [str(f) for c in report.chains for f in c.findings]
    offline_checks(settings)


def _hostile_run(settings: Settings, stages: list[Stage], tmp_path: Path, per_partition: int,
                 valid: int, big: int = 900_000) -> None:
    ids = register(settings)
    sealer = Stage(settings, "seal", tmp_path / "seal.log")
    archiver = Stage(settings, "archive", tmp_path / "archive.log")
    stages += [sealer, archiver]
    rng = random.Random(per_partition)
    expected: dict[bytes, str | None] = {}
    values: list[tuple[int, bytes | None]] = []
    for p in range(settings.partitions):
        for label, value in hostile_values(rng, ids, per_partition, big=big):
            values.append((p, value))
            if label in EXPECTED_REASON:
                expected[hashlib.sha256(value or b"").digest()] = EXPECTED_REASON[label]
    rng.shuffle(values)  # interleave the shapes and partitions
    half = len(values) // 2
    produce(settings, values[:half])
    event_ids = emit_valid(settings, tmp_path, valid // 2)
    produce(settings, values[half:])
    event_ids += emit_valid(settings, tmp_path, valid - valid // 2)
    total = len(values) + valid
    store = store_of(settings)
    wait_until(lambda: archived_count(store) >= total, 300, "archive",
               alive=lambda: sealer.alive() and archiver.alive())
    assert sealer.alive() and archiver.alive()
    assert sealer.stop() == 0 and archiver.stop() == 0
    no_traceback(sealer, archiver)
    archived = archived_records(store)
    assert len(archived) == total  # every raw offset sealed exactly once (verify: no hole)
    events = {r["event"]["event_id"] for r in archived if r["kind"] == "EVENT"}
    assert set(event_ids) <= events
    for r in archived:
        if r["kind"] == "REJECTION":
            assert r["rejection"]["reason"] != "INTERNAL", r["rejection"]
            want = expected.get(r["rejection"]["raw_sha256"], "any")
            assert want in ("any", r["rejection"]["reason"]), r["rejection"]
    report = verify(settings)
    assert report.ok, [str(f) for c in report.chains for f in c.findings]
    assert sum(c.entries for c in report.chains) == total
    offline_checks(settings)


def test_hostile_traffic_on_every_partition(
    settings: Settings, stages: list[Stage], tmp_path: Path
) -> None:
    """Every hostile shape we know (random bytes, empty values, tombstones, unknown ids,
    ids >= 2^31, truncated Avro, trailing bytes, header only, wrong magic, 900 kB values,
    array poison records) interleaved with 300 valid events on every partition."""
    _hostile_run(settings, stages, tmp_path, per_partition=100, valid=300)


@pytest.mark.slow
def test_hostile_traffic_at_volume(
    settings: Settings, stages: list[Stage], tmp_path: Path
) -> None:
    """The same with thousands of hostile records per partition and 5,000 valid events (the
    large values just over max_event_bytes, so the embedded broker's memory stays small)."""
    _hostile_run(settings, stages, tmp_path, per_partition=2000, valid=5000,
                 big=settings.max_event_bytes + 1)


def _exit_code(settings: Settings, *args: str | Path) -> int:
    return subprocess.run(
        [sys.executable, "-m", "sealtrail.cli.main", *map(str, args)], capture_output=True,
        timeout=120, env={**os.environ, **settings.to_env()}).returncode


def test_acceptance_check_of_issue_13(
    settings: Settings, stages: list[Stage], tmp_path: Path
) -> None:
    """The issue's acceptance check, as written: with the pipeline up, several hundred
    garbage records of every shape (the two quoted records included) on every raw
    partition, then 300 valid events through AuditClient. The sealer is still running, all
    300 are archived, verify and verify --completeness exit 0; verify-note on a missing
    file, verify-proof on deeply nested JSON and verify-export on a bundle whose
    manifest.json is a list each exit 2."""
    import zipfile

    ids = register(settings)
    sealer = Stage(settings, "seal", tmp_path / "seal.log")
    archiver = Stage(settings, "archive", tmp_path / "archive.log")
    stages += [sealer, archiver]
    rng = random.Random(1313)
    garbage = [(p, value) for p in range(settings.partitions)
               for _, value in hostile_values(rng, ids, 150)]
    assert len(garbage) >= 300
    assert sum(v == SCHEMA_ID_RECORD for _, v in garbage) >= settings.partitions
    produce(settings, garbage)
    valid = emit_valid(settings, tmp_path, 300)
    store = store_of(settings)
    wait_until(lambda: archived_count(store) >= len(garbage) + 300, 300, "archive",
               alive=lambda: sealer.alive() and archiver.alive())
    assert sealer.alive()
    events = {r["event"]["event_id"] for r in archived_records(store) if r["kind"] == "EVENT"}
    assert set(valid) <= events
    keys = settings.keys / PUBLIC_KEYRING
    assert _exit_code(settings, "verify", settings.archive, "--keys", keys) == 0
    assert _exit_code(settings, "verify", settings.archive, "--keys", keys,
                      "--completeness") == 0
    from sealtrail.keys import load_keyring

    key_id = next(iter(load_keyring(keys).keys))
    assert _exit_code(settings, "verify-note", tmp_path / "missing.note", "--keys", keys,
                      "--key-id", key_id) == 2
    nested = tmp_path / "nested.json"
    nested.write_bytes(b"[" * 500_000 + b"]" * 500_000)
    assert _exit_code(settings, "verify-proof", nested, "--keys", keys) == 2
    bundle = tmp_path / "bundle.zip"
    with zipfile.ZipFile(bundle, "w") as z:
        z.writestr("manifest.json", "[]")
    assert _exit_code(settings, "verify-export", bundle, "--keys", keys) == 2
    assert sealer.stop() == 0 and archiver.stop() == 0
    no_traceback(sealer, archiver)
