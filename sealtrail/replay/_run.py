"""The replay loops: read from a source, verified, write what matches, keep resumable state."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import sealtrail.replay as _pkg  # tunables (CLOCK_SKEW_US, SAVE_EVERY_S) read at call time
from sealtrail.core import layout
from sealtrail.core.chain import ChainHead, check_entry
from sealtrail.errors import DecodeError, TransportError
from sealtrail.kafka.client import kafka_config
from sealtrail.replay._filters import Query
from sealtrail.replay._progress import Progress, ReplayResult
from sealtrail.replay._sinks import JsonlSink, Sink, open_sink
from sealtrail.replay._sources import (
    ArchiveSource,
    Break,
    KafkaSource,
    SegmentResult,
    check_segment,
    init_worker,
)
from sealtrail.replay._state import ReplayState, save_progress, state_for
from sealtrail.verify import Junction, exact_break


def _problem(source: ArchiveSource, task: Any, seg: SegmentResult,
             junction: Junction | None) -> Break | None:
    """The break of a segment checked apart, as verify names it: when it broke, or does not
    continue the segment before (raw offsets, epochs), it is checked again from exactly
    where the chain stood."""
    if seg.problem is None and (junction is None or junction.expects_result(
            seg.first_offset, seg.first_epoch)):
        return None
    return exact_break(source.store, task.planned, source.entry_keyring, junction) or \
        seg.problem


def _begin(source: str, query: Query, dest: str, state_path: Path | None,
           kafka: Mapping[str, Any] | None) -> tuple[ReplayState, ReplayResult, Sink]:
    """The state to start from, the result so far and the opened sink."""
    state, resumed = state_for(source, query, dest, state_path)
    result = ReplayResult(source, dest, query, resumed=resumed, written=state.written)
    sink = open_sink(dest, kafka=kafka, resume_at=state.out_bytes if resumed else None)
    return state, result, sink


def replay_archive(
    source: ArchiveSource,
    query: Query,
    dest: str,
    *,
    kafka: Mapping[str, Any] | None = None,
    state_path: Path | None = None,
    continue_on_error: bool = False,
    workers: int = 1,
    progress: bool = False,
    stop: Callable[[], bool] = lambda: False,
) -> ReplayResult:
    """Replay ``query`` from the archive into ``dest`` (see :func:`open_sink`)."""
    started = time.monotonic()
    state, result, sink = _begin(source.description, query, dest, state_path, kafka)
    jsonl = isinstance(sink, JsonlSink)
    chain_ids = layout.chain_ids(source.store.list(layout.CHAINS))
    plans = [source.plan(c, query) for c in chain_ids]
    total = sum(p.checkpoint.size for plan in plans for p in plan.segments[plan.first:])
    meter = Progress(progress, total)
    pool = spill_dir = None
    if workers > 1:
        import multiprocessing

        pool = multiprocessing.get_context("fork").Pool(
            workers, initializer=init_worker, initargs=(source.entry_keyring,))
        if isinstance(sink, JsonlSink):  # workers leave their lines here (check_segment)
            spill_dir = tempfile.mkdtemp(prefix=".sealtrail-replay-", dir=sink.directory)
    saved_at = time.monotonic()
    try:
        for plan in plans:
            result.chains += 1
            pos = state.positions.get(plan.chain_id, {})
            first = (plan.segments[plan.first].position if plan.first < len(plan.segments)
                     else len(plan.checkpoints))
            start = max(first, int(pos.get("next_index", 0)))
            junction: Junction | None = None
            previous = int(pos.get("next_index", 0)) - 1
            if "last_offset" in pos:  # resumed: where the segment before ended
                junction = Junction(pos.get("last_offset"), int(pos.get("last_epoch", 0)))
            tasks = list(source.tasks(plan, start, query, jsonl, spill_dir))
            if pool is not None:
                results: Iterator[SegmentResult] = pool.imap(check_segment, tasks)
            else:
                results = (check_segment(t, source.entry_keyring) for t in tasks)
            problem: Break | None = None
            for task, seg in zip(tasks, results, strict=False):
                if stop():
                    break
                if junction is not None:
                    junction = Junction(junction.last_offset, junction.last_epoch,
                                        plan.purged_between(previous, task.index))
                problem = _problem(source, task, seg, junction)
                result.checked += seg.entries
                if problem is not None:
                    break
                if seg.spilled is not None:
                    assert isinstance(sink, JsonlSink)
                    sink.write_file(seg.spilled)
                else:
                    sink.write(seg.matched, seg.jsonl)
                result.written += seg.count
                result.segments += 1
                junction = Junction(seg.last_offset, seg.last_epoch)
                previous = seg.index
                state.positions[plan.chain_id] = {"next_index": seg.index + 1,
                                                  "last_offset": seg.last_offset,
                                                  "last_epoch": seg.last_epoch}
                if state_path is not None and time.monotonic() - saved_at >= _pkg.SAVE_EVERY_S:
                    save_progress(state, sink, result.written, state_path)
                    saved_at = time.monotonic()
                meter.update(result.checked, result.written)
            if stop():
                break
            if problem is None:
                problem = plan.problem
            if problem is not None:
                result.breaks.append(problem)
                if not continue_on_error:
                    break
        else:
            state.complete = True
        save_progress(state, sink, result.written, state_path)
    finally:
        if pool is not None:
            pool.terminate()
        if spill_dir is not None:
            shutil.rmtree(spill_dir, ignore_errors=True)
        sink.close()
        meter.update(result.checked, result.written, force=True)
        meter.done()
    result.seconds = time.monotonic() - started
    return result


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
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from sealtrail.schemas.cache import WriterSchemas
    from sealtrail.schemas.registry_client import registry_client

    settings = source.settings
    started = time.monotonic()
    state, result, sink = _begin(source.description, query, dest, state_path,
                                 kafka_config(settings))
    writers = WriterSchemas(registry_client(settings.registry_url, settings.registry_auth))
    consumer = Consumer({
        **kafka_config(settings),
        "group.id": f"sealtrail-replay-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed",
        "session.timeout.ms": settings.session_timeout_ms,
    })
    topic = settings.sealed_topic
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise TransportError(f"sealed topic {topic} does not exist on {settings.bootstrap}")
        partitions = sorted(meta.partitions)
        since_ms = (query.since - _pkg.CLOCK_SKEW_US) // 1000 if query.since is not None else 0
        found = consumer.offsets_for_times(
            [TopicPartition(topic, p, max(since_ms, 0)) for p in partitions], timeout)
        assign, ends, total = [], {}, 0
        for tp in found:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition),
                                                        timeout, cached=False)
            begin = tp.offset if tp.offset >= 0 else high
            saved = state.positions.get(f"partition-{tp.partition}")
            if saved is not None:
                begin = max(begin, int(saved["next_offset"]))
            if begin < high:
                assign.append(TopicPartition(topic, tp.partition, begin))
                ends[tp.partition] = high
                total += high - begin
        meter = Progress(progress, total)
        heads: dict[str, ChainHead] = {}
        offsets: dict[str, int] = {}
        broken: set[str] = set()
        if assign:
            consumer.assign(assign)
        open_parts = {tp.partition for tp in assign}
        idle_since = time.monotonic()
        while open_parts and not stop():
            msgs = consumer.consume(2000, 0.5)
            if not msgs:
                if time.monotonic() - idle_since > timeout:
                    raise TransportError(f"no records from {topic} for {timeout:.0f} s while "
                                         f"partitions {sorted(open_parts)} were not finished")
                continue
            idle_since = time.monotonic()
            batch: list[dict[str, Any]] = []
            done_break = False
            for msg in msgs:
                part = msg.partition()
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        open_parts.discard(part)
                    continue
                if part not in open_parts:
                    continue
                at = msg.offset() or 0
                if at >= ends.get(part, 0) - 1:
                    open_parts.discard(part)
                state.positions[f"partition-{part}"] = {"next_offset": at + 1}
                try:
                    record, _codec = writers.decode(msg.value() or b"")
                except DecodeError as exc:
                    result.breaks.append(Break("malformed", f"partition {part}",
                                               f"offset {msg.offset()} does not decode: {exc}"))
                    if not continue_on_error:
                        done_break = True
                        break
                    continue
                chain = record["chain_id"]
                if chain in broken:
                    continue
                result.checked += 1
                head = heads.get(chain)
                if head is None:  # anchor: the entry before is not read
                    head = ChainHead(chain, record["seq"] - 1, record["prev_hash"],
                                     record["epoch"])
                link = check_entry(head, record, source.keyring)
                offset = record["source"]["offset"]
                if link is None and chain in offsets and offset != offsets[chain] + 1:
                    link_kind, link_msg = "completeness", (
                        f"raw offset {offset} follows {offsets[chain]}")
                elif link is not None:
                    link_kind, link_msg = link.kind, link.message
                else:
                    heads[chain] = head.advance(record)
                    offsets[chain] = offset
                    if query.matches(record):
                        batch.append(record)
                    continue
                broken.add(chain)
                result.breaks.append(Break(link_kind, chain, link_msg,
                                           f"{topic}/{part}@{msg.offset()}", head.seq + 1))
                if not continue_on_error:
                    done_break = True
                    break
            sink.write(batch)
            result.written += len(batch)
            if state_path is not None:
                save_progress(state, sink, result.written, state_path)
            meter.update(result.checked, result.written)
            if done_break:
                break
        else:
            state.complete = not stop()
        result.chains = len(heads)
        save_progress(state, sink, result.written, state_path)
        meter.done()
    finally:
        consumer.close()
        sink.close()
    result.seconds = time.monotonic() - started
    return result


def replay(source: ArchiveSource | KafkaSource, query: Query, dest: str, **kwargs: Any
           ) -> ReplayResult:
    """Replay from either source (keyword arguments as for replay_archive/replay_kafka)."""
    if isinstance(source, ArchiveSource):
        return replay_archive(source, query, dest, **kwargs)
    kwargs.pop("workers", None)
    kwargs.pop("kafka", None)
    return replay_kafka(source, query, dest, **kwargs)
