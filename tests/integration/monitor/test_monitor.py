"""The monitor: the pure rules with a fake clock, and the faust app against the real
embedded broker with a real sealer."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from helpers.monitor_traffic import Emitter, audit_event, v2_schema
from helpers.stages import Stage, with_settings

from sealtrail.config import Settings
from sealtrail.core.avro import frame
from sealtrail.monitor.rules import Alert, Monitor, Thresholds
from sealtrail.runtime.dev import free_port

S = 1_000_000
T = Thresholds(window_seconds=10, lateness_seconds=1, baseline_windows=3,
               volume_drop_fraction=0.5, rejection_rate=0.1, min_window_events=10,
               skew_max_seconds=60, checkpoint_max_age_seconds=300, lag_max=100)


def sealed(service: str | None, at_s: float, *, schema_id: int = 1, seq: int = 0,
           skew_s: float = 0.0, reason: str = "UNDECODABLE") -> dict[str, Any]:
    """A decoded sealed record: an event of ``service``, or a rejection when None."""
    at = int(at_s * S)
    event = None if service is None else {
        "event_type": "auth.login",
        "occurred_at": at - int(skew_s * S),
        "origin": {"service": service},
    }
    return {
        "chain_id": "c", "seq": seq, "kind": "EVENT" if service else "REJECTION",
        "event": event,
        "rejection": None if service else {"reason": reason},
        "redaction": {"fields": ["origin.source_ip=mask"] if service else []},
        "ingested_at": at,
        "source": {"schema_id": schema_id if service else None},
    }


def feed(m: Monitor, service: str | None, window: int, n: int, **kw: Any) -> None:
    for i in range(n):
        m.observe(sealed(service, window * 10 + i * 10 / max(n, 1), **kw))


def judge(m: Monitor, window: int) -> list[Alert]:
    """Evaluate just after ``window`` (10 s windows) has ended and its lateness passed."""
    return m.evaluate(int(((window + 1) * 10 + 1.5) * S))


def names(alerts: list[Alert]) -> set[tuple[str, str, str]]:
    return {(a.name, a.subject, a.state) for a in alerts}


def test_volume_stop_fires_and_resolves() -> None:
    """A service silent for one window after a steady baseline fires volume_stopped, and
    the alert resolves when it emits again."""
    m = Monitor(T)
    for w in range(4):
        feed(m, "a", w, 20)
        feed(m, "b", w, 20)
        assert not judge(m, w)
    feed(m, "a", 4, 20)
    assert names(judge(m, 4)) == {("volume_stopped", "b", "FIRING")}
    feed(m, "a", 5, 20)
    feed(m, "b", 5, 20)
    assert names(judge(m, 5)) == {("volume_stopped", "b", "RESOLVED")}


def test_silent_service_stays_firing() -> None:
    """A service that stays silent keeps volume_stopped firing after its own silence has
    emptied the trailing baseline."""
    m = Monitor(T)
    for w in range(4):
        feed(m, "a", w, 20)
        feed(m, "b", w, 20)
        judge(m, w)
    for w in range(4, 10):
        feed(m, "a", w, 20)
        fired = judge(m, w)
        assert fired == [] or names(fired) == {("volume_stopped", "b", "FIRING")}
    assert ("volume_stopped", "b") in m.firing


def test_volume_drop_below_fraction_of_baseline() -> None:
    """A window at a third of the trailing mean fires volume_drop, not volume_stopped."""
    m = Monitor(T)
    for w in range(4):
        feed(m, "a", w, 30)
        judge(m, w)
    feed(m, "a", 4, 10)
    assert names(judge(m, 4)) == {("volume_drop", "a", "FIRING")}


def test_backlog_is_judged_by_stream_time() -> None:
    """A monitor reading an hour-old backlog judges windows by the records' own time, so
    windows it has not read yet are not reported as a volume stop; once nothing arrives
    for a window, the wall clock judges (and a real stop is reported)."""
    m = Monitor(T)
    wall = 3600 * S
    for w in range(6):
        for i in range(20):
            m.observe(sealed("a", w * 10 + i * 0.5), wall_us=wall)
        assert m.evaluate(wall) == []
        wall += S // 10
    assert m.windows and ("volume_stopped", "a") not in m.firing
    later = wall + 20 * S
    assert names(m.evaluate(later)) == {("volume_stopped", "a", "FIRING")}


def test_no_volume_verdict_while_warming_up() -> None:
    """Before baseline_windows of history exist, silence is not judged."""
    m = Monitor(T)
    feed(m, "a", 0, 30)
    judge(m, 0)
    assert judge(m, 1) == []


def test_rejection_rate_needs_minimum_volume() -> None:
    """Rejections above the rate fire only in windows with at least min_window_events."""
    m = Monitor(T)
    feed(m, None, 0, 5)
    assert judge(m, 0) == []
    feed(m, "a", 1, 20)
    feed(m, None, 1, 5, reason="INVALID")
    fired = judge(m, 1)
    assert names(fired) == {("rejection_rate", "all", "FIRING")}
    assert "INVALID 5" in fired[0].detail and fired[0].value == pytest.approx(0.2)


def test_new_schema_id_after_warmup_only() -> None:
    """Schema ids seen during the warm-up are the baseline; one first seen later fires
    at once (not at the end of the window) and resolves after baseline_windows."""
    m = Monitor(T)
    feed(m, "a", 0, 5, schema_id=1)
    feed(m, "a", 1, 5, schema_id=2)
    assert not [a for a in m.evaluate(int(21 * S)) if a.name == "new_schema_id"]
    m.observe(sealed("a", 35, schema_id=3))
    fired = m.evaluate(int(35.1 * S))
    assert ("new_schema_id", "3", "FIRING") in names(fired)
    later = m.evaluate(int(35.1 * S) + 3 * 10 * S)
    assert ("new_schema_id", "3", "RESOLVED") in names(later)


def test_clock_skew_per_service() -> None:
    """An event whose occurred_at is far from ingested_at fires clock_skew for its
    service only, in either direction."""
    m = Monitor(T)
    feed(m, "a", 0, 3, skew_s=2)
    feed(m, "b", 0, 1, skew_s=-120)
    fired = judge(m, 0)
    assert names(fired) == {("clock_skew", "b", "FIRING")}
    assert fired[0].value == pytest.approx(-120)


def test_checkpoint_age_and_lag() -> None:
    """A chain whose newest checkpoint is too old, and a stage lagging too far, fire;
    fresh ones resolve."""
    m = Monitor(T)
    now = 10_000 * S
    fired = m.observe_checkpoints({"c1": now - 400 * S, "c2": now - 10 * S}, now)
    assert names(fired) == {("checkpoint_stale", "c1", "FIRING")}
    assert names(m.observe_checkpoints({"c1": now}, now)) == {
        ("checkpoint_stale", "c1", "RESOLVED")}
    assert names(m.observe_lag({"sealer": 101, "archiver": 0}, now)) == {
        ("consumer_lag", "sealer", "FIRING")}
    assert m.observe_lag({"sealer": 101, "archiver": 0}, now) == []


def test_alert_record_is_json() -> None:
    """Alert records on the alerts topic are JSON objects naming alert, subject, state."""
    doc = json.loads(Alert("volume_drop", "a", "FIRING", "d", 1.0, 2.0, 3).to_json())
    assert doc == {"alert": "volume_drop", "subject": "a", "state": "FIRING", "detail": "d",
                   "value": 1.0, "threshold": 2.0, "at_us": 3}


# -- against the real broker -----------------------------------------------------------


class Alerts:
    """Reads the alerts topic from the beginning."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = Consumer({"bootstrap.servers": settings.bootstrap,
                                  "group.id": "alerts-reader", "enable.auto.commit": False})
        self.consumer.assign([TopicPartition(settings.alerts_topic, 0, 0)])
        self.seen: list[dict[str, Any]] = []

    def wait_for(self, name: str, subject: str, timeout: float, alive: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for doc in self.seen:
                if (doc["alert"], doc["subject"], doc["state"]) == (name, subject, "FIRING"):
                    return doc
            msg = self.consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                self.seen.append(json.loads(msg.value()))
            assert alive(), "a stage died"
        raise AssertionError(f"no {name} alert for {subject} within {timeout} s; "
                             f"saw {[(d['alert'], d['subject'], d['state']) for d in self.seen]}")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.timeout(150)
def test_monitor_alerts_against_real_broker(settings: Settings, stages: list[Stage],
                                            tmp_path: Path) -> None:
    """With a real sealer and the faust monitor on the embedded broker: a service that
    stops emitting fires volume_stopped within a few 1 s windows, a burst of garbage fires
    rejection_rate, a newly registered v2 writer schema fires new_schema_id, an event
    stamped 20 minutes ago fires clock_skew for its service, and the absent archiver's
    growing lag fires consumer_lag."""
    port = free_port()
    s = with_settings(settings, alerts_topic=f"alerts-{settings.raw_topic}",
                      monitor_group=f"mon-{settings.raw_topic}", metrics_port=port,
                      monitor_window_seconds=1.0, monitor_lateness_seconds=0.6,
                      monitor_baseline_windows=3, monitor_rejection_rate=0.2,
                      monitor_min_window_events=10, monitor_probe_seconds=1.0,
                      monitor_lag_max=30)
    monitor = Stage(s, "monitor", tmp_path / "monitor.log")
    stages.append(monitor)
    sealer = Stage(with_settings(s, metrics_port=0), "seal", tmp_path / "seal.log")
    stages.append(sealer)

    def alive() -> bool:
        return monitor.alive() and sealer.alive()

    deadline = time.monotonic() + 40
    while get_ready(port) != 200:
        assert time.monotonic() < deadline, monitor.output()
        assert alive(), monitor.output() + sealer.output()
        time.sleep(0.3)
    emitter = Emitter(s, ["billing", "crm"], per_second=25).start()
    alerts = Alerts(s)
    try:
        time.sleep(6)  # warm-up: 3 baseline windows of steady traffic, plus joins
        emitter.stop_service("crm")
        alerts.wait_for("volume_stopped", "crm", 20, alive)

        emitter.send([b"not avro at all"] * 40)
        doc = alerts.wait_for("rejection_rate", "all", 15, alive)
        assert "UNDECODABLE" in doc["detail"]

        new_id = emitter.switch_schema(v2_schema())
        alerts.wait_for("new_schema_id", str(new_id), 15, alive)

        stale = audit_event("skewed", 0, occurred_at=time.time_ns() // 1000 - 1200 * 10**6)
        emitter.send([frame(emitter.schema_id, emitter.codec.encode({**stale,
                                                                     "sla_tier": None}))])
        doc = alerts.wait_for("clock_skew", "skewed", 15, alive)
        assert doc["value"] > 1100
        alerts.wait_for("consumer_lag", "archiver", 15, alive)  # no archiver runs here
        status, body = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert 'sealtrail_monitor_alert_firing{alert="volume_stopped",subject="crm"} 1.0' in body
        assert 'sealtrail_monitor_rejections_total{reason="UNDECODABLE"}' in body
        assert 'sealtrail_monitor_events_total{event_type="auth.login",service="billing"}' \
            in body
    finally:
        emitter.close()
        alerts.consumer.close()
    assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    assert monitor.stop() == 0


def get_ready(port: int) -> int:
    try:
        return get(f"http://127.0.0.1:{port}/readyz")[0]
    except OSError:
        return 0



def test_monitor_consumer_reads_committed(tmp_path: Path) -> None:
    """The monitor's faust consumer is created read_committed, like every other reader of
    the sealed topic. faust reads committed data only in its own exactly_once mode, which
    cannot run on the embedded broker, so the monitor sets the isolation level through
    faust's and aiokafka's consumer hooks (docs/architecture.md, "The monitor and faust");
    this fails if an upgrade of either drops or renames them. (Tansu itself hands records
    of aborted transactions to read_committed readers, so this is checked on the consumer
    faust builds, not by counting records.)"""
    import asyncio
    import inspect

    import aiokafka
    from prometheus_client import CollectorRegistry

    from sealtrail.monitor.app import build_app
    from sealtrail.observability import Health

    offline = Settings(home=tmp_path, bootstrap="127.0.0.1:9", registry_url="http://127.0.0.1:9")
    app = build_app(offline, CollectorRegistry(), Health())

    async def create() -> Any:
        return app.consumer._thread._create_worker_consumer(app.transport)

    consumer = asyncio.run(create())
    assert isinstance(consumer, aiokafka.AIOKafkaConsumer)
    assert consumer._isolation_level == "read_committed"
    del consumer  # never started: nothing to close
    # aiokafka's start() hands the attribute to its fetcher: the hook only works while it does
    assert "isolation_level=self._isolation_level" in inspect.getsource(
        aiokafka.AIOKafkaConsumer.start)
