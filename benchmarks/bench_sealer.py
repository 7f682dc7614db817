"""The sealer against its own per-core floor, measured in the same run.

* ``sealer.floor_eps``: one core doing exactly the sealer's per-record work on the same
  framed AuditEvents, with no Kafka: decode (RawDecoder), validate, dedupe, redact,
  canonical bytes, SHA-256, encode the sealed record (``Sealer.seal_value``, with the
  signer and policy objects ``sealtrail seal`` uses), and a batch seal (Merkle root,
  Ed25519, the seal re-encoded) every ``FLOOR_BATCH`` (100) records.
* ``sealer.eps``: one ``sealtrail seal`` process sealing N events through the embedded
  broker (Tansu), measured from the first raw record produced until the sealer group's
  committed offsets cover all N (the sealer joined the group before, on an empty topic,
  so start-up and group join are not counted).
* ``sealer.vs_floor``: eps / floor_eps (target >= 0.8).
* ``sealer.sign_floor_eps``: what the hardware allows: Ed25519 signatures of 32-byte
  digests (with the entry signature's domain prefix, as the sealer signs them) per second
  on one core, with the same library. Both floors are measured in alternating slices
  (2,500 events or signatures each, 4 of each before and 4 after the end-to-end run), so
  their ratio holds on a busy machine. A sealer that signed every entry could never be
  faster than this; batch seals (record format 2) sign once per transaction.
* ``sealer.vs_sign``: eps / sign_floor_eps (target >= 0.5, goal 1.0);
  ``sealer.floor_vs_sign``: floor_eps / sign_floor_eps, the same for the per-record work
  alone (what is left once Kafka is taken away); ``sealer.vs_sign_cpu``: the sealer's
  events per CPU-second it used (librdkafka's threads included) / sign_floor_eps, the
  figure that does not depend on how much of a core other processes left it.
* ``sealer.scale_2``: two sealer processes on the same number of partitions, divided by
  one process. The machine has 2 cores, and the broker and this script share them.
* ``sealer.rss_start_mb`` / ``sealer.rss_end_mb``: resident set of the one-process run
  after it joined and after it sealed N events. ``SEALTRAIL_BENCH_RSS_EVENTS=1000000``
  adds a separate long run (``sealer.long_*``) that reports the RSS every 100k events.

N is ``SEALTRAIL_BENCH_SEALER_EVENTS`` (default 40000). ``SEALTRAIL_BENCH_SEALER_SCALE=0``
skips the two-process run (a quicker look at the one-process figures).
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

from confluent_kafka import Consumer, Producer, TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealtrail.config import Settings
from sealtrail.core.avro import AvroCodec, frame
from sealtrail.core.chain import ChainHead
from sealtrail.core.hashing import SIG_ENTRY_DOMAIN, sha256
from sealtrail.kafka.admin import ensure_topics
from sealtrail.keys import ReloadingSigner, init_keys
from sealtrail.pipeline import Sealer
from sealtrail.pipeline.recovery import ChainState
from sealtrail.policy import RedactionMetrics, policy_for_sealer
from sealtrail.runtime import dev
from sealtrail.schemas.registry_client import registry_client

PARTITIONS = 4
#: Records per batch seal in the floor: fewer than a sealer transaction usually holds
#: (a consume batch of one partition, about 250 of these events in a 128 KB fetch).
FLOOR_BATCH = 100
EPOCH_US = 1_700_000_000_000_000


def _events(settings: Settings, n: int) -> list[bytes]:
    """``n`` framed AuditEvents like the demo services emit (schema registered for the
    raw topic, so the sealer resolves the id)."""
    import json
    import random

    from confluent_kafka.schema_registry import Schema

    from sealtrail import schemas

    schema = schemas.load(schemas.AUDIT_EVENT)
    codec = AvroCodec(schema)
    schema_id = registry_client(settings.registry_url).register_schema(
        f"{settings.raw_topic}-value", Schema(json.dumps(schema), "AVRO"))
    rng = random.Random(1)
    template = codec.decode(codec.encode(_TEMPLATE))  # every field of the reader version
    out = []
    for i in range(n):
        user = f"u-{rng.randrange(200):04d}"
        event = {**template, "event_id": str(uuid.uuid4()), "occurred_at": EPOCH_US + i,
                 "actor": {**template["actor"], "id": user, "principal": f"{user}@idp.example.com"},
                 "origin": {**template["origin"], "source_ip": f"203.0.113.{rng.randrange(1, 255)}",
                            "request_id": f"req-bench-{i}"},
                 "resource": {"type": "customer", "id": f"customer-{rng.randrange(10_000)}"},
                 "tenant": f"tenant-{rng.randrange(5)}",
                 "attributes": {"email": f"{user}@customers.example.com",
                                "password": "hunter2" if i % 97 == 0 else "", "ticket": f"T-{i}"}}
        out.append(frame(schema_id, codec.encode(event)))
    return out


_TEMPLATE: dict[str, Any] = {
    "event_id": "x", "event_type": "record.read", "action": "read", "occurred_at": 0,
    "actor": {"id": "u", "type": "user", "principal": None},
    "origin": {"service": "billing", "instance": "billing-1", "service_version": "1.4.2",
               "environment": "bench", "source_ip": None, "user_agent": None,
               "request_id": None, "trace_id": None},
    "resource": {"type": "customer", "id": "c"}, "outcome": "SUCCESS", "reason": None,
    "authorization": {"decision": "ALLOW", "policy": "rbac/v3", "permissions": ["customer:read"]},
    "tenant": None, "classification": "CONFIDENTIAL", "attributes": {},
}


class _Floors:
    """The two per-core floors, per CPU-second of the measuring thread (not wall time: other
    processes on a shared machine take the core away at random), measured in alternating
    slices so that both see the same machine (whose speed per CPU-second still drifts,
    e.g. with what runs on the other hyperthread of the core).

    * the sealer's: ``Sealer.seal_value`` on the framed events, built as ``sealtrail seal``
      builds it (the reloading signer, the policy with its reloading pseudonymizer and
      redaction metrics), no Kafka;
    * signing's: Ed25519 signatures of what the sealer signs for each entry (the entry
      domain and a 32-byte digest), with a fresh key of the library the sealer uses."""

    def __init__(self, settings: Settings, values: list[bytes]) -> None:
        self._sealer = Sealer(settings, signer=ReloadingSigner(settings.keys),
                              policy=policy_for_sealer(settings, RedactionMetrics()),
                              registry=registry_client(settings.registry_url))
        self._values = values
        self._sign = Ed25519PrivateKey.generate().sign
        self._messages = [SIG_ENTRY_DOMAIN + sha256(i.to_bytes(8, "big"))
                          for i in range(len(values))]
        self._chains = 0
        self.seal_s = self.sign_s = 0.0
        self.sealed = self.signed = 0

    def measure(self, rounds: int = 4) -> None:
        """``rounds`` slices of each, alternating, each over all the values."""
        for _ in range(rounds):
            self._chains += 1
            state = ChainState(ChainHead.genesis(f"bench.0.floor{self._chains}"), 0)
            seal_value, close = self._sealer.seal_value, self._sealer.records.close_batch
            _, last, _ = seal_value(state, self._values[0], "bench", 0, 0)  # warm the caches
            close(state, last)
            start = time.thread_time()
            for offset, value in enumerate(self._values, 1):
                _, last, _ = seal_value(state, value, "bench", 0, offset)
                if offset % FLOOR_BATCH == 0 or offset == len(self._values):
                    close(state, last)
            self.seal_s += time.thread_time() - start
            self.sealed += len(self._values)
            sign = self._sign
            start = time.thread_time()
            for message in self._messages:
                sign(message)
            self.sign_s += time.thread_time() - start
            self.signed += len(self._messages)

    @property
    def floor_eps(self) -> float:
        return self.sealed / self.seal_s

    @property
    def sign_eps(self) -> float:
        return self.signed / self.sign_s


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class _Run:
    """Sealer processes on fresh topics of ``PARTITIONS`` partitions."""

    def __init__(self, base: Settings, home: Path, processes: int, broker_pid: int) -> None:
        self.broker_pid = broker_pid
        tag = uuid.uuid4().hex[:8]
        self.settings = dataclasses.replace(
            base, raw_topic=f"raw-{tag}", sealed_topic=f"sealed-{tag}", dlq_topic=f"dlq-{tag}",
            sealer_group=f"sealer-{tag}", partitions=PARTITIONS)
        ensure_topics(self.settings)
        env = {**os.environ, **self.settings.to_env()}
        self.logs = [home / f"seal-{tag}-{i}.log" for i in range(processes)]
        self.procs = []
        for log in self.logs:
            with open(log, "wb") as out:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "sealtrail.cli.main", "seal"],
                    stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env))
        self._probe = Consumer({"bootstrap.servers": base.bootstrap,
                                "group.id": self.settings.sealer_group})

    def wait_assigned(self, timeout: float = 60) -> None:
        """Until every partition has an owner and every process owns one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            texts = [log.read_text(errors="replace") for log in self.logs]
            if (all("new chain" in t for t in texts)
                    and sum(t.count("new chain") for t in texts) >= PARTITIONS):
                time.sleep(0.5)
                return
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"sealer exited: {texts}")
            time.sleep(0.1)
        raise RuntimeError("sealers did not get their partitions")

    def committed(self) -> int:
        tps = [TopicPartition(self.settings.raw_topic, p) for p in range(PARTITIONS)]
        return sum(max(tp.offset, 0) for tp in self._probe.committed(tps, timeout=10))

    def seal(self, values: list[bytes], rss_every: int = 0) -> tuple[float, list[float]]:
        """Produce ``values`` round-robin over the partitions; events/s until all are
        committed, and the first process's RSS every ``rss_every`` events. Sets
        ``cpu_share``: CPU seconds the sealer processes used per second of the run."""
        producer = Producer({"bootstrap.servers": self.settings.bootstrap,
                             "enable.idempotence": True, "linger.ms": 5,
                             "compression.type": "lz4",
                             "queue.buffering.max.messages": 1_000_000})
        rss = [_rss_mb(self.procs[0].pid)]
        cpu = sum(_cpu_s(p.pid) for p in self.procs)
        broker = _cpu_s(self.broker_pid)
        start = time.perf_counter()
        for i, value in enumerate(values):
            while True:
                try:
                    producer.produce(self.settings.raw_topic, value, partition=i % PARTITIONS)
                    break
                except BufferError:
                    producer.poll(0.05)
        assert producer.flush(60) == 0
        mark = rss_every
        deadline = time.monotonic() + 60 + len(values) / 500
        while (done := self.committed()) < len(values):
            if rss_every and done >= mark:
                rss.append(_rss_mb(self.procs[0].pid))
                mark += rss_every
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"sealing stalled at {done} of {len(values)}")
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
        eps = len(values) / elapsed
        self.cpu_share = (sum(_cpu_s(p.pid) for p in self.procs) - cpu) / elapsed
        self.broker_share = (_cpu_s(self.broker_pid) - broker) / elapsed
        rss.append(_rss_mb(self.procs[0].pid))
        return eps, rss

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._probe.close()


def _scale_2(base: Settings, home: Path, broker_pid: int, values: list[bytes],
             eps: float) -> dict[str, object]:
    """Two sealer processes on the same partitions, against one (``eps``)."""
    two = _Run(base, home, 2, broker_pid)
    try:
        two.wait_assigned()
        eps2, _ = two.seal(values)
    finally:
        two.close()
    return {"sealer.eps_2": round(eps2), "sealer.scale_2": round(eps2 / eps, 3),
            "sealer.cpu_per_s_2": round(two.cpu_share, 2),
            "sealer.broker_cpu_per_s_2": round(two.broker_share, 2)}


def run() -> dict[str, object]:
    n = int(os.environ.get("SEALTRAIL_BENCH_SEALER_EVENTS", "40000"))
    long_n = int(os.environ.get("SEALTRAIL_BENCH_RSS_EVENTS", "0"))
    figures: dict[str, object] = {"sealer.events": n}
    with tempfile.TemporaryDirectory(prefix="bench-sealer-") as tmp:
        home = Path(tmp)
        stack = dev.start_stack(home / "stack")
        try:
            base = Settings(home=home, bootstrap=stack.bootstrap, registry_url=stack.registry,
                            raw_topic=f"raw-{uuid.uuid4().hex[:8]}")
            init_keys(base.keys)
            values = _events(base, n)
            floors = _Floors(base, values[:2_500])
            floors.measure()

            one = _Run(base, home, 1, stack.broker_pid)
            try:
                one.wait_assigned()
                eps, rss = one.seal(values)
            finally:
                one.close()
            # The floors before and after the run: the machine is shared, so its speed drifts.
            floors.measure()
            floor, sign_floor = floors.floor_eps, floors.sign_eps
            figures["sealer.sign_floor_eps"] = round(sign_floor)
            figures["sealer.floor_eps"] = round(floor)
            figures["sealer.eps"] = round(eps)
            figures["sealer.vs_sign"] = round(eps / sign_floor, 3)
            figures["sealer.floor_vs_sign"] = round(floor / sign_floor, 3)
            figures["sealer.cpu_per_s"] = round(one.cpu_share, 2)
            figures["sealer.broker_cpu_per_s"] = round(one.broker_share, 2)
            figures["sealer.vs_floor"] = round(eps / floor, 3)
            # The same per CPU-second the sealer process got (its librdkafka threads
            # included): what it would do with a core of its own on a busy machine.
            figures["sealer.vs_sign_cpu"] = round(eps / one.cpu_share / sign_floor, 3)
            figures["sealer.rss_start_mb"] = round(rss[0], 1)
            figures["sealer.rss_end_mb"] = round(rss[-1], 1)

            if os.environ.get("SEALTRAIL_BENCH_SEALER_SCALE", "1") != "0":
                figures.update(_scale_2(base, home, stack.broker_pid, values, eps))

            if long_n:
                long = _Run(base, home, 1, stack.broker_pid)
                try:
                    long.wait_assigned()
                    long_eps, long_rss = long.seal(_events(base, long_n),
                                                   rss_every=100_000)
                finally:
                    long.close()
                figures["sealer.long_events"] = long_n
                figures["sealer.long_eps"] = round(long_eps)
                figures["sealer.long_rss_start_mb"] = round(long_rss[0], 1)
                figures["sealer.long_rss_end_mb"] = round(long_rss[-1], 1)
                figures["sealer.long_rss_mb"] = " ".join(f"{r:.0f}" for r in long_rss)
        finally:
            dev.stop_stack(home / "stack")
    return figures
