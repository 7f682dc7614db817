"""AuditClient: what a service calls to emit audit events.

``emit()`` does bounded work on the caller's thread: build, validate and encode the
event, append it to the durable local spool (a copy into a mapped file), and hand it to
librdkafka's in-memory queue. It never waits on the network. A background thread
(:mod:`.delivery`) serves delivery reports, sends what the spool holds when the broker
was unreachable or the queue was full (oldest first, before anything newer), and fsyncs
the spool. See docs/producer.md.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from sealtrail import schemas
from sealtrail.config import Settings
from sealtrail.core.avro import AvroCodec, frame
from sealtrail.errors import ConfigError, EventValidationError
from sealtrail.kafka.client import security_config
from sealtrail.producers.avro_encoder import UnsupportedSchemaError, compile_encoder
from sealtrail.producers.delivery import (  # noqa: F401  (re-exported)
    DRAIN_BATCH,
    STALL_SECONDS,
    Delivery,
)
from sealtrail.producers.envelope import (  # noqa: F401  (re-exported)
    OUTCOMES,
    build_event,
    encode_event,
    new_event_id,
    normalise_enums,
)
from sealtrail.producers.errors import ClientClosedError, EmitBackpressureError, SpoolFullError
from sealtrail.producers.instrument import EventBuilder, audited
from sealtrail.producers.metrics import ProducerMetrics
from sealtrail.producers.spool import Spool, open_slot
from sealtrail.producers.startup import check_bootstrap, register_schema, safe_name

__all__ = ["OUTCOMES", "AuditClient", "ClientClosedError", "EmitBackpressureError",
           "SpoolFullError"]

log = logging.getLogger("sealtrail.producer")

_fork_generation = 0
"""Incremented in every forked child: a client compares it with its own instead of
calling os.getpid() (a system call) in every emit()."""


def _forked() -> None:
    global _fork_generation
    _fork_generation += 1


os.register_at_fork(after_in_child=_forked)

FULL_POLICIES = ("fail", "block")
MAX_EVENT_BYTES = 256 * 1024


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
        spool_dir: str | os.PathLike[str] | None = None,
        spool_max_bytes: int = 256 * 1024 * 1024,
        spool_full: str = "fail",
        spool_block_seconds: float = 1.0,
        fsync: str = "interval",
        fsync_interval: float = 0.2,
        max_event_bytes: int = MAX_EVENT_BYTES,
        metrics_registry: CollectorRegistry | None = None,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        if not service or not service.strip():
            raise ConfigError("AuditClient needs the emitting service's name (service=...)")
        check_bootstrap(bootstrap)
        if not registry_url:
            raise ConfigError("AuditClient needs a schema registry URL (registry_url=...)")
        if spool_full not in FULL_POLICIES:
            raise ConfigError(f"spool_full={spool_full!r}: choose one of {FULL_POLICIES}")
        if spool_block_seconds < 0 or fsync_interval <= 0:
            raise ConfigError("spool_block_seconds must be >= 0 and fsync_interval > 0")
        self.topic = topic
        self.service = service
        self._origin = {
            "service": service,
            "instance": instance or f"{socket.gethostname()}:{os.getpid()}",
            "service_version": service_version,
            "environment": environment,
        }
        self._codec = AvroCodec(schemas.load(schemas.AUDIT_EVENT))
        try:  # fastavro's bytes, 4x faster; fastavro itself for anything unexpected
            self._fast_encode: Any = compile_encoder(self._codec.schema)
        except UnsupportedSchemaError:
            self._fast_encode = None
        self.schema_id = register_schema(self._codec.schema, topic, registry_url, registry_auth)
        self._header = frame(self.schema_id, b"")
        self._max_event_bytes = max_event_bytes
        self._full_policy = spool_full
        self._block_seconds = spool_block_seconds
        self.metrics = ProducerMetrics(service, topic, metrics_registry)

        base = Path(spool_dir) if spool_dir else Path(".sealtrail") / "spool"
        self.spool_dir, self._lock_fd = open_slot(base / f"{safe_name(service)}.{safe_name(topic)}")
        try:
            self._spool = Spool(self.spool_dir, max_bytes=spool_max_bytes, fsync=fsync)
        except OSError as exc:
            os.close(self._lock_fd)
            raise ConfigError(f"cannot open the spool {self.spool_dir}: {exc.strerror}") \
                from None
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._delivery = Delivery(
            spool=self._spool, metrics=self.metrics, topic=topic, bootstrap=bootstrap,
            client_id=f"sealtrail-producer-{safe_name(service)}",
            producer_config=producer_config, fsync_interval=fsync_interval,
            stall_seconds=stall_seconds, thread_name=f"sealtrail-producer-{service}")
        self._lock = self._delivery.lock
        self._cond = self._delivery.cond
        self._fork_generation = _fork_generation
        self._closed = False
        self._last_full_log = 0.0
        if self._spool.recovered:
            log.warning("spool %s holds %d undelivered events from an earlier run; "
                        "sending them before new events", self.spool_dir, self._spool.recovered)
        self._delivery.start()

    @classmethod
    def from_settings(cls, settings: Settings, *, service: str, **kwargs: Any) -> AuditClient:
        """A client for the configured (or embedded) broker, registry and spool."""
        s = settings.require_endpoints()
        options: dict[str, Any] = {
            "spool_dir": s.producer_spool_dir or s.home / "spool",
            "spool_max_bytes": s.producer_spool_max_bytes,
            "spool_full": s.producer_spool_full,
            "spool_block_seconds": s.producer_spool_block_seconds,
            "fsync": s.producer_fsync,
            "fsync_interval": s.producer_fsync_interval,
            "max_event_bytes": s.max_event_bytes,
        }
        security = security_config(s)
        if security:
            given = kwargs.pop("producer_config", None) or {}
            options["producer_config"] = {**security, **given}
        options.update(kwargs)
        return cls(service=service, bootstrap=s.bootstrap, registry_url=s.registry_url,
                   registry_auth=s.registry_auth, topic=s.raw_topic, **options)

    # -- emit --------------------------------------------------------------------------

    def emit(
        self,
        event_type: str,
        action: str,
        *,
        resource_type: str,
        resource_id: str,
        actor_id: str | None = None,
        actor_type: str | None = None,
        principal: str | None = None,
        on_behalf_of: str | None = None,
        session_id: str | None = None,
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
        actor_name: str | None = None,
        actor_email: str | None = None,
        instance: str | None = None,
        service_version: str | None = None,
    ) -> str:
        """Validate, encode, spool and enqueue one event; returns its event_id.

        Fields not given come from the bound request context (:mod:`.context`): actor
        (with its display name and e-mail), request id, source ip, user agent, trace id,
        tenant. ``instance`` and ``service_version`` override the client's for this event.
        ``outcome``, ``decision`` and ``classification`` (PUBLIC, INTERNAL, CONFIDENTIAL,
        RESTRICTED, PII, PHI, PCI) are accepted in any case. Raises EventValidationError
        (naming the field) for a bad event, SpoolFullError when the spool is full and the
        full-spool policy gives up. Never waits on the network.
        """
        try:
            event, checked = build_event(  # by position: see build_event
                self._origin, event_type, action, resource_type, resource_id, actor_id,
                actor_type, principal, on_behalf_of, session_id, outcome, reason, source_ip,
                user_agent, request_id, trace_id, tenant, classification, decision, policy,
                permissions, attributes, event_id, occurred_at, actor_name, actor_email,
                instance, service_version)
        except EventValidationError:
            self.metrics.reject("invalid")
            raise
        return self._accept(event, strict=False, checked=checked)

    def emit_event(self, event: dict[str, Any]) -> str:
        """Emit a complete AuditEvent dict (the envelope as in schemas/); every field is
        checked against the schema, unknown keys included. Enum values are accepted in any
        case (normalised in place)."""
        normalise_enums(event)
        return self._accept(event, strict=True, checked=False)

    def _accept(self, event: dict[str, Any], *, strict: bool, checked: bool) -> str:
        start = time.perf_counter()
        if self._closed:
            raise ClientClosedError("AuditClient is closed; create a new one to emit")
        if self._fork_generation != _fork_generation:
            raise ConfigError("this AuditClient was created before a fork; create one in "
                              "each process (after the fork), e.g. in a worker init hook")
        try:
            body = encode_event(self._codec, event, strict=strict, checked=checked,
                                max_bytes=self._max_event_bytes, fast=self._fast_encode)
        except EventValidationError:
            self.metrics.reject("invalid")
            raise
        value = self._header + body
        key = event["actor"]["id"].encode("utf-8")
        with self._lock:  # the Condition's lock, taken directly: cheaper on the hot path
            if not self._spool.has_room(len(value) + len(key)):
                self._wait_for_room(len(value) + len(key), event["event_id"])
            try:
                pos = self._spool.append(key, value)
            except OSError as exc:  # disk full, spool directory gone: fail closed, loudly
                self.metrics.reject("spool_error")
                log.error("cannot write the audit spool %s: %s", self.spool_dir, exc.strerror)
                raise SpoolFullError(
                    f"cannot write the audit spool {self.spool_dir} ({exc.strerror}); event "
                    f"{event['event_id']} was not accepted") from None
            self._delivery.send(pos, key, value)
        counts = self.metrics.counts
        counts.emitted += 1
        if not counts.emitted & 3:  # a 1-in-4 sample keeps the histogram off the hot path
            self.metrics.emit_latency.observe(time.perf_counter() - start)
        return str(event["event_id"])

    def _wait_for_room(self, nbytes: int, event_id: str) -> None:
        """Apply the full-spool policy; called with the lock held."""
        deadline = time.monotonic() + (self._block_seconds if self._full_policy == "block"
                                       else 0.0)
        self._delivery.waiters += 1
        try:
            self._delivery.settle()
            while not self._spool.has_room(nbytes):
                left = deadline - time.monotonic()
                if left <= 0:
                    self.metrics.reject("spool_full")
                    now = time.monotonic()
                    if now - self._last_full_log > 10:
                        self._last_full_log = now
                        log.error("audit spool %s is full (%d bytes, %d events): emit() "
                                  "refuses events (policy %s)", self.spool_dir,
                                  self._spool.total_bytes, self._spool.depth, self._full_policy)
                    raise SpoolFullError(
                        f"audit spool {self.spool_dir} is full ({self._spool.total_bytes} "
                        f"bytes, limit {self._spool.max_bytes}); event {event_id} was not "
                        f"accepted (policy {self._full_policy!r}). The broker has not "
                        "acknowledged spooled events: check the connection, or raise "
                        "spool_max_bytes")
                self._cond.wait(left)
        finally:
            self._delivery.waiters -= 1

    def record(self, event_type: str, action: str, *, resource_type: str,
               resource_id: Any = None, failures: tuple[type[BaseException], ...] = (),
               **fields: Any) -> audited:
        """A context manager / decorator that emits one event when the action ends, with
        its outcome (see :class:`sealtrail.producers.instrument.audited`)."""
        return audited(self, event_type, action, resource_type=resource_type,
                       resource_id=resource_id, failures=failures, **fields)

    def event(self, event_type: str, action: str) -> EventBuilder:
        """A builder for one event: ``client.event(...).actor(...).resource(...).emit()``."""
        return EventBuilder(self, event_type, action)

    @property
    def full_policy(self) -> str:
        """What emit() does when the spool is full: "fail" or "block"."""
        return self._full_policy

    # -- flush / close ----------------------------------------------------------------

    @property
    def delivered(self) -> int:
        """Events the broker acknowledged since this client started."""
        return self.metrics.counts.delivered

    @property
    def failed(self) -> int:
        """Delivery attempts that failed (the events stay in the spool and are retried)."""
        return self.metrics.counts.failed

    @property
    def pending(self) -> int:
        """Events accepted by emit() and not yet acknowledged by the broker."""
        with self._cond:
            self._delivery.settle()
            return self._spool.depth

    def flush(self, timeout: float = 30.0) -> int:
        """Wait up to ``timeout`` s until every accepted event is acknowledged; returns
        how many remain (they stay in the spool and are sent later)."""
        deadline = time.monotonic() + timeout
        self._delivery.push(timeout)
        with self._cond:
            self._delivery.waiters += 1
            try:
                while True:
                    self._delivery.settle()
                    depth = self._spool.depth
                    left = deadline - time.monotonic()
                    if depth == 0 or left <= 0:
                        return depth
                    self._cond.wait(min(left, 0.005))
            finally:
                self._delivery.waiters -= 1

    def close(self, timeout: float = 30.0) -> None:
        """Flush, stop the background thread and release the spool. Events not yet
        acknowledged stay in the spool; the next client on it sends them."""
        if self._closed:
            return
        remaining = self.flush(timeout)
        self._closed = True
        self._delivery.stop()
        with self._cond:
            self._spool.close()
        os.close(self._lock_fd)
        if remaining:
            log.warning("AuditClient closed with %d events not yet acknowledged; they stay "
                        "in the spool %s and are sent when a client starts on it",
                        remaining, self.spool_dir)

    def __enter__(self) -> AuditClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
