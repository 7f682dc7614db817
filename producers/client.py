"""AuditClient: what a service calls to emit audit events.

``emit()`` does bounded work on the caller's thread (build, validate, encode,
enqueue into librdkafka's in-memory queue) and never waits on the network;
delivery happens on librdkafka's threads. See docs/producer.md.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError

from sealtrail import schemas
from sealtrail.config import Settings
from sealtrail.core.avro import AvroCodec, frame
from sealtrail.core.envelope import check_event
from sealtrail.errors import ConfigError, SealtrailError, TransportError
from sealtrail.registry_client import registry_client

__all__ = ["AuditClient", "EmitBackpressureError"]

log = logging.getLogger("sealtrail.producer")

OUTCOMES = ("SUCCESS", "FAILURE", "DENIED", "ERROR", "UNKNOWN")


class EmitBackpressureError(SealtrailError):
    """The in-memory send queue is full: the broker is not keeping up or is down.
    The event was not accepted; the caller decides whether to retry or fail."""


class AuditClient:
    """Emits AuditEvents to the raw topic; usable as a context manager.

    >>> with AuditClient.from_settings(settings, service="billing") as audit:
    ...     audit.emit("record.read", "read", actor_id="u-1",
    ...                resource_type="invoice", resource_id="inv-9")
    """

    def __init__(
        self,
        *,
        service: str,
        bootstrap: str,
        registry_url: str,
        topic: str = "audit.raw",
        instance: str | None = None,
        service_version: str | None = None,
        environment: str | None = None,
        registry_auth: str = "",
        producer_config: Mapping[str, Any] | None = None,
    ) -> None:
        if not service:
            raise ConfigError("AuditClient needs the emitting service's name (service=...)")
        if not bootstrap:
            raise ConfigError("AuditClient needs a Kafka bootstrap address (bootstrap=...)")
        self.topic = topic
        self._origin = {
            "service": service,
            "instance": instance or f"{socket.gethostname()}:{os.getpid()}",
            "service_version": service_version,
            "environment": environment,
        }
        self._codec = AvroCodec(schemas.load(schemas.AUDIT_EVENT))
        self.schema_id = self._register(registry_url, registry_auth)
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 200_000,
            "error_cb": self._on_error,
        }
        conf.update(producer_config or {})
        try:
            self._producer = Producer(conf)
        except KafkaException as exc:
            raise ConfigError(f"invalid producer configuration: {exc}") from None
        self._lock = threading.Lock()
        self.delivered = 0
        self.failed = 0
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings, *, service: str, **kwargs: Any) -> AuditClient:
        """A client for the configured (or embedded) broker and registry."""
        s = settings.require_endpoints()
        return cls(
            service=service,
            bootstrap=s.bootstrap,
            registry_url=s.registry_url,
            registry_auth=s.registry_auth,
            topic=s.raw_topic,
            **kwargs,
        )

    def _register(self, url: str, auth: str) -> int:
        if not url:
            raise ConfigError("AuditClient needs a schema registry URL (registry_url=...)")
        schema = Schema(self._codec_schema_text(), "AVRO")
        try:
            return int(registry_client(url, auth).register_schema(f"{self.topic}-value", schema))
        except SchemaRegistryError as exc:
            raise TransportError(
                f"schema registry at {url} refused the AuditEvent schema: {exc}"
            ) from None
        except Exception as exc:  # requests/httpx connection errors
            raise TransportError(
                f"schema registry at {url} is unreachable: {type(exc).__name__}"
            ) from None

    def _codec_schema_text(self) -> str:
        import json

        return json.dumps(self._codec.schema)

    def _on_error(self, err: KafkaError) -> None:
        log.warning("kafka producer: %s", err)

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1
            log.error("audit event not delivered: %s", err)

    def emit(
        self,
        event_type: str,
        action: str,
        *,
        actor_id: str,
        resource_type: str,
        resource_id: str,
        actor_type: str = "user",
        principal: str | None = None,
        outcome: str = "SUCCESS",
        reason: str | None = None,
        source_ip: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
        trace_id: str | None = None,
        tenant: str | None = None,
        classification: str = "INTERNAL",
        decision: str | None = None,
        policy: str | None = None,
        permissions: Sequence[str] = (),
        attributes: Mapping[str, str] | None = None,
        event_id: str | None = None,
        occurred_at: int | None = None,
    ) -> str:
        """Validate, encode and enqueue one event; returns its event_id.

        Raises EventValidationError (naming the field) for a bad event, and
        EmitBackpressureError when the send queue is full. Never blocks on the network.
        """
        event = {
            "event_id": event_id or str(uuid.uuid4()),
            "event_type": event_type,
            "action": action,
            "occurred_at": occurred_at if occurred_at is not None else time.time_ns() // 1000,
            "actor": {"id": actor_id, "type": actor_type, "principal": principal},
            "origin": {
                **self._origin,
                "source_ip": source_ip,
                "user_agent": user_agent,
                "request_id": request_id,
                "trace_id": trace_id,
            },
            "resource": {"type": resource_type, "id": resource_id},
            "outcome": outcome,
            "reason": reason,
            "authorization": None if decision is None else {
                "decision": decision, "policy": policy, "permissions": list(permissions),
            },
            "tenant": tenant,
            "classification": classification,
            "attributes": dict(attributes or {}),
        }
        return self.emit_event(event)

    def emit_event(self, event: dict[str, Any]) -> str:
        """Emit a complete AuditEvent dict (the envelope as in schemas/)."""
        if self._closed:
            raise SealtrailError("AuditClient is closed")
        self._codec.validate(event)
        check_event(event)
        value = frame(self.schema_id, self._codec.encode(event))
        key = event["actor"]["id"].encode("utf-8")
        try:
            self._producer.produce(self.topic, value, key, on_delivery=self._on_delivery)
        except BufferError:
            self._producer.poll(0)
            try:
                self._producer.produce(self.topic, value, key, on_delivery=self._on_delivery)
            except BufferError:
                raise EmitBackpressureError(
                    "the send queue is full (broker slow or unreachable); event "
                    f"{event['event_id']} was not accepted"
                ) from None
        self._producer.poll(0)
        return str(event["event_id"])

    def flush(self, timeout: float = 30.0) -> int:
        """Wait up to ``timeout`` s for queued events to be delivered; returns how many remain."""
        return int(self._producer.flush(timeout))

    def close(self, timeout: float = 30.0) -> None:
        """Flush and stop accepting events. Logs how many were left undelivered."""
        if self._closed:
            return
        remaining = self.flush(timeout)
        self._closed = True
        if remaining:
            log.error("AuditClient closed with %d events undelivered", remaining)

    def __enter__(self) -> AuditClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
