"""`sealtrail status` against a running pipeline on the embedded broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from confluent_kafka import Producer
from helpers.monitor_traffic import Emitter, audit_event
from helpers.pipeline_checks import archived_count, store_of, wait_until
from helpers.stages import Stage, with_settings

from sealtrail.config import Settings
from sealtrail.core.avro import frame
from sealtrail.monitor.app import ensure_alerts_topic


def status(settings: Settings, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sealtrail.cli.main", "status", *extra],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **settings.to_env()})


def test_status_shows_processes_lag_chains_and_alerts(settings: Settings,
                                                      stages: list[Stage],
                                                      tmp_path: Path) -> None:
    """status lists the stage processes of this pipeline, zero lag once everything is
    sealed and archived, each chain's head and checkpoint age, and exactly the alerts
    whose latest record is FIRING; --strict exits 1 while one fires."""
    s = with_settings(settings, alerts_topic=f"alerts-{settings.raw_topic}")
    sealer = Stage(s, "seal", tmp_path / "seal.log")
    archiver = Stage(s, "archive", tmp_path / "archive.log")
    stages += [sealer, archiver]
    emitter = Emitter(s, ["billing"], per_second=100)
    emitter.send([frame(emitter.schema_id, emitter.codec.encode(audit_event("billing", i)))
                  for i in range(30)])
    store = store_of(s)
    wait_until(lambda: archived_count(store) == 30, 60, "30 archived records",
               lambda: sealer.alive() and archiver.alive())
    ensure_alerts_topic(s)
    producer = Producer({"bootstrap.servers": s.bootstrap})
    for name, subject, state in [("volume_stopped", "crm", "FIRING"),
                                 ("rejection_rate", "all", "FIRING"),
                                 ("rejection_rate", "all", "RESOLVED")]:
        producer.produce(s.alerts_topic, json.dumps({
            "alert": name, "subject": subject, "state": state, "detail": f"{name} test",
            "value": 0, "threshold": 1, "at_us": 0}).encode(), f"{name}/{subject}".encode())
    assert producer.flush(10) == 0

    def settled() -> bool:
        doc = json.loads(status(s, "--json").stdout)
        return all(lag["lag"] == 0 for lag in doc["lag"])

    wait_until(settled, 30, "zero lag", lambda: sealer.alive() and archiver.alive())
    out = status(s, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    procs = {(p["stage"], p["pid"]) for p in doc["processes"]}
    assert {("seal", sealer.proc.pid), ("archive", archiver.proc.pid)} <= procs
    # What the running stages use, as each recorded it when it started.
    by_pid = {p["pid"]: p for p in doc["processes"]}
    assert by_pid[archiver.proc.pid]["archive"] == s.archive
    assert by_pid[archiver.proc.pid]["keys"] == by_pid[sealer.proc.pid]["keys"] == str(s.keys)
    assert doc["archive"]["url"] == s.archive
    assert {lag["stage"] for lag in doc["lag"]} == {"sealer", "archiver"}
    heads = doc["chains"]
    assert sum(c["head_seq"] + 1 for c in heads) == 30
    assert all(0 <= c["checkpoint_age_seconds"] < 120 for c in heads)
    assert [(a["alert"], a["subject"]) for a in doc["alerts_firing"]] == [
        ("volume_stopped", "crm")]
    text = status(s)
    assert "volume_stopped [crm]" in text.stdout and "head seq" in text.stdout
    assert status(s, "--strict").returncode == 1
