"""The monitor as a faust-streaming app (at_least_once).

One agent reads the sealed topic, decodes each record with its own writer schema
(:class:`sealtrail.schemas.cache.WriterSchemas`) and feeds the pure
:class:`sealtrail.monitor.rules.Monitor`, which keeps the tumbling windows (by the
sealer's ingested_at) and judges the rules. A timer asks it for alert transitions a few
times per window and writes them, as JSON records keyed by ``alert/subject``, to the
alerts topic; a second timer probes consumer lag and the archive's newest checkpoint per
chain. Everything is also exported as Prometheus metrics.

Why at_least_once: aiokafka (under faust) cannot initialise an idempotent or
transactional producer against the embedded broker (design.md), and alerts are
idempotent enough: a restart may repeat an alert record, never lose a rule.

Why the windows are not faust Tables: the sealed topic is keyed by chain, the windows by
service; a faust Table would need a repartition topic per key kind, and its changelog
would only restore counts that the monitor rebuilds anyway by judging windows of event
time. The monitor runs as one worker (decoding costs ~10 µs a record), and after a
restart it warms up for ``monitor_baseline_windows`` windows before volume rules judge.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from faust.transport.drivers import aiokafka as _aiokafka
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sealtrail.config import Settings
from sealtrail.errors import ConfigError, DecodeError, SealtrailError, TransportError
from sealtrail.kafka.client import kafka_config
from sealtrail.monitor.rules import Alert, Monitor, Thresholds
from sealtrail.observability import Health, LogCounter, lag_gauge
from sealtrail.schemas.cache import WriterSchemas
from sealtrail.schemas.registry_client import registry_client

__all__ = ["MonitorMetrics", "build_app", "ensure_alerts_topic"]

log = logging.getLogger("sealtrail.monitor")

DELAY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


def now_us() -> int:
    return time.time_ns() // 1000


class MonitorMetrics:
    """The monitor's Prometheus metrics (docs/operations.md lists them)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.records = Counter("sealtrail_monitor_records_total",
                               "Sealed records read by the monitor, by kind.", ["kind"],
                               registry=registry)
        self.events = Counter("sealtrail_monitor_events_total",
                              "Accepted events by emitting service and event type.",
                              ["service", "event_type"], registry=registry)
        self.rejections = Counter("sealtrail_monitor_rejections_total",
                                  "Rejected raw records by reason.", ["reason"],
                                  registry=registry)
        self.redactions = Counter("sealtrail_monitor_redactions_total",
                                  "Fields transformed by the redaction policy, by service "
                                  "and action.", ["service", "action"], registry=registry)
        self.schema_ids = Counter("sealtrail_monitor_schema_id_records_total",
                                  "Sealed records by raw writer schema id.", ["schema_id"],
                                  registry=registry)
        self.undecodable = Counter("sealtrail_monitor_undecodable_total",
                                   "Records on the sealed topic the monitor could not decode.",
                                   registry=registry)
        self.ingest_delay = Histogram("sealtrail_monitor_ingest_delay_seconds",
                                      "ingested_at - occurred_at per accepted event: emit "
                                      "to seal latency, or clock skew.", ["service"],
                                      buckets=DELAY_BUCKETS, registry=registry)
        self.pipeline_delay = Histogram("sealtrail_monitor_pipeline_delay_seconds",
                                        "Monitor wall clock - ingested_at: seal to "
                                        "committed-on-sealed-topic latency.",
                                        buckets=DELAY_BUCKETS, registry=registry)
        self.firing = Gauge("sealtrail_monitor_alert_firing",
                            "1 while an alert fires, by alert and subject.",
                            ["alert", "subject"], registry=registry)
        self.transitions = Counter("sealtrail_monitor_alerts_total",
                                   "Alert transitions written to the alerts topic.",
                                   ["alert", "state"], registry=registry)
        self.checkpoint_age = Gauge("sealtrail_monitor_checkpoint_age_seconds",
                                    "Age of each chain's newest archived checkpoint.",
                                    ["chain"], registry=registry)
        self.lag = lag_gauge(registry)

    def observe(self, record: dict[str, Any], wall_us: int) -> None:
        self.records.labels(record["kind"]).inc()
        schema_id = (record.get("source") or {}).get("schema_id")
        if schema_id is not None:
            self.schema_ids.labels(str(schema_id)).inc()
        self.pipeline_delay.observe(max(0, wall_us - record["ingested_at"]) / 1e6)
        if record["kind"] == "REJECTION":
            self.rejections.labels((record.get("rejection") or {}).get("reason", "UNKNOWN")
                                   ).inc()
            return
        event = record["event"]
        service = event["origin"]["service"]
        self.events.labels(service, event["event_type"]).inc()
        self.ingest_delay.labels(service).observe(
            abs(record["ingested_at"] - event["occurred_at"]) / 1e6)
        for entry in (record.get("redaction") or {}).get("fields", []):
            self.redactions.labels(service, str(entry).rsplit("=", 1)[-1]).inc()

    def alert(self, alert: Alert) -> None:
        self.transitions.labels(alert.name, alert.state).inc()
        self.firing.labels(alert.name, alert.subject).set(1 if alert.state == "FIRING" else 0)


def ensure_alerts_topic(settings: Settings, timeout: float = 15.0) -> None:
    """Create the alerts topic (one partition: alerts are few and ordered) if missing."""
    admin = AdminClient(kafka_config(settings))
    try:
        if settings.alerts_topic in admin.list_topics(timeout=timeout).topics:
            return
        for _topic, future in admin.create_topics(
                [NewTopic(settings.alerts_topic, 1, 1)]).items():
            try:
                future.result(timeout)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    except KafkaException as exc:
        raise TransportError(f"cannot create topic {settings.alerts_topic}: {exc}") from None


# faust reads read_uncommitted unless it runs exactly_once itself (which needs an
# idempotent aiokafka producer, refused by the embedded broker); the sealer writes in
# transactions, so the monitor must not count records of aborted ones. faust offers no
# public setting for the isolation level, so these three overrides of faust's and
# aiokafka's private hooks set it (docs/architecture.md, "The monitor and faust"). The
# versions are pinned in pyproject.toml; _check_hooks() refuses to start on a version
# without them, and tests/integration/monitor/test_monitor.py checks the consumer faust builds.
_HOOKS = ((faust.App, "_new_transport"), (_aiokafka.Consumer, "_new_consumer_thread"),
          (_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer"))


def _check_hooks() -> None:
    missing = [f"{cls.__name__}.{name}" for cls, name in _HOOKS if not hasattr(cls, name)]
    if missing:
        raise ConfigError(
            f"this faust-streaming/aiokafka version lacks {', '.join(missing)}, which the "
            "monitor needs to read the sealed topic read_committed; install the versions "
            "pinned in sealtrail's pyproject.toml")


class _ReadCommittedThread(_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        if not hasattr(consumer, "_isolation_level"):
            raise ConfigError("this aiokafka version keeps no _isolation_level; install the "
                              "version pinned in sealtrail's pyproject.toml")
        consumer._isolation_level = "read_committed"  # read by aiokafka's start()
        return consumer


class _ReadCommittedConsumer(_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _aiokafka.AIOKafkaConsumerThread:
        return _ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)


class _ReadCommittedTransport(_aiokafka.Transport):
    Consumer = _ReadCommittedConsumer


class _MonitorApp(faust.App):
    def _new_transport(self) -> Any:
        return _ReadCommittedTransport(self.conf.broker_consumer, self, loop=self.loop)


def _credentials(settings: Settings) -> dict[str, Any]:
    """faust's form of the Kafka security settings (SASL over aiokafka)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    if not protocol.startswith("SASL_"):
        raise ConfigError(f"the monitor supports PLAINTEXT, SASL_PLAINTEXT and SASL_SSL, not "
                          f"{protocol}")
    import ssl

    return {"broker_credentials": faust.SASLCredentials(
        username=settings.kafka_sasl_username, password=settings.kafka_sasl_password,
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=ssl.create_default_context() if protocol == "SASL_SSL" else None)}


def build_app(settings: Settings, registry: CollectorRegistry, health: Health) -> faust.App:
    """The faust app of the monitor; run it with ``faust.Worker(app).execute_from_...``."""
    _check_hooks()
    thresholds = Thresholds.from_settings(settings)
    monitor = Monitor(thresholds)
    metrics = MonitorMetrics(registry)
    logging.getLogger("sealtrail").addHandler(LogCounter(registry))
    writers = WriterSchemas(registry_client(settings.registry_url, settings.registry_auth))
    app = _MonitorApp(
        settings.monitor_group,
        broker=[f"kafka://{b.strip()}" for b in settings.bootstrap.split(",")],
        processing_guarantee="at_least_once",
        store="memory://",
        datadir=str(settings.home / "monitor"),  # faust's own files; default is the cwd
        web_enabled=False,
        autodiscover=False,
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_ms / 3000),
        consumer_auto_offset_reset="latest",
        topic_replication_factor=1,
        topic_allow_declare=False,
        producer_acks=-1,
        **_credentials(settings),
    )
    sealed = app.topic(settings.sealed_topic, value_serializer="raw", key_serializer="raw")
    alerts = app.topic(settings.alerts_topic, value_serializer="raw", key_serializer="raw")
    tick = max(0.2, min(5.0, thresholds.window_seconds / 4))

    @app.agent(sealed)
    async def read_sealed(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            try:
                record, _codec = writers.decode(value)
            except DecodeError as exc:
                metrics.undecodable.inc()
                log.error("sealed record does not decode (%s); not counted", exc)
                continue
            except TransportError as exc:
                log.warning("registry unreachable, record not counted: %s", exc)
                continue
            wall = now_us()
            monitor.observe(record, wall)
            metrics.observe(record, wall)

    async def publish(found: list[Alert]) -> None:
        for alert in found:
            metrics.alert(alert)
            log.log(logging.WARNING if alert.state == "FIRING" else logging.INFO,
                    "alert %s %s [%s]: %s", alert.name, alert.state, alert.subject,
                    alert.detail)
            await alerts.send(key=f"{alert.name}/{alert.subject}".encode(),
                              value=alert.to_json())

    @app.timer(tick)
    async def judge() -> None:
        await publish(monitor.evaluate(now_us()))

    @app.timer(settings.monitor_probe_seconds)
    async def probe() -> None:
        loop = asyncio.get_running_loop()
        try:
            found = await loop.run_in_executor(None, _probe, settings, monitor, metrics)
            health.ok()
        except SealtrailError as exc:
            health.failed(f"probe failed: {exc}")
            log.warning("monitor probe failed: %s", exc)
            return
        await publish(found)

    return app


def _probe(settings: Settings, monitor: Monitor, metrics: MonitorMetrics) -> list[Alert]:
    from sealtrail.archive import open_archive
    from sealtrail.monitor.probes import archive_heads, stage_lags

    now = now_us()
    lags = stage_lags(settings)
    for lag in lags:
        for partition, n in lag.partitions.items():
            metrics.lag.labels(lag.stage, lag.topic, str(partition)).set(n)
    found = monitor.observe_lag({lag.stage: lag.lag for lag in lags}, now)
    try:
        store = open_archive(settings)
        heads = archive_heads(store)
    except Exception as exc:  # the archive is someone else's outage: say so, keep going
        log.warning("cannot read the archive %s: %s", settings.archive, exc)
        return found
    for head in heads:
        metrics.checkpoint_age.labels(head.chain_id).set(max(0, now - head.created_at_us) / 1e6)
    found += monitor.observe_checkpoints({h.chain_id: h.created_at_us for h in heads}, now)
    return found
