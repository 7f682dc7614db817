"""Producer throughput and caller-thread latency, against the stock confluent-kafka
``SerializingProducer`` + ``AvroSerializer`` producing the same events to the same
embedded broker in the same run.

Figures:
- ``producer.emit_vs_stock``: our events/s ÷ stock events/s, each timed from the first
  call to the last acknowledgement (emit loop + flush); best of ``ROUNDS`` alternating runs;
- ``producer.caller_vs_stock``: the same ratio for the caller's loop only (no flush);
- ``producer.emit_p50_us`` / ``emit_p99_us``: our emit() on the caller's thread, broker up;
- ``producer.stock_p50_us`` / ``stock_p99_us``: the stock produce() call, broker up;
- ``producer.spooled_p50_us`` / ``spooled_p99_us``: our emit() with the broker
  unreachable and the spool engaged (in-memory queue full, events go to the spool only).

``BENCH_PRODUCER_EVENTS`` sets the number of events per run (default 30000).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import SerializingProducer
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import StringSerializer

from sealtrail import schemas
from sealtrail.config import Settings
from sealtrail.core.envelope import strip_logical_types
from sealtrail.kafka.admin import ensure_topics
from sealtrail.producers import AuditClient
from sealtrail.runtime import dev
from sealtrail.schemas.registry_client import registry_client

ROUNDS = 3
PRODUCER_CONF: dict[str, Any] = {
    "enable.idempotence": True, "acks": "all", "linger.ms": 5, "compression.type": "lz4",
    "queue.buffering.max.messages": 100_000,
}


def _params(n: int) -> list[dict[str, Any]]:
    return [{
        "event_type": "record.read", "action": "read", "actor_id": f"u-{i % 200:04d}",
        "resource_type": "customer", "resource_id": f"customer-{i}",
        "source_ip": "203.0.113.7", "request_id": f"req-{i}", "tenant": "tenant-1",
        "attributes": {"ticket": f"T-{i}"},
    } for i in range(n)]


def _envelope(p: dict[str, Any]) -> dict[str, Any]:
    """The dict a stock-producer user builds for the same event."""
    return {
        "event_id": str(uuid.uuid4()), "event_type": p["event_type"], "action": p["action"],
        "occurred_at": time.time_ns() // 1000,
        "actor": {"id": p["actor_id"], "type": "user", "principal": None},
        "origin": {"service": "bench", "instance": "bench-1", "service_version": None,
                   "environment": None, "source_ip": p["source_ip"], "user_agent": None,
                   "request_id": p["request_id"], "trace_id": None},
        "resource": {"type": p["resource_type"], "id": p["resource_id"]},
        "outcome": "SUCCESS", "reason": None, "authorization": None,
        "tenant": p["tenant"], "classification": "INTERNAL", "attributes": p["attributes"],
    }


def _stock(settings: Settings, topic: str, params: list[dict[str, Any]]
           ) -> tuple[float, float, list[int]]:
    schema = json.dumps(strip_logical_types(schemas.load(schemas.AUDIT_EVENT)))
    serializer = AvroSerializer(registry_client(settings.registry_url), schema)
    producer = SerializingProducer({
        "bootstrap.servers": settings.bootstrap, **PRODUCER_CONF,
        "key.serializer": StringSerializer(), "value.serializer": serializer,
    })
    producer.produce(topic, key="warm", value=_envelope(params[0]))
    producer.flush(30)
    lat: list[int] = []
    clock = time.perf_counter_ns
    start = time.perf_counter()
    for p in params:
        t0 = clock()
        value = _envelope(p)
        while True:
            try:
                producer.produce(topic, key=p["actor_id"], value=value)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
        lat.append(clock() - t0)
    caller = time.perf_counter() - start
    assert producer.flush(60) == 0, "stock producer did not deliver everything"
    return caller, time.perf_counter() - start, lat


def _ours(settings: Settings, topic: str, params: list[dict[str, Any]], spool: Path
          ) -> tuple[float, float, list[int]]:
    with AuditClient(service="bench", bootstrap=settings.bootstrap,
                     registry_url=settings.registry_url, topic=topic, instance="bench-1",
                     spool_dir=spool, spool_max_bytes=1 << 30) as client:
        client.emit(**params[0])
        client.flush(30)
        lat: list[int] = []
        clock = time.perf_counter_ns
        start = time.perf_counter()
        for p in params:
            t0 = clock()
            client.emit(**p)
            lat.append(clock() - t0)
        caller = time.perf_counter() - start
        assert client.flush(60) == 0, "AuditClient did not deliver everything"
        return caller, time.perf_counter() - start, lat


def _spooled(settings: Settings, params: list[dict[str, Any]], spool: Path) -> list[int]:
    """emit() latency with nothing listening at the bootstrap address."""
    dead = f"127.0.0.1:{dev.free_port()}"
    with AuditClient(service="bench-spooled", bootstrap=dead,
                     registry_url=settings.registry_url, topic="bench-spooled",
                     spool_dir=spool, spool_max_bytes=1 << 30,
                     producer_config={"queue.buffering.max.messages": 1000}) as client:
        for p in params[:2000]:  # fill the in-memory queue: the spool takes over
            client.emit(**p)
        lat = []
        clock = time.perf_counter_ns
        for p in params:
            t0 = clock()
            client.emit(**p)
            lat.append(clock() - t0)
        client.close(timeout=0)
    return lat


def _pct(lat: list[int], q: float) -> float:
    return round(statistics.quantiles(lat, n=100)[int(q) - 1] / 1000, 1)


def run() -> dict[str, object]:
    n = int(os.environ.get("BENCH_PRODUCER_EVENTS", "30000"))
    params = _params(n)
    with tempfile.TemporaryDirectory(prefix="bench-producer-") as tmp:
        home = Path(tmp)
        stack = dev.start_stack(home)
        try:
            settings = Settings(home=home, bootstrap=stack.bootstrap,
                                registry_url=stack.registry)
            best_stock: tuple[float, float, list[int]] | None = None
            best_ours: tuple[float, float, list[int]] | None = None
            for r in range(ROUNDS):
                for name in ("stock", "ours"):
                    topic = f"bench-{name}-{r}"
                    ensure_topics(Settings(bootstrap=stack.bootstrap, raw_topic=topic,
                                           sealed_topic=f"{topic}-s", dlq_topic=f"{topic}-d"))
                    if name == "stock":
                        res = _stock(settings, topic, params)
                        if best_stock is None or res[1] < best_stock[1]:
                            best_stock = res
                    else:
                        res = _ours(settings, topic, params, home / f"spool-{r}")
                        if best_ours is None or res[1] < best_ours[1]:
                            best_ours = res
            spooled = _spooled(settings, params, home / "spool-dead")
        finally:
            dev.stop_stack(home)
    assert best_stock is not None and best_ours is not None
    return {
        "producer.events": n,
        "producer.emit_vs_stock": round(best_stock[1] / best_ours[1], 2),
        "producer.caller_vs_stock": round(best_stock[0] / best_ours[0], 2),
        "producer.ours_events_per_s": round(n / best_ours[1]),
        "producer.stock_events_per_s": round(n / best_stock[1]),
        "producer.emit_p50_us": _pct(best_ours[2], 50),
        "producer.emit_p99_us": _pct(best_ours[2], 99),
        "producer.stock_p50_us": _pct(best_stock[2], 50),
        "producer.stock_p99_us": _pct(best_stock[2], 99),
        "producer.spooled_p50_us": _pct(spooled, 50),
        "producer.spooled_p99_us": _pct(spooled, 99),
    }
