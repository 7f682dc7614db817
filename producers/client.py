"""AuditClient: what a service calls to emit audit events.

``emit()`` does bounded work on the caller's thread: build, validate and encode the
event, append it to the durable local spool (a copy into a mapped file), and hand it to
librdkafka's in-memory queue. It never waits on the network. A background thread
serves delivery reports, sends what the spool holds when the broker was unreachable or
the queue was full (oldest first, before anything newer), and fsyncs the spool.
See docs/producer.md.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from prometheus_client import CollectorRegistry
from sealtrail.producers import context as _context
from sealtrail.producers.errors import ClientClosedError, EmitBackpressureError, SpoolFullError
from sealtrail.producers.instrument import EventBuilder, audited
from sealtrail.producers.metrics import ProducerMetrics
from sealtrail.producers.spool import Position, Spool, open_slot

from sealtrail import schemas
from sealtrail.config import Settings
from sealtrail.core.avro import AvroCodec, frame
from sealtrail.core.envelope import EVENT_TYPE, MAX_ID, MAX_TIME_US, MIN_TIME_US, check_event
from sealtrail.errors import ConfigError, EventValidationError, TransportError

__all__ = ["OUTCOMES", "AuditClient", "ClientClosedError", "EmitBackpressureError",
           "SpoolFullError"]

log = logging.getLogger("sealtrail.producer")

OUTCOMES = ("SUCCESS", "FAILURE", "DENIED", "ERROR", "UNKNOWN")
FULL_POLICIES = ("fail", "block")
DRAIN_BATCH = 2000
STALL_SECONDS = 10.0
"""Default ``stall_seconds``: no acknowledgement for this long with events queued and the
producer is recreated (a broker replaced by a fresh one refuses the old producer id, and
librdkafka retries that forever without reporting an error). Doubles while it keeps
happening, up to 8 times the base."""
MAX_EVENT_BYTES = 256 * 1024


def _check_bootstrap(bootstrap: str) -> None:
    if not bootstrap:
        raise ConfigError("AuditClient needs a Kafka bootstrap address (bootstrap=...)")
    for entry in bootstrap.split(","):
        host, sep, port = entry.strip().rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"bootstrap address {entry.strip()!r} is not host:port "
                              "(e.g. kafka-1:9092,kafka-2:9092)")
        try:
            socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except socket.gaierror:
            raise ConfigError(f"bootstrap host {host!r} does not resolve: check the "
                              "bootstrap address (bootstrap=... / SEALTRAIL_BOOTSTRAP)") from None


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
        _check_bootstrap(bootstrap)
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
        self.schema_id = self._register(registry_url, registry_auth)
        self._header = frame(self.schema_id, b"")
        self._max_event_bytes = max_event_bytes
        self._full_policy = spool_full
        self._block_seconds = spool_block_seconds
        self._fsync_interval = fsync_interval
        self.metrics = ProducerMetrics(service, topic, metrics_registry)

        base = Path(spool_dir) if spool_dir else Path(".sealtrail") / "spool"
        self.spool_dir, self._lock_fd = open_slot(base / f"{_safe(service)}.{_safe(topic)}")
        try:
            self._spool = Spool(self.spool_dir, max_bytes=spool_max_bytes, fsync=fsync)
        except OSError as exc:
            os.close(self._lock_fd)
            raise ConfigError(f"cannot open the spool {self.spool_dir}: {exc.strerror}") \
                from None
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "client.id": f"sealtrail-producer-{_safe(service)}",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 100_000,
            "queue.buffering.max.kbytes": 65_536,
            "error_cb": self._on_error,
            "logger": logging.getLogger("sealtrail.producer.librdkafka"),
        }
        self._conf.update(producer_config or {})
        self._producer = self._new_producer()

        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiters = 0
        self._closed = False
        self._stopping = threading.Event()
        self._rewind = False
        self._fatal = False
        self._resume_at = 0.0
        self._last_progress = time.monotonic()
        self._stall_base = stall_seconds
        self._stall_after = stall_seconds
        self._last_full_log = 0.0
        self._last_fail_log = 0.0
        self._direct = self._spool.recovered == 0
        self._drain_pos: Position = self._spool.first_undelivered()
        if self._spool.recovered:
            log.warning("spool %s holds %d undelivered events from an earlier run; "
                        "sending them before new events", self.spool_dir, self._spool.recovered)
        self._thread = threading.Thread(target=self._run, name=f"sealtrail-producer-{service}",
                                        daemon=True)
        self._thread.start()

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
        options.update(kwargs)
        return cls(service=service, bootstrap=s.bootstrap, registry_url=s.registry_url,
                   registry_auth=s.registry_auth, topic=s.raw_topic, **options)

    # -- set-up ------------------------------------------------------------------------

    def _register(self, url: str, auth: str) -> int:
        schema = Schema(json.dumps(self._codec.schema), "AVRO")
        try:
            return int(_registry(url, auth).register_schema(f"{self.topic}-value", schema))
        except SchemaRegistryError as exc:
            raise TransportError(
                f"schema registry at {url} refused the AuditEvent schema: {exc}"
            ) from None
        except Exception as exc:  # requests/httpx connection errors
            raise TransportError(
                f"schema registry at {url} is unreachable ({type(exc).__name__}); the client "
                "needs it once at start to learn the schema id"
            ) from None

    def _new_producer(self) -> Producer:
        try:
            return Producer(self._conf)
        except KafkaException as exc:
            raise ConfigError(f"invalid producer configuration: {exc}") from None

    # -- callbacks (librdkafka, on the background thread or inside flush) ----------------

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = True
            log.error("kafka producer fatal error, the producer is recreated: %s", err)
        else:
            log.warning("kafka producer: %s", err)

    def _on_delivery(self, seg: Any, index: int, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self._last_progress = time.monotonic()
            self._stall_after = self._stall_base
            counts = self.metrics.counts
            counts.delivered += 1
            if not counts.delivered & 7:  # a sample of 1 in 8 keeps the histogram cheap
                latency = msg.latency()
                if latency is not None:
                    self.metrics.delivery_latency.observe(latency)
            if self._spool.ack(seg, index) and self._waiters:
                with self._cond:
                    self._cond.notify_all()
            return
        if err.code() in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            return
        self.metrics.counts.failed += 1
        self._rewind = True
        now = time.monotonic()
        if now - self._last_fail_log > 10:
            self._last_fail_log = now
            log.error("audit event not delivered (%s); it stays in the spool and is sent "
                      "again", err)

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
    ) -> str:
        """Validate, encode, spool and enqueue one event; returns its event_id.

        Fields not given come from the bound request context (:mod:`.context`): actor,
        request id, source ip, user agent, trace id, tenant. Raises EventValidationError
        (naming the field) for a bad event, SpoolFullError when the spool is full and the
        full-spool policy gives up. Never waits on the network.
        """
        ctx = _context.current()
        if ctx is not None:
            if actor_id is None:
                actor_id = ctx.actor_id
                actor_type = actor_type or ctx.actor_type
                principal = principal or ctx.principal
            source_ip = source_ip or ctx.source_ip
            user_agent = user_agent or ctx.user_agent
            request_id = request_id or ctx.request_id
            trace_id = trace_id or ctx.trace_id
            tenant = tenant or ctx.tenant
            session_id = session_id or ctx.session_id
        if trace_id is None and _context.HAS_OTEL:
            trace_id = _context.otel_trace_id()
        if actor_id is None:
            self.metrics.reject("invalid")
            raise EventValidationError(
                "actor.id", "is required: pass actor_id=... or bind the authenticated actor "
                "(sealtrail.producers.context.set_actor / the middleware)")
        if occurred_at is None:
            occurred_at = time.time_ns() // 1000
        event: dict[str, Any] = {
            "event_id": event_id or new_event_id(),
            "event_type": event_type,
            "action": action,
            "occurred_at": occurred_at,
            "actor": {"id": actor_id, "type": actor_type or "user", "principal": principal,
                      "on_behalf_of": on_behalf_of},
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
            "session_id": session_id,
        }
        # The envelope rules of check_event, inlined for the common case; on any doubt
        # check_event runs and names the field.
        checked = (
            _texts(event["event_id"], action, actor_id, event["actor"]["type"], resource_type,
                   resource_id)
            and type(event_type) is str and EVENT_TYPE.fullmatch(event_type) is not None
            and type(occurred_at) is int and MIN_TIME_US <= occurred_at <= MAX_TIME_US
        )
        return self._accept(event, strict=False, checked=checked)

    def emit_event(self, event: dict[str, Any]) -> str:
        """Emit a complete AuditEvent dict (the envelope as in schemas/); every field is
        checked against the schema, unknown keys included."""
        return self._accept(event, strict=True, checked=False)

    def _accept(self, event: dict[str, Any], *, strict: bool, checked: bool) -> str:
        start = time.perf_counter()
        if self._closed:
            raise ClientClosedError("AuditClient is closed; create a new one to emit")
        if os.getpid() != self._pid:
            raise ConfigError("this AuditClient was created before a fork; create one in "
                              "each process (after the fork), e.g. in a worker init hook")
        try:
            if strict:
                self._codec.validate(event)
            if not checked:
                check_event(event)
            try:
                body = self._codec.encode(event)
            except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
                self._codec.validate(event)  # names the field
                raise EventValidationError("(event)", f"does not encode: {exc}") from None
            if len(body) > self._max_event_bytes:
                raise EventValidationError(
                    "(event)", f"encodes to {len(body)} bytes, more than the "
                    f"{self._max_event_bytes} the pipeline accepts; shorten attributes")
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
            if self._direct:
                try:
                    self._producer.produce(self.topic, value, key, on_delivery=functools.partial(
                        self._on_delivery, pos.segment, pos.number))
                except BufferError:
                    self._direct = False
                    self._drain_pos = pos
                    self.metrics.counts.spooled += 1
                    log.warning("in-memory queue full (broker slow or unreachable): events go "
                                "to the spool %s until it drains", self.spool_dir)
                except KafkaException as exc:  # the event is safe in the spool
                    self._direct = False
                    self._drain_pos = pos
                    self.metrics.counts.spooled += 1
                    self._producer_failed(exc)
            else:
                self.metrics.counts.spooled += 1
        counts = self.metrics.counts
        counts.emitted += 1
        if not counts.emitted & 3:  # a 1-in-4 sample keeps the histogram off the hot path
            self.metrics.emit_latency.observe(time.perf_counter() - start)
        return str(event["event_id"])

    def _wait_for_room(self, nbytes: int, event_id: str) -> None:
        """Apply the full-spool policy; called with the lock held."""
        deadline = time.monotonic() + (self._block_seconds if self._full_policy == "block"
                                       else 0.0)
        self._waiters += 1
        try:
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
            self._waiters -= 1

    # -- background thread ---------------------------------------------------------------

    def _producer_failed(self, exc: KafkaException) -> None:
        """produce() or poll() raised: recreate the producer after a fatal error (e.g. a
        fresh broker that does not know our producer id), otherwise back off and resend."""
        err = exc.args[0] if exc.args else None
        if isinstance(err, KafkaError) and (err.fatal() or err.code() == KafkaError._FATAL):
            if not self._fatal:
                log.error("kafka producer fatal error, the producer is recreated and the "
                          "spool resent: %s", err)
            self._fatal = True
        else:
            log.warning("kafka producer error, resending from the spool: %s", err)
            self._rewind = True

    def _run(self) -> None:
        next_sync = time.monotonic() + self._fsync_interval
        while not self._stopping.is_set():
            try:
                self._producer.poll(0.05 if self._direct else 0.01)
                if self._fatal:
                    self._recreate()
                elif time.monotonic() - self._last_progress > self._stall_after \
                        and len(self._producer):
                    log.warning("no acknowledgement for %.0f s with %d events queued: "
                                "recreating the producer and resending from the spool",
                                self._stall_after, len(self._producer))
                    self._stall_after = min(self._stall_after * 2, 8 * self._stall_base)
                    self._recreate()
                if self._rewind:
                    self._do_rewind()
                if not self._direct and time.monotonic() >= self._resume_at:
                    self._drain()
                now = time.monotonic()
                if now >= next_sync:
                    next_sync = now + self._fsync_interval
                    self._sync()
            except KafkaException as exc:
                self._producer_failed(exc)
                time.sleep(0.1)
            except Exception:  # keep the delivery thread alive whatever happens
                log.exception("producer background thread error")
                time.sleep(0.5)

    def _sync(self) -> None:
        fds: list[int] = []
        with self._cond:
            if self._spool.fsync == "interval":
                fds = self._spool.take_dirty_fds()
            self._spool.persist_acks()
            self.metrics.spool_depth.set(self._spool.depth)
            self.metrics.spool_bytes.set(self._spool.total_bytes)
            if self._waiters:
                self._cond.notify_all()
        for fd in fds:
            try:
                os.fsync(fd)  # outside the lock: emit() never waits for the disk
            finally:
                os.close(fd)
        self._spool.sync_directory()
        self.metrics.queue_depth.set(len(self._producer))

    def _do_rewind(self) -> None:
        """A delivery failed: purge the in-memory queue so nothing newer overtakes, and
        send again from the oldest undelivered event in the spool."""
        with self._cond:
            self._rewind = False
            self._direct = False
            self._producer.purge(in_queue=True, in_flight=False, blocking=False)
            self._drain_pos = self._spool.first_undelivered()
        self._resume_at = time.monotonic() + 1.0

    def _recreate(self) -> None:
        self._rewind = False
        self._last_progress = time.monotonic()
        with self._cond:
            self._fatal = False
            self._direct = False
            old = self._producer
            self._producer = self._new_producer()
            self._drain_pos = self._spool.first_undelivered()
        old.purge(in_queue=True, in_flight=True, blocking=False)
        with contextlib.suppress(KafkaException):
            old.poll(0)
        self._resume_at = time.monotonic() + 0.5

    def _drain(self) -> None:
        """Send the next batch of spooled events, oldest first."""
        with self._cond:
            stop = self._spool.end
            start = self._drain_pos
        sent = 0
        last: Position | None = None
        for pos, key, value in self._spool.read(start, stop, DRAIN_BATCH):
            try:
                self._producer.produce(self.topic, value, key, on_delivery=functools.partial(
                    self._on_delivery, pos.segment, pos.number))
            except BufferError:
                with self._cond:
                    if not self._rewind:
                        self._drain_pos = pos
                return
            except KafkaException as exc:
                self._producer_failed(exc)
                return
            sent += 1
            last = pos
        with self._cond:
            if self._rewind or self._fatal:
                return
            if sent < DRAIN_BATCH or last is None:
                self._drain_pos = stop
            else:
                self._drain_pos = Position(last.segment, last.number + 1)
            end = self._spool.end
            if self._drain_pos.segment is end.segment and self._drain_pos.number == end.number:
                self._direct = True
                log.info("audit spool %s drained; sending directly again", self.spool_dir)

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
            return self._spool.depth

    def flush(self, timeout: float = 30.0) -> int:
        """Wait up to ``timeout`` s until every accepted event is acknowledged; returns
        how many remain (they stay in the spool and are sent later)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._waiters += 1
            try:
                while True:
                    depth = self._spool.depth
                    left = deadline - time.monotonic()
                    if depth == 0 or left <= 0:
                        return depth
                    self._cond.wait(min(left, 0.005))
            finally:
                self._waiters -= 1

    def close(self, timeout: float = 30.0) -> None:
        """Flush, stop the background thread and release the spool. Events not yet
        acknowledged stay in the spool; the next client on it sends them."""
        if self._closed:
            return
        remaining = self.flush(timeout)
        self._closed = True
        self._stopping.set()
        self._thread.join()
        with contextlib.suppress(KafkaException):
            self._producer.purge(in_queue=True, in_flight=True, blocking=True)
            self._producer.poll(0)
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


def _registry(url: str, auth: str) -> SchemaRegistryClient:
    """A registry client that gives up after one retry: start-up fails fast."""
    conf: dict[str, Any] = {"url": url, "max.retries": 1, "retries.wait.ms": 200,
                            "timeout": 10}
    if auth:
        conf["basic.auth.user.info"] = auth
    return SchemaRegistryClient(conf)


def _texts(*values: object) -> bool:
    """Each value is a non-blank string of at most MAX_ID characters."""
    for value in values:
        if type(value) is not str or not 0 < len(value) <= MAX_ID or value.isspace():
            return False
    return True


_ids = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


def new_event_id() -> str:
    """A random (version 4) UUID. Drawn from a generator seeded from os.urandom and reseeded
    in every forked child: no syscall per event, no shared ids across processes."""
    x = _ids.getrandbits(128)
    x = (x & ~(0xF << 76) & ~(0x3 << 62)) | (0x4 << 76) | (0x2 << 62)
    h = f"{x:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _safe(name: str) -> str:
    """``name`` reduced to characters safe in a file name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100] or "_"
