"""Emit -> checkpointed latency of the real embedded pipeline under a steady load.

The pipeline is the one ``make demo`` runs: the embedded broker and registry, one
``sealtrail seal`` and one ``sealtrail archive`` process (default settings: segments close
after ``segment_max_seconds``, 5 s, or 5,000 records), a local archive, and
:class:`AuditClient` emitting from this process.

* ``e2e.sealer_eps``: the sealer's throughput in this pipeline, measured first: N events
  emitted at once, until the sealer's committed offsets cover them.
* ``e2e.rate_eps``: the steady load, half of ``e2e.sealer_eps``, paced evenly for
  ``SEALTRAIL_BENCH_E2E_SECONDS`` (default 30) seconds.
* ``e2e.latency_p50_s`` / ``e2e.latency_p99_s`` / ``e2e.latency_max_s``: for every event of
  the steady phase after its first 5 seconds, from ``emit()`` (the event's occurred_at,
  which emit() sets) to the checkpoint that covers it being in the archive (the
  checkpoint file's modification time). Goal: p99 <= ``segment_max_seconds`` + 2 s.
* ``e2e.segment_max_seconds``: the setting the figures were taken with.
* ``e2e.sealer_cpu_per_s`` / ``e2e.archiver_cpu_per_s``: CPU seconds each stage process
  used per second of the steady phase.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from sealtrail.archive.segments import read_segment
from sealtrail.config import Settings
from sealtrail.core import layout
from sealtrail.kafka.admin import ensure_topics
from sealtrail.keys import init_keys
from sealtrail.producers import AuditClient
from sealtrail.runtime import dev

PARTITIONS = 4
WARM_UP_S = 5.0


class _Pipeline:
    """`sealtrail seal` and `sealtrail archive` processes on fresh topics."""

    def __init__(self, base: Settings, home: Path) -> None:
        tag = uuid.uuid4().hex[:8]
        self.settings = dataclasses.replace(
            base, raw_topic=f"raw-{tag}", sealed_topic=f"sealed-{tag}", dlq_topic=f"dlq-{tag}",
            sealer_group=f"sealer-{tag}", archiver_group=f"archiver-{tag}",
            partitions=PARTITIONS, archive_url=str(home / f"archive-{tag}"))
        ensure_topics(self.settings)
        env = {**os.environ, **self.settings.to_env()}
        self.logs = {stage: home / f"{stage}-{tag}.log" for stage in ("seal", "archive")}
        self.procs = []
        for stage, log in self.logs.items():
            with open(log, "wb") as out:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "sealtrail.cli.main", stage],
                    stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env))
        self._probe = Consumer({"bootstrap.servers": base.bootstrap,
                                "group.id": self.settings.sealer_group})
        self.archive = Path(self.settings.archive_url)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.logs["seal"].read_text(errors="replace")
            if text.count("new chain") >= PARTITIONS:
                time.sleep(1.0)
                return
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError("a stage exited: " + " | ".join(
                    log.read_text(errors="replace")[-2000:] for log in self.logs.values()))
            time.sleep(0.1)
        raise RuntimeError("the sealer did not get its partitions")

    def committed(self) -> int:
        tps = [TopicPartition(self.settings.raw_topic, p) for p in range(PARTITIONS)]
        return sum(max(tp.offset, 0) for tp in self._probe.committed(tps, timeout=10))

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._probe.close()


def _emit(audit: AuditClient, n: int) -> None:
    audit.emit("record.read", "read", actor_id=f"u-{n % 200}", resource_type="customer",
               resource_id=f"customer-{n % 10_000}", tenant=f"tenant-{n % 5}",
               principal=f"u-{n % 200}@idp.example.com", source_ip=f"203.0.113.{n % 250 + 1}",
               request_id=f"req-{n}", attributes={"ticket": f"T-{n}"})


def _sealer_eps(pipeline: _Pipeline, audit: AuditClient, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        _emit(audit, i)
    audit.flush(60)
    deadline = time.monotonic() + 60 + n / 500
    while pipeline.committed() < n:
        if time.monotonic() > deadline:
            raise RuntimeError("the sealer did not keep up")
        time.sleep(0.05)
    return n / (time.perf_counter() - start)


def _steady(audit: AuditClient, rate: float, seconds: float, first: int) -> tuple[int, int]:
    """Emit at ``rate`` per second for ``seconds``, evenly; (events, start in us)."""
    start = time.perf_counter()
    start_us = time.time_ns() // 1000
    total = int(rate * seconds)
    for i in range(total):
        due = start + i / rate
        ahead = due - time.perf_counter()
        if ahead > 0.0005:
            time.sleep(ahead)
        _emit(audit, first + i)
    audit.flush(60)
    return total, start_us


def _latencies(archive: Path, since_us: int, expected: int, timeout: float) -> list[float]:
    """Seconds from occurred_at to the covering checkpoint's file time, for the events
    that occurred at ``since_us`` or later; waits until ``expected`` of them are covered."""
    seen: set[Path] = set()
    found: list[float] = []
    deadline = time.monotonic() + timeout
    while len(found) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(found)} of {expected} events checkpointed")
        for checkpoint in sorted(archive.glob(f"{layout.CHAINS}*/checkpoints/*.json")):
            if checkpoint in seen:
                continue
            seen.add(checkpoint)
            stored_us = checkpoint.stat().st_mtime_ns // 1000
            segment = checkpoint.parent.parent / "segments" / (checkpoint.stem + ".avro")
            if not segment.exists():
                continue  # a heartbeat checkpoint: no segment
            for record in read_segment(segment.read_bytes()):
                event = record["event"]
                if event is not None and event["occurred_at"] >= since_us:
                    found.append((stored_us - event["occurred_at"]) / 1e6)
        time.sleep(0.2)
    return found


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run() -> dict[str, object]:
    seconds = float(os.environ.get("SEALTRAIL_BENCH_E2E_SECONDS", "30"))
    burst = int(os.environ.get("SEALTRAIL_BENCH_E2E_BURST", "20000"))
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        home = Path(tmp)
        stack = dev.start_stack(home / "stack")
        try:
            base = Settings(home=home, bootstrap=stack.bootstrap, registry_url=stack.registry)
            init_keys(base.keys)
            pipeline = _Pipeline(base, home)
            try:
                pipeline.wait_ready()
                audit = AuditClient.from_settings(pipeline.settings, service="bench",
                                                  spool_dir=home / "spool")
                with audit:
                    eps = _sealer_eps(pipeline, audit, burst)
                    rate = eps / 2
                    time.sleep(base.segment_max_seconds + 1)  # the burst's segments close
                    cpu = [_cpu_s(p.pid) for p in pipeline.procs]
                    total, start_us = _steady(audit, rate, seconds, burst)
                    cpu = [(_cpu_s(p.pid) - c) / seconds for p, c in zip(pipeline.procs, cpu,
                                                                          strict=True)]
                measured_from = start_us + int(WARM_UP_S * 1e6)
                expected = total - int(rate * WARM_UP_S) - 1
                latencies = _latencies(pipeline.archive, measured_from, expected,
                                       timeout=base.segment_max_seconds * 4 + 60)
            finally:
                pipeline.close()
        finally:
            dev.stop_stack(home / "stack")
    figures["e2e.sealer_eps"] = round(eps)
    figures["e2e.rate_eps"] = round(rate)
    figures["e2e.events"] = len(latencies)
    figures["e2e.segment_max_seconds"] = base.segment_max_seconds
    figures["e2e.latency_p50_s"] = round(_percentile(latencies, 0.50), 2)
    figures["e2e.latency_p99_s"] = round(_percentile(latencies, 0.99), 2)
    figures["e2e.latency_max_s"] = round(max(latencies), 2)
    figures["e2e.sealer_cpu_per_s"] = round(cpu[0], 2)
    figures["e2e.archiver_cpu_per_s"] = round(cpu[1], 2)
    return figures
