"""Replay from the sealed topic: each partition from the offset ``offsets_for_times`` gives
for ``since`` (or where a resumed run got) up to the end it has when the replay starts;
the chains are checked and their records released batch by batch (``_links``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sealtrail.replay as _pkg  # tunables (CLOCK_SKEW_US, KAFKA_BATCH) read at call time
from sealtrail.core.findings import Kind
from sealtrail.errors import DecodeError, TransportError
from sealtrail.kafka.client import kafka_config
from sealtrail.reading import Query
from sealtrail.replay._archive import begin, replay_meter
from sealtrail.replay._links import ChainLinks
from sealtrail.replay._result import ReplayResult
from sealtrail.replay._sources import Break, KafkaSource
from sealtrail.replay._state import ReplayState, save_progress


def _consumer(settings: Any) -> Any:
    """A consumer of committed records in a group of its own, committing nothing."""
    from confluent_kafka import Consumer

    return Consumer({
        **kafka_config(settings),
        "group.id": f"sealtrail-replay-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed",
        "session.timeout.ms": settings.session_timeout_ms,
    })


def _assignments(consumer: Any, settings: Any, query: Query, state: ReplayState,
                 timeout: float) -> tuple[list[Any], dict[int, int], int]:
    """Where to read each partition from (the offset for ``since``, or past what a resumed
    run already read), its end when the replay starts, and the records to read in all."""
    from confluent_kafka import TopicPartition

    topic = settings.sealed_topic
    meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        raise TransportError(f"sealed topic {topic} does not exist on {settings.bootstrap}")
    since_ms = (query.since - _pkg.CLOCK_SKEW_US) // 1000 if query.since is not None else 0
    found = consumer.offsets_for_times(
        [TopicPartition(topic, p, max(since_ms, 0)) for p in sorted(meta.partitions)], timeout)
    assign, ends, total = [], {}, 0
    for tp in found:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition),
                                                    timeout, cached=False)
        begin_at = tp.offset if tp.offset >= 0 else high
        saved = state.positions.get(f"partition-{tp.partition}")
        if saved is not None:
            begin_at = max(begin_at, int(saved["next_offset"]))
        if begin_at < high:
            assign.append(TopicPartition(topic, tp.partition, begin_at))
            ends[tp.partition] = high
            total += high - begin_at
    return assign, ends, total


class _KafkaReplay:
    """One run of :func:`replay_kafka`: what is still open, the chains, the result."""

    def __init__(self, source: KafkaSource, query: Query, result: ReplayResult,
                 state: ReplayState, ends: dict[int, int], continue_on_error: bool) -> None:
        from sealtrail.schemas.cache import WriterSchemas
        from sealtrail.schemas.registry_client import registry_client

        settings = source.settings
        self.writers = WriterSchemas(registry_client(settings.registry_url,
                                                     settings.registry_auth))
        self.query, self.result, self.state, self.ends = query, result, state, ends
        self.continue_on_error = continue_on_error
        self.links = ChainLinks(source.keyring, settings.sealed_topic, _saved_anchors(state))
        self.open_parts = set(ends)
        self.read_to: dict[int, int] = {}  # per partition, the offset after the last read

    def batch(self, msgs: list[Any]) -> tuple[list[dict[str, Any]], bool]:
        """The matching records of a batch of messages, and whether a break ends the run."""
        from confluent_kafka import KafkaError

        matched: list[dict[str, Any]] = []
        for msg in msgs:
            part, err = msg.partition(), msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self.open_parts.discard(part)
                continue
            if part not in self.open_parts:
                continue
            problem = self._message(msg, part, matched)
            if problem is not None:
                self.result.breaks.append(problem)
                if not self.continue_on_error:
                    self.save_positions()
                    return matched, True
        self.save_positions()
        return matched, False

    def _message(self, msg: Any, part: int, matched: list[dict[str, Any]]) -> Break | None:
        at = msg.offset() or 0
        if at >= self.ends.get(part, 0) - 1:
            self.open_parts.discard(part)
        self.read_to[part] = at + 1
        try:
            record, _codec = self.writers.decode(msg.value() or b"")
        except DecodeError as exc:
            return Break(Kind.MALFORMED, f"partition {part}",
                         f"offset {msg.offset()} does not decode: {exc}")
        if record["chain_id"] in self.links.broken or self.links.released_before(record):
            return None
        self.result.checked += 1
        released, problem = self.links.check(record, part, at)
        matched.extend(r for r in released if self.query.matches(r))
        return problem

    def save_positions(self) -> None:
        """Where a resumed run starts each partition read so far: after the last record
        read, or at the first record a chain still holds unreleased (so the batch is read
        again whole); and each chain's last signed entry, its anchor there."""
        for part, read_to in self.read_to.items():
            held = self.links.held_from(part)
            self.state.positions[f"partition-{part}"] = {
                "next_offset": read_to if held is None else held,
                "chains": self.links.anchors(part)}

    def finish(self) -> None:
        """What the run read but could not replay: records read only to anchor a chain
        that started mid-batch, and records still unsealed where the run ends."""
        self.result.chains = len(self.links.chains)
        self.result.anchoring = self.links.anchoring
        self.result.unsealed = self.links.unsealed_count()
        self.result.notes += self.links.notes + self.links.unsealed()


def _saved_anchors(state: ReplayState) -> dict[str, dict[str, Any]]:
    """The chain anchors a resumed run saved, by chain id (none in a state file written
    before batch seals: those chains are anchored as if read from --since)."""
    anchors: dict[str, dict[str, Any]] = {}
    for name, position in state.positions.items():
        part = int(name.rsplit("-", 1)[1])
        for chain_id, saved in position.get("chains", {}).items():
            anchors[chain_id] = {**saved, "chain_id": chain_id, "partition": part}
    return anchors


def replay_kafka(
    source: KafkaSource,
    query: Query,
    dest: str,
    *,
    state_path: Path | None = None,
    continue_on_error: bool = False,
    progress: bool = False,
    stop: Callable[[], bool] = lambda: False,
    timeout: float = 30.0,
) -> ReplayResult:
    """Replay ``query`` from the sealed topic into ``dest``: each partition from the first
    offset at or after ``since`` up to the end it has when the replay starts."""
    settings = source.settings
    started = time.monotonic()
    state, result, sink = begin(source.description, query, dest, state_path,
                                kafka_config(settings))
    consumer = _consumer(settings)
    topic = settings.sealed_topic
    try:
        assign, ends, total = _assignments(consumer, settings, query, state, timeout)
        meter = replay_meter(progress, total)
        run = _KafkaReplay(source, query, result, state, ends, continue_on_error)
        if assign:
            consumer.assign(assign)
        idle_since = time.monotonic()
        while run.open_parts and not stop():
            msgs = consumer.consume(_pkg.KAFKA_BATCH, 0.5)
            if not msgs:
                if time.monotonic() - idle_since > timeout:
                    raise TransportError(f"no records from {topic} for {timeout:.0f} s while "
                                         f"partitions {sorted(run.open_parts)} were not "
                                         "finished")
                continue
            idle_since = time.monotonic()
            batch, done_break = run.batch(msgs)
            sink.write(batch)
            result.written += len(batch)
            if state_path is not None:
                save_progress(state, sink, result.written, state_path)
            meter.update(result.checked, note=f", {result.written} written")
            if done_break:
                break
        else:
            state.complete = not stop()
        run.finish()
        save_progress(state, sink, result.written, state_path)
        meter.close()
    finally:
        consumer.close()
        sink.close()
    result.seconds = time.monotonic() - started
    return result
