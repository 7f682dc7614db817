"""Raw traffic for the monitor and status tests, produced without AuditClient so the tests
control services, schema ids, clocks and garbage exactly."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema

from sealtrail import schemas
from sealtrail.config import Settings
from sealtrail.core.avro import AvroCodec, frame
from sealtrail.schemas.registry_client import registry_client


def audit_event(service: str, i: int, occurred_at: int | None = None) -> dict[str, Any]:
    """A complete, valid AuditEvent from ``service``."""
    return {
        "event_id": uuid.uuid4().hex,
        "event_type": "record.read" if i % 2 else "auth.login",
        "action": "read" if i % 2 else "login",
        "occurred_at": time.time_ns() // 1000 if occurred_at is None else occurred_at,
        "actor": {"id": f"u-{i % 7}", "type": "user", "principal": None},
        "origin": {"service": service, "instance": f"{service}-0", "service_version": None,
                   "environment": "test", "source_ip": "203.0.113.9", "user_agent": None,
                   "request_id": f"req-{i}", "trace_id": None},
        "resource": {"type": "customer", "id": f"c-{i}"},
        "outcome": "SUCCESS",
        "reason": None,
        "authorization": None,
        "tenant": "t-1",
        "classification": "INTERNAL",
        "attributes": {"email": "someone@example.com"},
    }


def v2_schema() -> dict[str, Any]:
    """AuditEvent with one more optional field: a compatible new writer version."""
    schema = schemas.load(schemas.AUDIT_EVENT)
    schema = json.loads(json.dumps(schema))
    schema["fields"].append({"name": "sla_tier", "type": ["null", "string"], "default": None})
    return schema


class Emitter:
    """Services emitting at a steady rate on a background thread; ``stop(service)``
    silences one of them."""

    def __init__(self, settings: Settings, services: list[str], per_second: float) -> None:
        self.settings = settings
        self.services = list(services)
        self.per_second = per_second
        reg = registry_client(settings.registry_url)
        self.codec = AvroCodec(schemas.load(schemas.AUDIT_EVENT))
        self.schema_id = reg.register_schema(
            f"{settings.raw_topic}-value", Schema(json.dumps(self.codec.schema), "AVRO"))
        self.producer = Producer({"bootstrap.servers": settings.bootstrap, "linger.ms": 5})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.sent = 0

    def start(self) -> Emitter:
        self._thread.start()
        return self

    def stop_service(self, service: str) -> None:
        self.services.remove(service)

    def switch_schema(self, schema: dict[str, Any]) -> int:
        """Emit with ``schema`` (registered under the raw subject) from now on."""
        reg = registry_client(self.settings.registry_url)
        codec = AvroCodec(schema)
        schema_id = reg.register_schema(f"{self.settings.raw_topic}-value",
                                        Schema(json.dumps(schema), "AVRO"))
        self.codec, self.schema_id = codec, schema_id
        return schema_id

    def send(self, values: list[bytes]) -> None:
        for v in values:
            self.producer.produce(self.settings.raw_topic, v, b"garbage")
        self.producer.flush(10)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            for service in list(self.services):
                event = audit_event(service, i)
                if "sla_tier" in {f["name"] for f in self.codec.schema["fields"]}:
                    event["sla_tier"] = "gold"
                self.producer.produce(self.settings.raw_topic,
                                      frame(self.schema_id, self.codec.encode(event)),
                                      service.encode())
                self.sent += 1
            i += 1
            self.producer.poll(0)
            time.sleep(1 / self.per_second)
        self.producer.flush(10)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
