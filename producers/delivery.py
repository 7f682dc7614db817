"""Delivery: the librdkafka producer and the background thread of an AuditClient.

The background thread serves librdkafka's delivery reports, one per event, each
acknowledging its record in the spool. It serves them every few milliseconds in a batch
(not as each arrives), and a report does the least it can in Python: it sets the
record's flag (``Segment.acked``); the counters, delivered prefixes and segment deletion
are brought up to date in bulk, at C speed (:meth:`Delivery.settle`). Each report runs
with the interpreter lock taken from the caller's thread: when a report acknowledged its
record itself (bookkeeping, a clock read, a histogram with a lock) they cost emit() about
a quarter of its throughput.

The thread also sends what the spool holds when the broker was unreachable or the
in-memory queue was full (oldest first, before anything newer), recreates the producer
after a fatal error or a stall, and fsyncs the spool.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from sealtrail.errors import ConfigError
from sealtrail.producers.metrics import ProducerMetrics
from sealtrail.producers.spool import Position, Spool, fsync_close

__all__ = ["DRAIN_BATCH", "STALL_SECONDS", "Delivery"]

log = logging.getLogger("sealtrail.producer")

DRAIN_BATCH = 2000
_TICK = 0.005
"""How often the thread serves reports while events are queued (0.05 s when idle)."""
_IDLE_TICK = 0.05
STALL_SECONDS = 10.0
"""Default ``stall_seconds``: no acknowledgement for this long with events queued and the
producer is recreated (a broker replaced by a fresh one refuses the old producer id, and
librdkafka retries that forever without reporting an error). Doubles while it keeps
happening, up to 8 times the base."""


class Delivery:
    """Moves spooled records to the broker.

    ``lock`` / ``cond`` guard the spool and the send state; ``emit()`` appends and calls
    :meth:`send` under ``lock``, and counts itself in ``waiters`` while it waits on
    ``cond`` for acknowledgements. Reports are served without ``lock`` (emit() never
    waits for them): they only set flags, which :meth:`settle` reads under it."""

    def __init__(
        self,
        *,
        spool: Spool,
        metrics: ProducerMetrics,
        topic: str,
        bootstrap: str,
        client_id: str,
        producer_config: Mapping[str, Any] | None,
        fsync_interval: float,
        stall_seconds: float,
        thread_name: str,
    ) -> None:
        self.topic = topic
        self._spool = spool
        self._metrics = metrics
        self._fsync_interval = fsync_interval
        self._conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "enable.idempotence": True,
            "acks": "all",
            # 20 ms, not librdkafka's 5: an event is safe in the spool when emit() returns,
            # so a few more ms before it is sent cost nothing, and 4x fewer produce
            # requests leave the client and the broker more CPU (docs/performance.md).
            "linger.ms": 20,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 100_000,
            "queue.buffering.max.kbytes": 65_536,
            "error_cb": self._on_error,
            "logger": logging.getLogger("sealtrail.producer.librdkafka"),
        }
        self._conf.update(producer_config or {})
        self.producer = self._new_producer()
        self._sent = 0
        self._serve_above = min(
            int(self._conf.get("queue.buffering.max.messages", 100_000)) // 4, 4096)
        """Reports waiting beyond which emit() serves them itself (a few ms of work)."""

        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.waiters = 0
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._rewind = False
        self._fatal = False
        self._resume_at = 0.0
        self._last_progress = time.monotonic()
        self._stall_base = stall_seconds
        self._stall_after = stall_seconds
        self._last_fail_log = 0.0
        self.direct = spool.recovered == 0
        """Records go straight to librdkafka; when False the thread drains the spool."""
        self._drain_pos: Position = spool.first_undelivered()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def _new_producer(self) -> Producer:
        try:
            return Producer(self._conf)
        except KafkaException as exc:
            raise ConfigError(f"invalid producer configuration: {exc}") from None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and drop what librdkafka still holds (it stays in the spool)."""
        self._stopping.set()
        self._wake.set()
        self._thread.join()
        with contextlib.suppress(KafkaException):
            self.producer.purge(in_queue=True, in_flight=True, blocking=True)
            self.producer.poll(0)

    def push(self, timeout: float) -> None:
        """For flush(): send what librdkafka holds now, without waiting for
        ``linger.ms``, and wait up to ``timeout`` s for its reports (librdkafka's flush;
        the reports only set flags, so any thread may serve them)."""
        self._wake.set()
        if self.direct and timeout > 0:
            with contextlib.suppress(KafkaException):
                self.producer.flush(timeout)
        self._wake.set()

    def send(self, pos: Position, key: bytes, value: bytes) -> None:
        """Hand the record just appended at ``pos`` to librdkafka, or leave it to the
        drain; called with ``lock`` held."""
        if not self.direct:
            self._metrics.counts.spooled += 1
            return
        try:
            self.producer.produce(self.topic, value, key, on_delivery=functools.partial(
                self._on_delivery, pos.segment.acked, pos.number))
        except BufferError:
            self.direct = False
            self._drain_pos = pos
            self._metrics.counts.spooled += 1
            log.warning("in-memory queue full (broker slow or unreachable): events go "
                        "to the spool %s until it drains", self._spool.directory)
        except KafkaException as exc:  # the record is safe in the spool
            self.direct = False
            self._drain_pos = pos
            self._metrics.counts.spooled += 1
            self._producer_failed(exc)
            return
        self._sent += 1
        if not self._sent & 1023 and len(self.producer) > self._serve_above:
            # A caller that keeps the interpreter busy starves this thread's polls (each
            # report needs the interpreter lock): serve the reports here, before the
            # queue fills up and events go to the spool with a broker that is fine.
            self.producer.poll(0)

    # -- callbacks (librdkafka, on the background thread or inside flush) ----------------

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = True
            log.error("kafka producer fatal error, the producer is recreated: %s", err)
        else:
            log.warning("kafka producer: %s", err)

    def settle(self) -> None:
        """Bring the spool's counters up to the reports served (called with ``lock``
        held); wakes whoever waits for acknowledgements or room."""
        newly, freed = self._spool.settle()
        if newly:
            self._metrics.counts.delivered += newly
        if (newly or freed) and self.waiters:
            self.cond.notify_all()

    def _on_delivery(self, acked: bytearray, index: int, err: KafkaError | None,
                     msg: Message) -> None:
        """One event's report: on success only its flag is set (:meth:`settle` does the
        rest in bulk); a failure has the spool sent again from the oldest undelivered."""
        if err is None:
            acked[index] = 1
            if not index & 15:  # a sample of 1 in 16 keeps the histogram cheap
                latency = msg.latency()
                if latency is not None:
                    self._metrics.delivery_latency.observe(latency)
            return
        if err.code() in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            return
        self._metrics.counts.failed += 1
        self._rewind = True
        now = time.monotonic()
        if now - self._last_fail_log > 10:
            self._last_fail_log = now
            log.error("audit event not delivered (%s); it stays in the spool and is sent "
                      "again", err)

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

    # -- the background thread -----------------------------------------------------------

    def _run(self) -> None:
        next_sync = time.monotonic() + self._fsync_interval
        delivered = self._metrics.counts.delivered
        tick = _TICK
        while not self._stopping.is_set():
            try:
                self._wake.wait(tick)
                self._wake.clear()
                self.producer.poll(0)  # the reports of the last tick, in one go
                with self.cond:
                    self.settle()
                if self._metrics.counts.delivered != delivered:
                    delivered = self._metrics.counts.delivered
                    self._last_progress = time.monotonic()
                    self._stall_after = self._stall_base
                elif not len(self.producer):  # nothing queued: a stall counts from here
                    self._last_progress = time.monotonic()
                if self._fatal:
                    self._recreate()
                elif time.monotonic() - self._last_progress > self._stall_after \
                        and len(self.producer):
                    log.warning("no acknowledgement for %.0f s with %d events queued: "
                                "recreating the producer and resending from the spool",
                                self._stall_after, len(self.producer))
                    self._stall_after = min(self._stall_after * 2, 8 * self._stall_base)
                    self._recreate()
                if self._rewind:
                    self._do_rewind()
                if not self.direct and time.monotonic() >= self._resume_at:
                    self._drain()
                now = time.monotonic()
                if now >= next_sync:
                    next_sync = now + self._fsync_interval
                    self._sync()
                tick = _TICK if not self.direct or self.waiters or len(self.producer) \
                    else _IDLE_TICK
            except KafkaException as exc:
                self._producer_failed(exc)
                time.sleep(0.1)
            except Exception:  # keep the delivery thread alive whatever happens
                log.exception("producer background thread error")
                time.sleep(0.5)

    def _sync(self) -> None:
        fds: list[int] = []
        with self.cond:
            self.settle()
            if self._spool.fsync == "interval":
                fds = self._spool.take_dirty_fds()
            self._spool.persist_acks()
            self._metrics.spool_depth.set(self._spool.depth)
            self._metrics.spool_bytes.set(self._spool.total_bytes)
            if self.waiters:
                self.cond.notify_all()
        fsync_close(fds)  # outside the lock: emit() never waits for the disk
        self._spool.sync_directory()
        self._metrics.queue_depth.set(len(self.producer))

    def _do_rewind(self) -> None:
        """A delivery failed: purge the in-memory queue so nothing newer overtakes, and
        send again from the oldest undelivered event in the spool."""
        with self.cond:
            self._rewind = False
            self.direct = False
            self.producer.purge(in_queue=True, in_flight=False, blocking=False)
            self.settle()
            self._drain_pos = self._spool.first_undelivered()
        self._resume_at = time.monotonic() + 1.0

    def _recreate(self) -> None:
        self._rewind = False
        self._last_progress = time.monotonic()
        with self.cond:
            self._fatal = False
            self.direct = False
            old = self.producer
            self.producer = self._new_producer()
            self.settle()
            self._drain_pos = self._spool.first_undelivered()
        old.purge(in_queue=True, in_flight=True, blocking=False)
        with contextlib.suppress(KafkaException):
            old.poll(0)
        self._resume_at = time.monotonic() + 0.5

    def _drain(self) -> None:
        """Send the next batch of spooled events, oldest first."""
        with self.cond:
            stop = self._spool.end
            start = self._drain_pos
        sent = 0
        last: Position | None = None
        for pos, key, value in self._spool.read(start, stop, DRAIN_BATCH):
            try:
                self.producer.produce(self.topic, value, key, on_delivery=functools.partial(
                    self._on_delivery, pos.segment.acked, pos.number))
            except BufferError:
                with self.cond:
                    if not self._rewind:
                        self._drain_pos = pos
                return
            except KafkaException as exc:
                self._producer_failed(exc)
                return
            sent += 1
            last = pos
        with self.cond:
            if self._rewind or self._fatal:
                return
            if sent < DRAIN_BATCH or last is None:
                self._drain_pos = stop
            else:
                self._drain_pos = Position(last.segment, last.number + 1)
            end = self._spool.end
            if self._drain_pos.segment is end.segment and self._drain_pos.number == end.number:
                self.direct = True
                log.info("audit spool %s drained; sending directly again",
                         self._spool.directory)
