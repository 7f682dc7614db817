"""The producer client against the real embedded broker and registry: delivery, clear
errors, the durable spool when the broker is unreachable, full-spool policies, metrics."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.producer_checks import consume
from prometheus_client import generate_latest

from sealtrail import schemas
from sealtrail.config import Settings
from sealtrail.core.avro import AvroCodec
from sealtrail.errors import ConfigError, EventValidationError, TransportError
from sealtrail.producers import AuditClient, EmitBackpressureError, SpoolFullError
from sealtrail.runtime import dev

CODEC = AvroCodec(schemas.load(schemas.AUDIT_EVENT))


def client_for(settings: Settings, tmp_path: Path, **kwargs: Any) -> AuditClient:
    options: dict[str, Any] = {
        "service": "billing", "bootstrap": settings.bootstrap,
        "registry_url": settings.registry_url, "topic": settings.raw_topic,
        "spool_dir": tmp_path / "spool",
    }
    options.update(kwargs)
    return AuditClient(**options)


def test_emitted_events_reach_the_raw_topic_with_the_service_identity(
    settings: Settings, tmp_path: Path
) -> None:
    """emit() returns the event id; the record on the raw topic is keyed by actor and
    carries the service name, version, instance and environment from configuration."""
    with client_for(settings, tmp_path, service_version="2.1.0", environment="prod",
                    instance="billing-7") as client:
        ids = [client.emit("record.read", "read", actor_id=f"u-{i}", resource_type="invoice",
                           resource_id=f"inv-{i}", attributes={"n": str(i)}) for i in range(20)]
        assert client.flush(30) == 0
        assert client.delivered == 20 and client.pending == 0
    got = consume(settings, 20)
    assert sorted(e["event_id"] for _, e in got) == sorted(ids)
    for key, event in got:
        assert key == event["actor"]["id"]
        assert event["origin"]["service"] == "billing"
        assert event["origin"]["service_version"] == "2.1.0"
        assert event["origin"]["environment"] == "prod"
        assert event["origin"]["instance"] == "billing-7"
    assert not list((tmp_path / "spool").rglob("0000*.seg"))[1:], "delivered segments remain"


def test_schema_violations_name_the_field_the_expected_type_and_the_value_type(
    settings: Settings, tmp_path: Path
) -> None:
    """Bad events fail on the caller's thread with the field, what was expected and what
    was given, and nothing is spooled or sent."""
    with client_for(settings, tmp_path) as client:
        with pytest.raises(EventValidationError) as bad_enum:
            client.emit("record.read", "read", actor_id="u", resource_type="t",
                        resource_id="1", outcome="MAYBE")
        assert bad_enum.value.field == "outcome" and "is not one of" in str(bad_enum.value)
        assert "MAYBE" not in str(bad_enum.value)  # described, never quoted
        with pytest.raises(EventValidationError) as bad_type:
            client.emit("record.read", "read", actor_id="u", resource_type="t",
                        resource_id=7)  # type: ignore[arg-type]
        assert bad_type.value.field == "resource.id"
        with pytest.raises(EventValidationError) as bad_event_type:
            client.emit("Record Read", "read", actor_id="u", resource_type="t", resource_id="1")
        assert bad_event_type.value.field == "event_type"
        with pytest.raises(EventValidationError) as no_actor:
            client.emit("record.read", "read", resource_type="t", resource_id="1")
        assert no_actor.value.field == "actor.id"
        event = {"event_id": "e-1", "event_type": "auth.login", "action": "login",
                 "occurred_at": "yesterday", "actor": {"id": "u", "type": "user"},
                 "origin": {"service": "s", "instance": "i"},
                 "resource": {"type": "t", "id": "1"}, "outcome": "SUCCESS"}
        with pytest.raises(EventValidationError) as bad_time:
            client.emit_event(event)
        assert bad_time.value.field == "occurred_at"
        assert "expected long" in str(bad_time.value) and "str" in str(bad_time.value)
        with pytest.raises(EventValidationError) as missing:
            client.emit_event({k: v for k, v in event.items() if k != "resource"} |
                              {"occurred_at": 1})
        assert missing.value.field == "resource" and "required" in str(missing.value)
        with pytest.raises(EventValidationError) as unknown:
            client.emit_event(event | {"occurred_at": 1, "colour": "red"})
        assert unknown.value.field == "colour"
        assert client.pending == 0 and client.metrics.counts.emitted == 0
        text = generate_latest(client.metrics.registry).decode()
        assert 'reason="invalid"' in text and "} 7.0" in text


def test_misconfiguration_fails_fast_with_one_clear_message(
    settings: Settings, tmp_path: Path
) -> None:
    """A missing service name, a malformed or unresolvable bootstrap address and an
    unreachable registry each fail at construction, quickly, saying what to fix."""
    with pytest.raises(ConfigError, match="service"):
        client_for(settings, tmp_path, service="")
    with pytest.raises(ConfigError, match="host:port"):
        client_for(settings, tmp_path, bootstrap="localhost")
    with pytest.raises(ConfigError, match="does not resolve"):
        client_for(settings, tmp_path, bootstrap="no-such-host.invalid:9092")
    with pytest.raises(ConfigError, match="spool_full"):
        client_for(settings, tmp_path, spool_full="drop")
    start = time.monotonic()
    with pytest.raises(TransportError, match="unreachable") as exc:
        client_for(settings, tmp_path, registry_url=f"http://127.0.0.1:{dev.free_port()}",
                   registry_auth="alice:s3cret-pw")
    assert time.monotonic() - start < 15
    assert "s3cret" not in str(exc.value)


def test_unreachable_broker_spools_and_a_full_spool_fails_closed_loudly(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With nothing at the bootstrap address emit() stays fast, events go to the bounded
    spool, and a full spool raises SpoolFullError with a metric and a log line."""
    dead = f"127.0.0.1:{dev.free_port()}"
    caplog.set_level(logging.WARNING, logger="sealtrail.producer")
    client = client_for(settings, tmp_path, bootstrap=dead, spool_max_bytes=64 * 1024,
                        producer_config={"queue.buffering.max.messages": 50})
    accepted: list[str] = []
    slowest = 0.0
    with pytest.raises(SpoolFullError) as full:
        for i in range(10_000):
            start = time.perf_counter()
            accepted.append(client.emit("record.read", "read", actor_id=f"u-{i % 3}",
                                        resource_type="t", resource_id=str(i)))
            slowest = max(slowest, time.perf_counter() - start)
    assert isinstance(full.value, EmitBackpressureError)
    assert "full" in str(full.value) and "spool_max_bytes" in str(full.value)
    assert 100 < len(accepted) < 10_000
    assert slowest < 0.05, f"emit() took {slowest:.3f} s with the broker down"
    assert client.pending == len(accepted)
    assert client.metrics.counts.spooled > 0
    text = generate_latest(client.metrics.registry).decode()
    assert 'reason="spool_full"' in text
    assert any("is full" in r.getMessage() for r in caplog.records)
    on_disk = sum(p.stat().st_size for p in (tmp_path / "spool").rglob("*.seg"))
    assert on_disk <= 64 * 1024
    client.close(timeout=0)

    # The broker "returns": a client on the same spool sends the backlog first, in order,
    # before the new events of the same keys.
    with client_for(settings, tmp_path) as again:
        assert again.pending == len(accepted)
        newer = [again.emit("record.read", "read", actor_id=f"u-{i % 3}", resource_type="t",
                            resource_id=f"new-{i}") for i in range(30)]
        assert again.flush(60) == 0
    got = consume(settings, len(accepted) + len(newer))
    assert sorted(e["event_id"] for _, e in got) == sorted(accepted + newer)
    order = {event_id: n for n, event_id in enumerate(accepted + newer)}
    for key in ("u-0", "u-1", "u-2"):
        seen = [order[e["event_id"]] for k, e in got if k == key]
        assert seen == sorted(seen), f"events of {key} overtook each other"


def test_block_policy_waits_up_to_its_bound_then_raises(
    settings: Settings, tmp_path: Path
) -> None:
    """With spool_full="block", emit() on a full spool waits for room up to the bound and
    then raises SpoolFullError: bounded, never silent."""
    dead = f"127.0.0.1:{dev.free_port()}"
    with client_for(settings, tmp_path, bootstrap=dead, spool_max_bytes=16 * 1024,
                    spool_full="block", spool_block_seconds=0.5) as client:
        with pytest.raises(SpoolFullError):
            for i in range(10_000):
                start = time.monotonic()
                client.emit("record.read", "read", actor_id="u", resource_type="t",
                            resource_id=str(i))
        waited = time.monotonic() - start
        assert 0.45 <= waited < 3, waited
        client.close(timeout=0)


def test_metrics_cover_the_pipeline_of_the_client_and_hold_no_secrets(
    settings: Settings, tmp_path: Path
) -> None:
    """Emitted, delivered, spooled, failed, spool depth, queue depth and both latency
    histograms are exported; labels hold the service and topic, never credentials."""
    with client_for(settings, tmp_path, registry_auth="alice:s3cret-pw") as client:
        for i in range(50):
            client.emit("auth.login", "login", actor_id="u", resource_type="session",
                        resource_id=str(i))
        assert client.flush(30) == 0
        time.sleep(0.5)  # one gauge refresh of the background thread
        text = generate_latest(client.metrics.registry).decode()
    for name in ("sealtrail_producer_emitted_total", "sealtrail_producer_delivered_total",
                 "sealtrail_producer_spooled_total", "sealtrail_producer_failed_total",
                 "sealtrail_producer_spool_depth", "sealtrail_producer_queue_depth",
                 "sealtrail_producer_emit_seconds_bucket",
                 "sealtrail_producer_delivery_seconds_bucket"):
        assert name in text, name
    labels = f'service="billing",topic="{settings.raw_topic}"'
    assert f"sealtrail_producer_emitted_total{{{labels}}} 50.0" in text
    assert "s3cret" not in text and "alice" not in text


def test_emit_on_a_closed_client_raises(settings: Settings, tmp_path: Path) -> None:
    """A closed client refuses events instead of losing them."""
    client = client_for(settings, tmp_path)
    client.close()
    with pytest.raises(Exception, match="closed"):
        client.emit("auth.login", "login", actor_id="u", resource_type="s", resource_id="1")
