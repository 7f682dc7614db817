"""How fast a sealer's partitions seal again after a SIGKILL, per kill, on each broker.

Two ``sealtrail seal`` processes share ``PARTITIONS`` raw partitions while a producer writes
about ``RATE`` records/s round-robin. Each round SIGKILLs one of them and starts it again at
once (what a supervisor does: systemd, a Kubernetes container restart), with the same
``kafka_group_instance_id`` when membership is static.

* ``recovery.restart_s``: per kill, seconds from the restart until every partition the
  killed process owned has committed a new transaction (its committed raw offset moved);
  then ``.median`` and ``.max``.
* ``recovery.survivor_stall_s``: over the same windows, the longest time any partition of
  the *other* process went without a commit: does it keep sealing through the restart?
* ``recovery.takeover_s``: a last SIGKILL without restart: seconds until the survivor has
  committed on every partition of the dead process (bounded by the session timeout).

Variants (label after ``recovery.``):

* ``tansu.classic``: the embedded broker, classic protocol, cooperative-sticky, dynamic
  membership (Tansu does not honour static membership: a static member's partitions never
  moved in our runs);
* ``kafka.static``: Apache Kafka, classic protocol, cooperative-sticky, static membership:
  the restarted member rejoins as itself and gets its partitions back at once, fencing its
  predecessor's transactions (the configuration docs/operations.md recommends);
* ``kafka.kip848``: Apache Kafka, KIP-848 consumer protocol, dynamic membership.

``SEALTRAIL_BENCH_KILLS`` sets the kills per variant (default 3).
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from sealtrail.config import Settings
from sealtrail.kafka._fetch import missing_tools
from sealtrail.kafka.admin import ensure_topics
from sealtrail.keys import init_keys
from sealtrail.runtime import dev

PARTITIONS = 6
RATE = 600
_TOOK = re.compile(r"partition (\d+): (?:new chain|chain \S+ resumes)")


class _Sealer:
    def __init__(self, settings: Settings, instance: str, log: Path, static: bool) -> None:
        self.log = log
        s = dataclasses.replace(settings, kafka_group_instance_id=instance if static else "")
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "sealtrail.cli.main", "seal"],
                                         stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **s.to_env()})

    def took(self) -> set[int]:
        return {int(p) for p in _TOOK.findall(self.log.read_text(errors="replace"))}

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


class _Load(threading.Thread):
    """Writes about RATE undecodable records/s (sealed as rejections) round-robin."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.stop = threading.Event()

    def run(self) -> None:
        producer = Producer({"bootstrap.servers": self.settings.bootstrap, "linger.ms": 5})
        i = 0
        while not self.stop.is_set():
            for _ in range(RATE // 20):
                producer.produce(self.settings.raw_topic, b"load", partition=i % PARTITIONS)
                i += 1
            producer.poll(0)
            time.sleep(0.05)
        producer.flush(10)


def _committed(probe: Consumer, s: Settings) -> dict[int, int]:
    tps = [TopicPartition(s.raw_topic, p) for p in range(PARTITIONS)]
    return {tp.partition: tp.offset for tp in probe.committed(tps, timeout=10)}


def _until_all_moved(probe: Consumer, s: Settings, parts: set[int], base: dict[int, int],
                     others: set[int], timeout: float = 120) -> tuple[float, float]:
    """Seconds until every partition of ``parts`` committed past ``base``, and the longest
    commit gap seen meanwhile on the partitions of ``others``."""
    start = time.monotonic()
    last_move = {p: start for p in others}
    prev = dict(base)
    stall = 0.0
    while time.monotonic() - start < timeout:
        now_c = _committed(probe, s)
        now = time.monotonic()
        for p in others:
            if now_c[p] != prev[p]:
                last_move[p] = now
            stall = max(stall, now - last_move[p])
        prev = now_c
        if all(now_c[p] > base[p] for p in parts):
            return now - start, stall
        time.sleep(0.05)
    raise RuntimeError(f"partitions {sorted(parts)} did not seal again within {timeout} s")


def _wait_owned(sealers: list[_Sealer], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owned = [s.took() for s in sealers]
        if all(owned) and set().union(*owned) == set(range(PARTITIONS)):
            return
        time.sleep(0.1)
    raise RuntimeError("the sealers did not share every partition")


def recovery(broker: str, kills: int, protocol: str, static: bool, label: str
             ) -> dict[str, object]:
    suffix = f".{label}"
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp:
        home = Path(tmp)
        stack = dev.start_stack(home / "stack", broker_kind=broker)
        load: _Load | None = None
        sealers: list[_Sealer] = []
        try:
            tag = uuid.uuid4().hex[:8]
            s = Settings(home=home, bootstrap=stack.bootstrap, registry_url=stack.registry,
                         raw_topic=f"raw-{tag}", sealed_topic=f"sealed-{tag}",
                         dlq_topic=f"dlq-{tag}", sealer_group=f"sealer-{tag}",
                         partitions=PARTITIONS,
                         kafka_group_protocol=protocol)
            init_keys(s.keys)
            ensure_topics(s)
            a = _Sealer(s, "seal-a", home / "seal-a-0.log", static)
            b = _Sealer(s, "seal-b", home / "seal-b.log", static)
            sealers += [a, b]
            _wait_owned(sealers)
            load = _Load(s)
            load.start()
            probe = Consumer({"bootstrap.servers": s.bootstrap, "group.id": s.sealer_group})
            time.sleep(3)
            times: list[float] = []
            stalls: list[float] = []
            for k in range(kills):
                mine, theirs = a.took(), b.took()
                base = _committed(probe, s)
                a.kill()
                a = _Sealer(s, "seal-a", home / f"seal-a-{k + 1}.log", static)
                sealers.append(a)
                took, stall = _until_all_moved(probe, s, mine, base, theirs - mine)
                times.append(took)
                stalls.append(stall)
                _wait_owned([a, b])
                time.sleep(2)
            mine = a.took()
            base = _committed(probe, s)
            a.kill()
            takeover, _ = _until_all_moved(probe, s, mine, base, set())
            probe.close()
        finally:
            if load is not None:
                load.stop.set()
                load.join(15)
            for sealer in sealers:
                if sealer.proc.poll() is None:
                    sealer.kill()
            dev.stop_stack(home / "stack")
    return {
        f"recovery{suffix}.restart_s": " ".join(f"{t:.2f}" for t in times),
        f"recovery{suffix}.restart_s.median": round(statistics.median(times), 2),
        f"recovery{suffix}.restart_s.max": round(max(times), 2),
        f"recovery{suffix}.survivor_stall_s": round(max(stalls), 2),
        f"recovery{suffix}.takeover_s": round(takeover, 2),
    }


def run() -> dict[str, object]:
    kills = int(os.environ.get("SEALTRAIL_BENCH_KILLS", "3"))
    figures = recovery("tansu", kills, "classic", static=False, label="tansu.classic")
    why = missing_tools()
    if why:
        figures["recovery.kafka"] = f"skipped: {why}"
        return figures
    figures.update(recovery("kafka", kills, "classic", static=True, label="kafka.static"))
    figures.update(recovery("kafka", kills, "consumer", static=False, label="kafka.kip848"))
    return figures
