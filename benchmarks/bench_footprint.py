"""What one sealer process costs in threads, broker connections and memory as the number
of partitions it owns grows, on each broker (docs/architecture.md, "one transactional
producer per partition").

For P in (1, 64): topics of P partitions, one ``sealtrail seal`` process owning them all,
P * 20 events sealed (so every partition's producer has connected and committed), then the
process's threads (/proc/PID/status), TCP connections (its sockets in /proc/net/tcp) and
resident memory. Figures ``footprint.p<P>.threads`` / ``.connections`` / ``.rss_mb`` and the
per-partition increments ``footprint.per_partition.*`` (64 minus 1, divided by 63); the
same on Apache Kafka with the suffix ``.kafka`` where java and mvn exist.
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

from confluent_kafka import Consumer, Producer, TopicPartition

from sealtrail.config import Settings
from sealtrail.kafka._fetch import missing_tools
from sealtrail.kafka.admin import ensure_topics
from sealtrail.keys import init_keys
from sealtrail.runtime import dev

SIZES = (1, 64)
PER_PARTITION = 20


def _threads_rss(pid: int) -> tuple[int, float]:
    threads, rss = 0, 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            threads = int(line.split()[1])
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return threads, rss


def _tcp_connections(pid: int) -> int:
    """Established TCP sockets the process holds (its fds matched against /proc/net/tcp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "01" and cols[9] in inodes:  # 01 = ESTABLISHED
                count += 1
    return count


def _measure(base: Settings, home: Path, partitions: int) -> tuple[int, int, float]:
    tag = uuid.uuid4().hex[:8]
    s = dataclasses.replace(base, raw_topic=f"raw-{tag}", sealed_topic=f"sealed-{tag}",
                            dlq_topic=f"dlq-{tag}", sealer_group=f"sealer-{tag}",
                            partitions=partitions)
    ensure_topics(s)
    log = home / f"seal-{tag}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sealtrail.cli.main", "seal"],
                                stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                env={**os.environ, **s.to_env()})
    try:
        deadline = time.monotonic() + 300
        while log.read_text(errors="replace").count("new chain") < partitions:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the sealer did not take {partitions} partitions: "
                                   f"{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        producer = Producer({"bootstrap.servers": s.bootstrap})
        for i in range(partitions * PER_PARTITION):
            producer.produce(s.raw_topic, b"not an event: sealed as a rejection",
                             partition=i % partitions)
        producer.flush(60)
        probe = Consumer({"bootstrap.servers": s.bootstrap, "group.id": s.sealer_group})
        tps = [TopicPartition(s.raw_topic, p) for p in range(partitions)]
        while sum(max(tp.offset, 0) for tp in probe.committed(tps, timeout=30)) < \
                partitions * PER_PARTITION:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("sealing stalled")
            time.sleep(0.2)
        probe.close()
        time.sleep(1)
        threads, rss = _threads_rss(proc.pid)
        return threads, _tcp_connections(proc.pid), rss
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def footprint(broker: str) -> dict[str, object]:
    suffix = "" if broker == "tansu" else f".{broker}"
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
        home = Path(tmp)
        stack = dev.start_stack(home / "stack", broker_kind=broker)
        try:
            base = Settings(home=home, bootstrap=stack.bootstrap, registry_url=stack.registry)
            init_keys(base.keys)
            got = {p: _measure(base, home, p) for p in SIZES}
        finally:
            dev.stop_stack(home / "stack")
    for p, (threads, conns, rss) in got.items():
        figures[f"footprint.p{p}.threads{suffix}"] = threads
        figures[f"footprint.p{p}.connections{suffix}"] = conns
        figures[f"footprint.p{p}.rss_mb{suffix}"] = round(rss, 1)
    lo, hi = got[SIZES[0]], got[SIZES[-1]]
    span = SIZES[-1] - SIZES[0]
    figures[f"footprint.per_partition.threads{suffix}"] = round((hi[0] - lo[0]) / span, 2)
    figures[f"footprint.per_partition.connections{suffix}"] = round((hi[1] - lo[1]) / span, 2)
    figures[f"footprint.per_partition.rss_mb{suffix}"] = round((hi[2] - lo[2]) / span, 2)
    return figures


def run() -> dict[str, object]:
    figures = footprint("tansu")
    why = missing_tools()
    if why:
        figures["footprint.kafka"] = f"skipped: {why}"
    else:
        figures.update(footprint("kafka"))
    return figures
