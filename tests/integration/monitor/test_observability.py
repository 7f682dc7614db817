"""Metrics and health endpoints of the stages, `sealtrail config show`, and the generated
configuration reference."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from helpers.monitor_traffic import Emitter
from helpers.paths import REPO
from helpers.stages import Stage, with_settings
from prometheus_client import CollectorRegistry

from sealtrail.config import Settings
from sealtrail.config_doc import render
from sealtrail.observability import (
    AttributeCollector,
    Health,
    StageMetric,
    start_metrics_server,
)
from sealtrail.runtime.dev import free_port

ROOT = REPO


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def metric(body: str, name: str) -> float | None:
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_health_endpoints_follow_the_process_state() -> None:
    """/healthz is 200 while alive and 503 once stopped; /readyz is 503 until a probe
    succeeded, 200 after, 503 after a failure; /metrics reads values at scrape time."""
    registry = CollectorRegistry()
    box = {"n": 1}
    registry.register(AttributeCollector([StageMetric("demo_things_total", "Things.",
                                                      lambda: box["n"])]))
    health = Health(ready_for=60)
    server = start_metrics_server("127.0.0.1", 0, registry, health)
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert get(base + "/healthz")[0] == 200
        assert get(base + "/readyz") == (503, "starting\n")
        health.ok()
        assert get(base + "/readyz")[0] == 200
        health.failed("probe failed: KafkaException")
        assert get(base + "/readyz") == (503, "probe failed: KafkaException\n")
        box["n"] = 42
        assert metric(get(base + "/metrics")[1], "demo_things_total") == 42
        assert get(base + "/nope")[0] == 404
        health.stopped()
        assert get(base + "/healthz")[0] == 503
    finally:
        server.stop()


def test_sealer_and_archiver_serve_metrics(settings: Settings, stages: list[Stage],
                                           tmp_path: Path) -> None:
    """`sealtrail seal` and `sealtrail archive` with a metrics port become ready and count
    sealed, rejected and archived records, lag included, in Prometheus format."""
    seal_port, archive_port = free_port(), free_port()
    sealer = Stage(with_settings(settings, metrics_port=seal_port), "seal",
                   tmp_path / "seal.log")
    archiver = Stage(with_settings(settings, metrics_port=archive_port), "archive",
                     tmp_path / "archive.log")
    stages += [sealer, archiver]
    emitter = Emitter(settings, ["billing"], per_second=200)
    for i in range(50):
        emitter.producer.produce(settings.raw_topic, emitter_value(emitter, i))
    emitter.send([b"garbage"] * 5)
    deadline = time.monotonic() + 60
    seal_body = archive_body = ""
    while time.monotonic() < deadline:
        assert sealer.alive() and archiver.alive(), sealer.output() + archiver.output()
        seal_body = get(f"http://127.0.0.1:{seal_port}/metrics")[1]
        archive_body = get(f"http://127.0.0.1:{archive_port}/metrics")[1]
        if (metric(seal_body, "sealtrail_sealer_records_sealed_total") == 50
                and metric(seal_body, "sealtrail_sealer_records_rejected_total") == 5
                and metric(archive_body, "sealtrail_archiver_records_archived_total") == 55
                # a batch or flush is timed once it is done, after its records are counted
                and (metric(seal_body, "sealtrail_sealer_batch_seconds_count") or 0) >= 1
                and (metric(archive_body, "sealtrail_archiver_flush_seconds_count") or 0) >= 1
                and get(f"http://127.0.0.1:{seal_port}/readyz")[0] == 200
                and get(f"http://127.0.0.1:{archive_port}/readyz")[0] == 200):
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"metrics never reached the expected counts:\n{seal_body}\n"
                             f"{archive_body}")
    assert metric(archive_body, "sealtrail_archiver_segments_written_total") >= 1
    # Latency: every sealed batch and every flush observed (a count, and a positive sum).
    assert (metric(seal_body, "sealtrail_sealer_batch_records_sum") or 0) >= 1
    assert (metric(seal_body, "sealtrail_sealer_batch_seconds_sum") or 0) > 0
    assert (metric(archive_body, "sealtrail_archiver_flush_seconds_sum") or 0) > 0
    assert 'sealtrail_consumer_lag{partition="0",stage="sealer"' in seal_body
    assert get(f"http://127.0.0.1:{seal_port}/healthz")[0] == 200
    assert sealer.stop() == 0 and archiver.stop() == 0


def emitter_value(emitter: Emitter, i: int) -> bytes:
    from helpers.monitor_traffic import audit_event

    from sealtrail.core.avro import frame

    return frame(emitter.schema_id, emitter.codec.encode(audit_event("billing", i)))


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    """`sealtrail config show` prints every setting, with registry_auth and passwords in
    URLs masked and the environment applied."""
    env = {"SEALTRAIL_REGISTRY_AUTH": "alice:hunter2",
           "SEALTRAIL_REGISTRY_URL": "https://bob:s3cret@registry.example.com",
           "SEALTRAIL_HOME": str(tmp_path), "SEALTRAIL_MONITOR_LAG_MAX": "7",
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "sealtrail.cli.main", "config", "show",
                          "--json"], capture_output=True, text=True, env=env, check=True,
                         cwd=tmp_path)
    doc = json.loads(out.stdout)
    assert "hunter2" not in out.stdout and "s3cret" not in out.stdout
    assert doc["registry_auth"] == "********"
    assert doc["registry_url"] == "https://bob:********@registry.example.com"
    assert doc["monitor_lag_max"] == "7" and doc["raw_topic"] == "audit.raw"


def test_configuration_reference_is_current() -> None:
    """docs/configuration.md is exactly what `python -m sealtrail.config_doc` generates
    from Settings; regenerate it after changing a setting."""
    path = ROOT / "docs" / "configuration.md"
    assert path.read_text() == render(), \
        "docs/configuration.md is stale: run `python -m sealtrail.config_doc`"
    for name in Settings.__dataclass_fields__:
        assert f"`SEALTRAIL_{name.upper()}`" in path.read_text()


def test_indexer_serves_its_metrics(settings: Settings, stages: list[Stage],
                                    tmp_path: Path) -> None:
    """`sealtrail index run --metrics-port` counts the events it indexed on /metrics."""
    import os

    port = free_port()
    stages.append(Stage(settings, "seal", tmp_path / "seal.log"))
    env = {**os.environ, **with_settings(settings, index_url=str(tmp_path / "ix.sqlite"),
                                         indexer_group="ix-" + settings.sealer_group).to_env()}
    with open(tmp_path / "index.log", "wb") as log:
        indexer = subprocess.Popen([sys.executable, "-m", "sealtrail.cli.main", "index", "run",
                                    "--metrics-port", str(port)], env=env, stdout=log,
                                   stderr=log)
    try:
        emitter = Emitter(settings, ["billing"], per_second=200)
        for i in range(30):
            emitter.producer.produce(settings.raw_topic, emitter_value(emitter, i))
        emitter.send([])
        deadline = time.monotonic() + 60
        body = ""
        while time.monotonic() < deadline:
            assert indexer.poll() is None, (tmp_path / "index.log").read_text()
            try:
                body = get(f"http://127.0.0.1:{port}/metrics")[1]
            except OSError:
                body = ""
            if body and metric(body, "sealtrail_indexer_events_indexed_total") == 30:
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"the indexer never counted 30 events:\n{body}")
    finally:
        indexer.terminate()
        indexer.wait(20)
