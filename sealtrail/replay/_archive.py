"""Replay from the archive: chain by chain, segment by segment, each segment checked as a
whole (on a worker's core when there are several) before any of its records is written."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import sealtrail.replay as _pkg  # tunables (CLOCK_SKEW_US, SAVE_EVERY_S) read at call time
from sealtrail.core import layout
from sealtrail.reading import (
    ArchiveSource,
    Query,
    SegmentResult,
    SegmentTask,
    check_segment,
    init_worker,
)
from sealtrail.replay._result import ReplayResult
from sealtrail.replay._sinks import JsonlSink, Sink, open_sink
from sealtrail.replay._sources import Break
from sealtrail.replay._state import ReplayState, save_progress, state_for
from sealtrail.runtime.progress import ProgressLine
from sealtrail.verify import ChainPlan, Junction, exact_break


def begin(source: str, query: Query, dest: str, state_path: Path | None,
          kafka: Mapping[str, Any] | None) -> tuple[ReplayState, ReplayResult, Sink]:
    """The state to start from, the result so far and the opened sink."""
    state, resumed = state_for(source, query, dest, state_path)
    result = ReplayResult(source, dest, query, resumed=resumed, written=state.written)
    sink = open_sink(dest, kafka=kafka, resume_at=state.out_bytes if resumed else None)
    return state, result, sink


def replay_meter(enabled: bool, total: int) -> ProgressLine:
    """Replay's progress line: entries checked (of the total expected), records written."""
    return ProgressLine("replay", enabled=enabled, total=total, unit="entries checked")


def _problem(source: ArchiveSource, task: SegmentTask, seg: SegmentResult,
             junction: Junction | None) -> Break | None:
    """The break of a segment checked apart, as verify names it: when it broke, or does not
    continue the segment before (raw offsets, epochs), it is checked again from exactly
    where the chain stood."""
    if seg.problem is None and (junction is None or junction.expects_result(
            seg.first_offset, seg.first_epoch)):
        return None
    return exact_break(source.store, task.planned, source.entry_keyring, junction) or \
        seg.problem


class _ArchiveReplay:
    """One run of :func:`replay_archive`: the source, where it writes, how far it got."""

    def __init__(self, source: ArchiveSource, query: Query, state: ReplayState,
                 result: ReplayResult, sink: Sink, state_path: Path | None,
                 stop: Callable[[], bool]) -> None:
        self.source, self.query, self.state, self.result = source, query, state, result
        self.sink, self.state_path, self.stop = sink, state_path, stop
        self.jsonl = isinstance(sink, JsonlSink)
        self.pool: Any = None
        self.spill_dir: str | None = None
        self.meter = replay_meter(False, 0)
        self.saved_at = time.monotonic()

    def start_workers(self, workers: int) -> None:
        """A pool of ``workers`` processes checking segments; a JSON lines output gets a
        directory beside it where the workers leave their lines (see check_segment)."""
        import multiprocessing

        self.pool = multiprocessing.get_context("fork").Pool(
            workers, initializer=init_worker, initargs=(self.source.entry_keyring,))
        if isinstance(self.sink, JsonlSink):
            self.spill_dir = tempfile.mkdtemp(prefix=".sealtrail-replay-",
                                              dir=self.sink.directory)

    def finish(self) -> None:
        """Stop the workers, remove their files, close the sink and the progress line."""
        if self.pool is not None:
            self.pool.terminate()
        if self.spill_dir is not None:
            shutil.rmtree(self.spill_dir, ignore_errors=True)
        self.sink.close()
        self.meter.update(self.result.checked, note=f", {self.result.written} written",
                          force=True)
        self.meter.close()

    def _checked(self, tasks: list[SegmentTask]) -> Iterator[SegmentResult]:
        if self.pool is not None:
            results: Iterator[SegmentResult] = self.pool.imap(check_segment, tasks)
            return results
        return (check_segment(t, self.source.entry_keyring) for t in tasks)

    def chain(self, plan: ChainPlan) -> Break | None:
        """Replay one chain from where the state says it got; its break, if any."""
        pos = self.state.positions.get(plan.chain_id, {})
        first = (plan.segments[plan.first].position if plan.first < len(plan.segments)
                 else len(plan.checkpoints))
        start = max(first, int(pos.get("next_index", 0)))
        junction: Junction | None = None
        previous = int(pos.get("next_index", 0)) - 1
        if "last_offset" in pos:  # resumed: where the segment before ended
            junction = Junction(pos.get("last_offset"), int(pos.get("last_epoch", 0)))
        tasks = list(self.source.tasks(plan, start, self.query, self.jsonl, self.spill_dir))
        for task, seg in zip(tasks, self._checked(tasks), strict=False):
            if self.stop():
                break
            if junction is not None:
                junction = Junction(junction.last_offset, junction.last_epoch,
                                    plan.purged_between(previous, task.index))
            problem = _problem(self.source, task, seg, junction)
            self.result.checked += seg.entries
            if problem is not None:
                return problem
            self._write(plan.chain_id, seg)
            junction = Junction(seg.last_offset, seg.last_epoch)
            previous = seg.index
        return plan.problem

    def _write(self, chain_id: str, seg: SegmentResult) -> None:
        """Write a checked segment's matching records and record how far the chain got."""
        if seg.spilled is not None:
            assert isinstance(self.sink, JsonlSink)
            self.sink.write_file(seg.spilled)
        else:
            self.sink.write(seg.matched, seg.jsonl)
        self.result.written += seg.count
        self.result.segments += 1
        self.state.positions[chain_id] = {"next_index": seg.index + 1,
                                          "last_offset": seg.last_offset,
                                          "last_epoch": seg.last_epoch}
        if self.state_path is not None and \
                time.monotonic() - self.saved_at >= _pkg.SAVE_EVERY_S:
            save_progress(self.state, self.sink, self.result.written, self.state_path)
            self.saved_at = time.monotonic()
        self.meter.update(self.result.checked, note=f", {self.result.written} written")


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
    state, result, sink = begin(source.description, query, dest, state_path, kafka)
    run = _ArchiveReplay(source, query, state, result, sink, state_path, stop)
    chain_ids = layout.chain_ids(source.store.list(layout.CHAINS))
    plans = [source.plan(c, query, skew_us=_pkg.CLOCK_SKEW_US) for c in chain_ids]
    run.meter = replay_meter(progress, sum(p.checkpoint.size for plan in plans
                                           for p in plan.segments[plan.first:]))
    if workers > 1:
        run.start_workers(workers)
    try:
        for plan in plans:
            result.chains += 1
            problem = run.chain(plan)
            if stop():
                break
            if problem is not None:
                result.breaks.append(problem)
                if not continue_on_error:
                    break
        else:
            state.complete = True
        save_progress(state, sink, result.written, state_path)
    finally:
        run.finish()
    result.seconds = time.monotonic() - started
    return result
