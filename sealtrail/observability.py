"""Prometheus metrics and the health endpoints of the long-running processes.

Each process (``sealtrail seal``, ``archive``, ``monitor``) serves, when
``metrics_port`` is set, on one small HTTP server:

* ``GET /metrics``  the Prometheus text format of its registry;
* ``GET /healthz``  200 while the process's main loop runs, 503 after it stopped;
* ``GET /readyz``   200 once the process has reached the broker (its last probe
  succeeded recently), 503 before and while it cannot.

Stage counters are read at scrape time by :class:`AttributeCollector`, so the stage
classes need no metrics code of their own. Metric names are listed in
docs/operations.md. No secret ever goes into a label or a value.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "AttributeCollector",
    "Health",
    "LogCounter",
    "MetricsServer",
    "Prober",
    "StageMetric",
    "StageTelemetry",
    "lag_gauge",
    "start_metrics_server",
]

log = logging.getLogger("sealtrail.observability")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class StageMetric:
    """One value read from a stage object at scrape time."""

    name: str
    help: str
    read: Callable[[], float]
    kind: str = "counter"  # or "gauge"


class AttributeCollector(Collector):
    """Exposes values read from live objects (``sealer.sealed`` ...) at scrape time."""

    def __init__(self, metrics: Iterable[StageMetric], labels: dict[str, str] | None = None
                 ) -> None:
        self._metrics = list(metrics)
        self._labels = dict(labels or {})

    def collect(self) -> Iterator[Metric]:
        names, values = list(self._labels), list(self._labels.values())
        for m in self._metrics:
            try:
                value = float(m.read())
            except Exception:  # a stage mid-construction: skip, never fail the scrape
                continue
            family: CounterMetricFamily | GaugeMetricFamily
            if m.kind == "counter":
                family = CounterMetricFamily(m.name.removesuffix("_total"), m.help,
                                             labels=names)
            else:
                family = GaugeMetricFamily(m.name, m.help, labels=names)
            family.add_metric(values, value)
            yield family


class LogCounter(logging.Handler):
    """Counts WARNING and worse log records by logger and level: errors by kind."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(level=logging.WARNING)
        self.counter = Counter("sealtrail_log_messages_total",
                               "Log records at WARNING or above, by logger and level.",
                               ["logger", "level"], registry=registry)

    def emit(self, record: logging.LogRecord) -> None:
        self.counter.labels(record.name, record.levelname.lower()).inc()


class Health:
    """Liveness and readiness of one process, set by its shell."""

    def __init__(self, ready_for: float = 60.0) -> None:
        self._alive = True
        self._last_ok: float | None = None
        self._ready_for = ready_for
        self._lock = threading.Lock()
        self.reason = "starting"

    def ok(self) -> None:
        """A probe of the broker (or whatever the process depends on) just succeeded."""
        with self._lock:
            self._last_ok = time.monotonic()
            self.reason = "ok"

    def failed(self, reason: str) -> None:
        with self._lock:
            self.reason = reason

    def stopped(self) -> None:
        with self._lock:
            self._alive = False
            self.reason = "stopped"

    @property
    def alive(self) -> bool:
        return self._alive

    @property
    def ready(self) -> bool:
        with self._lock:
            return (self._alive and self._last_ok is not None
                    and time.monotonic() - self._last_ok <= self._ready_for
                    and self.reason == "ok")


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        health = self.server.health
        if path == "/metrics":
            self._send(200, generate_latest(self.server.registry), CONTENT_TYPE)
        elif path == "/healthz":
            self._send(200 if health.alive else 503,
                       b"ok\n" if health.alive else b"stopped\n")
        elif path == "/readyz":
            ready = health.ready
            self._send(200 if ready else 503, f"{'ready' if ready else health.reason}\n"
                       .encode())
        else:
            self._send(404, b"not found: try /metrics, /healthz, /readyz\n")

    def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8"
              ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every few seconds would drown the stage's own log


class MetricsServer(ThreadingHTTPServer):
    """The /metrics, /healthz, /readyz server; runs on a daemon thread."""

    daemon_threads = True

    def __init__(self, host: str, port: int, registry: CollectorRegistry, health: Health
                 ) -> None:
        super().__init__((host, port), _Handler)
        self.registry = registry
        self.health = health
        self._thread = threading.Thread(target=self.serve_forever, name="metrics",
                                        daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def start_metrics_server(host: str, port: int, registry: CollectorRegistry, health: Health
                         ) -> MetricsServer:
    """Serve ``registry`` and ``health`` on ``host:port`` (port 0: any free port)."""
    server = MetricsServer(host, port, registry, health).start()
    log.info("metrics and health on http://%s:%d/metrics (/healthz, /readyz)",
             host, server.port)
    return server


def lag_gauge(registry: CollectorRegistry) -> Gauge:
    return Gauge("sealtrail_consumer_lag", "Records between the stage's committed offset "
                 "and the high watermark, per topic partition.",
                 ["stage", "topic", "partition"], registry=registry)


class Prober:
    """Runs ``probe()`` every ``interval`` seconds on a daemon thread; success marks the
    process ready, an exception marks it not ready (and is logged once per change)."""

    def __init__(self, probe: Callable[[], None], health: Health, interval: float) -> None:
        self._probe = probe
        self._health = health
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)

    def start(self) -> Prober:
        self._thread.start()
        return self

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                self._probe()
                self._health.ok()
                failing = False
            except Exception as exc:
                self._health.failed(f"probe failed: {type(exc).__name__}")
                if not failing:
                    log.warning("health probe failed: %s", exc)
                failing = True
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()


class StageTelemetry:
    """The /metrics, /healthz, /readyz server of one consumer process (sealer, archiver,
    indexer), when ``settings.metrics_port`` is set; a no-op otherwise.

    ``metrics`` are read from the stage at scrape time; the stage's consumer lag on
    ``topic`` for ``group`` is probed in the background, and a successful probe makes the
    process ready. ``server.registry`` takes further collectors. Call ``close()`` when
    the stage's loop returns."""

    def __init__(self, settings: Any, stage: str, group: str, topic: str,
                 metrics: Iterable[StageMetric]) -> None:
        self.server: MetricsServer | None = None
        self.prober: Prober | None = None
        self.health: Health | None = None
        if not settings.metrics_port:
            return
        from sealtrail.monitor.probes import group_lag

        registry = CollectorRegistry()
        registry.register(AttributeCollector(metrics))
        logging.getLogger("sealtrail").addHandler(LogCounter(registry))
        lag = lag_gauge(registry)
        interval = min(15.0, max(1.0, settings.session_timeout_ms / 1000))

        def probe() -> None:
            for partition, n in group_lag(settings, group, topic).items():
                lag.labels(stage, topic, str(partition)).set(n)

        self.health = Health(ready_for=interval * 4)
        self.server = start_metrics_server(settings.metrics_host, settings.metrics_port,
                                           registry, self.health)
        self.prober = Prober(probe, self.health, interval).start()

    def close(self) -> None:
        if self.health is not None:
            self.health.stopped()
        if self.prober is not None:
            self.prober.stop()
        if self.server is not None:
            self.server.stop()
