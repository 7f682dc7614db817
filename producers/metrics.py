"""Prometheus metrics of one AuditClient, in a registry of its own (or one you pass).

Labels carry only the service name and the topic; never event content or credentials.
Expose them with ``prometheus_client.start_http_server(port, registry=client.metrics.registry)``
or collect them into your app's registry by passing ``registry=`` to the client.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

__all__ = ["ProducerMetrics"]

_LATENCY_BUCKETS = (5e-6, 10e-6, 20e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 25e-3, 0.1,
                    0.5, 1.0)
_DELIVERY_BUCKETS = (1e-3, 5e-3, 10e-3, 25e-3, 50e-3, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                     30.0, 60.0, 300.0)


class ProducerMetrics:
    """Counters, gauges and histograms of the producer client."""

    def __init__(self, service: str, topic: str,
                 registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        labels = {"service": service, "topic": topic}
        names = list(labels)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, names, registry=self.registry).labels(**labels)

        self.counts = _Counts(labels)
        self.registry.register(self.counts)
        self.rejected = Counter("sealtrail_producer_rejected",
                                "Events emit() refused, by reason (invalid, spool_full).",
                                [*names, "reason"], registry=self.registry)
        self.spool_depth = gauge("sealtrail_producer_spool_depth",
                                 "Events in the local spool not yet acknowledged.")
        self.spool_bytes = gauge("sealtrail_producer_spool_bytes",
                                 "Bytes of the local spool on disk.")
        self.queue_depth = gauge("sealtrail_producer_queue_depth",
                                 "Events in librdkafka's in-memory queue.")
        self.emit_latency = Histogram(
            "sealtrail_producer_emit_seconds", "Time emit() spends on the caller's thread.",
            names, buckets=_LATENCY_BUCKETS, registry=self.registry).labels(**labels)
        self.delivery_latency = Histogram(
            "sealtrail_producer_delivery_seconds",
            "Time from handing an event to librdkafka to the broker's acknowledgement.",
            names, buckets=_DELIVERY_BUCKETS, registry=self.registry).labels(**labels)
        self._labels = labels

    def reject(self, reason: str) -> None:
        self.rejected.labels(**self._labels, reason=reason).inc()


class _Counts(Collector):
    """Hot-path counters as plain integers (one increment costs nothing measurable),
    exported as Prometheus counters when scraped."""

    _DOCS = {
        "emitted": "Events accepted by emit() (validated, encoded, spooled).",
        "delivered": "Events the broker acknowledged.",
        "failed": "Delivery attempts the broker did not acknowledge (the event stays in "
                  "the spool and is sent again).",
        "spooled": "Events that went to the spool only, because the broker was unreachable "
                   "or the in-memory queue was full.",
    }

    def __init__(self, labels: dict[str, str]) -> None:
        self.emitted = 0
        self.delivered = 0
        self.failed = 0
        self.spooled = 0
        self._labels = labels

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name, doc in self._DOCS.items():
            family = CounterMetricFamily(f"sealtrail_producer_{name}", doc,
                                         labels=list(self._labels))
            family.add_metric(list(self._labels.values()), getattr(self, name))
            yield family
