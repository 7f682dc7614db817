"""Exactly-once under failure: sealer processes killed, paused, joining and leaving while
services emit, and the accounting that proves nothing was lost, duplicated or forked."""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from helpers.pipeline_checks import (
    archived_count,
    archived_records,
    finish_producer,
    run_producer,
    store_of,
    verify,
    wait_until,
)
from helpers.stages import Stage
from sealtrail.config import Settings
from sealtrail.core.completeness import coverage, runs_of
from sealtrail.core.fencing import Fence, Verdict
from sealtrail.schemas.cache import WriterSchemas
from sealtrail.schemas.registry_client import registry_client


def raw_ends(settings: Settings) -> dict[int, int]:
    """Per raw partition, the offset after its last record (read to the end: Tansu's
    reported high watermark can lag behind): offsets 0..end-1 must all be sealed."""
    consumer = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": "chaos-probe",
                         "enable.partition.eof": True, "enable.auto.commit": False})
    ends = {p: 0 for p in range(settings.partitions)}
    consumer.assign([TopicPartition(settings.raw_topic, p, 0)
                     for p in range(settings.partitions)])
    done: set[int] = set()
    deadline = time.monotonic() + 120
    try:
        while len(done) < settings.partitions and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, 0.5):
                err = msg.error()
                if err is None:
                    ends[msg.partition()] = msg.offset() + 1
                elif err.code() == KafkaError._PARTITION_EOF:
                    done.add(msg.partition())
    finally:
        consumer.close()
    assert len(done) == settings.partitions, "could not read the raw topic to its end"
    return ends


def sealed_topic_at(settings: Settings) -> dict[int, list[tuple[int, dict[str, Any]]]]:
    """Every committed record of the sealed topic with its offset, per partition, in
    offset order."""
    writers = WriterSchemas(registry_client(settings.registry_url))
    consumer = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": "chaos-reader",
                         "enable.partition.eof": True, "isolation.level": "read_committed",
                         "enable.auto.commit": False})
    out: dict[int, list[tuple[int, dict[str, Any]]]] = {p: [] for p in range(settings.partitions)}
    consumer.assign([TopicPartition(settings.sealed_topic, p, 0)
                     for p in range(settings.partitions)])
    done: set[int] = set()
    deadline = time.monotonic() + 120
    try:
        while len(done) < settings.partitions and time.monotonic() < deadline:
            for msg in consumer.consume(5000, 0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        done.add(msg.partition())
                    continue
                out[msg.partition()].append((msg.offset(), writers.decode(msg.value())[0]))
    finally:
        consumer.close()
    assert len(done) == settings.partitions, "could not read the sealed topic to its end"
    return out


def sealed_topic(settings: Settings) -> dict[int, list[dict[str, Any]]]:
    """Every committed record of the sealed topic, per partition, in offset order."""
    return {p: [r for _, r in rs] for p, rs in sealed_topic_at(settings).items()}


@dataclass
class Accounting:
    """What happened to every emitted event."""

    emitted: int
    sealed: int
    rejected: int
    lost: int
    duplicated: int
    forks: int
    fenced: int
    chains: int
    problems: list[str] = field(default_factory=list)

    def table(self, title: str, **extra: object) -> str:
        rows = {"emitted": self.emitted, "sealed": self.sealed, "rejected": self.rejected,
                "lost": self.lost, "duplicated": self.duplicated, "forks": self.forks,
                "fenced (zombie records refused)": self.fenced, "chains": self.chains, **extra}
        width = max(map(len, rows))
        lines = [title, "-" * (width + 12)]
        lines += [f"{name:<{width}}  {value:>9}" for name, value in rows.items()]
        return "\n".join(lines)


def account(settings: Settings, emitted: int) -> Accounting:
    """Check the archive and the topics against ``emitted`` raw events: verify, every raw
    offset sealed exactly once, every event id once, no fork in the sealed topic's
    admitted chains."""
    problems: list[str] = []
    report = verify(settings)
    problems += [str(f) for c in report.chains for f in c.findings]
    if not report.ok:
        problems.append("verify failed")
    store = store_of(settings)
    records = archived_records(store)
    events = [r for r in records if r["kind"] == "EVENT"]
    ids = Counter(r["event"]["event_id"] for r in events)
    by_chain: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_chain.setdefault(r["chain_id"], []).append(r)
    runs = []
    for chain_id, entries in by_chain.items():
        entries.sort(key=lambda r: r["seq"])
        runs += runs_of(chain_id, [(r["source"]["topic"], r["source"]["partition"],
                                   r["source"]["offset"]) for r in entries])
    covered = {c.partition: c for c in coverage(runs)}
    lost = duplicated = 0
    for partition, end in raw_ends(settings).items():
        c = covered.get(partition)
        if c is None:
            lost += end
            problems.append(f"raw partition {partition}: nothing sealed of {end} records")
            continue
        lost += sum(b - a + 1 for a, b in c.holes) + c.ranges[0][0]
        lost += max(0, end - 1 - c.ranges[-1][1])
        duplicated += sum(b - a + 1 for a, b in c.overlaps)
        if not c.complete or c.ranges != ((0, end - 1),):
            problems.append(f"raw partition {partition}: covered {c.ranges}, holes {c.holes}, "
                            f"twice {c.overlaps}, raw end {end}")
    duplicated += sum(n - 1 for n in ids.values() if n > 1)
    # Forks: in the sealed topic, records the fence refused are zombie writes (fine, as long
    # as none reached the archive); two admitted records with one seq would be a fork.
    fenced = forks = 0
    archived_hashes = {r["entry_hash"] for r in records}
    for partition_records in sealed_topic(settings).values():
        fence = Fence()
        seen: dict[tuple[str, int], bytes] = {}
        for r in partition_records:
            if fence.admit(r, -1, b""):
                key = (r["chain_id"], r["seq"])
                if key in seen and seen[key] != r["entry_hash"]:
                    forks += 1
                seen[key] = r["entry_hash"]
            elif r["entry_hash"] in archived_hashes:
                forks += 1
                problems.append(f"refused record {r['chain_id']} seq {r['seq']} is archived")
        fenced += sum(n for v, n in fence.refused.items() if v is not Verdict.BEHIND)
    if forks:
        problems.append(f"{forks} forks")
    if len(events) != emitted:
        problems.append(f"{len(events)} events archived, {emitted} emitted")
    return Accounting(emitted, len(events), len(records) - len(events), lost, duplicated,
                      forks, fenced, len(by_chain), problems)


class Chaos:
    """Sealer processes in one group, an archiver, and services emitting in waves."""

    def __init__(self, settings: Settings, tmp: Path, seed: int) -> None:
        self.settings = settings
        self.tmp = tmp
        self.rng = random.Random(seed)
        self.sealers: list[Stage] = []
        self.all: list[Stage] = []
        self.started = 0
        self.kills = self.joins = self.leaves = 0
        self.producers: list[Any] = []
        self.emitted = 0
        self.waves = 0

    def start_sealer(self) -> Stage:
        self.started += 1
        stage = Stage(self.settings, "seal", self.tmp / f"seal-{self.started}.log")
        self.sealers.append(stage)
        self.all.append(stage)
        return stage

    def start_archiver(self) -> None:
        self.all.append(Stage(self.settings, "archive", self.tmp / "archive.log"))

    def emit_wave(self, count: int) -> None:
        self.waves += 1
        self.producers.append(run_producer(self.settings, f"svc-{self.waves % 4}", count,
                                           seed=self.waves))

    def reap_producers(self, wait: bool = False) -> None:
        for proc in list(self.producers):
            if wait or proc.poll() is not None:
                self.emitted += finish_producer(proc)["emitted"]
                self.producers.remove(proc)

    def kill_one(self) -> None:
        victim = self.rng.choice(self.sealers)
        victim.kill()
        self.sealers.remove(victim)
        self.kills += 1

    def leave_one(self) -> None:
        victim = self.rng.choice(self.sealers)
        victim.stop(60)
        self.sealers.remove(victim)
        self.leaves += 1

    def step(self, *, min_sealers: int = 1, max_sealers: int = 4) -> str:
        """One random fault: kill, leave or join (a killed or departed sealer is replaced
        so that at least ``min_sealers`` stay)."""
        choice = self.rng.random()
        if choice < 0.6 and len(self.sealers) > 0:
            self.kill_one()
            action = "kill"
        elif choice < 0.8 and len(self.sealers) > min_sealers:
            self.leave_one()
            action = "leave"
        elif len(self.sealers) < max_sealers:
            self.start_sealer()
            self.joins += 1
            action = "join"
        else:
            self.kill_one()
            action = "kill"
        while len(self.sealers) < min_sealers:
            self.start_sealer()
            self.joins += 1
        return action

    def drain(self, timeout: float) -> None:
        """Let the pipeline finish what was emitted."""
        self.reap_producers(wait=True)
        store = store_of(self.settings)
        wait_until(lambda: archived_count(store) >= self.emitted, timeout, "archive",
                   alive=lambda: all(s.alive() for s in [*self.sealers, self.all[0]]))
        time.sleep(3)  # anything beyond would be a duplicate: give it time to show

    def stop(self) -> None:
        for stage in self.all:
            if stage.alive():
                stage.stop(60)

    def kill_all(self) -> None:
        for proc in self.producers:
            proc.kill()
        for stage in self.all:
            if stage.alive():
                stage.kill()


def pause(stage: Stage) -> None:
    os.kill(stage.proc.pid, signal.SIGSTOP)


def resume(stage: Stage) -> None:
    os.kill(stage.proc.pid, signal.SIGCONT)


def sealed_framer(settings: Settings) -> Callable[[dict[str, Any]], bytes]:
    """Sealed records as the sealer writes them to the sealed topic: encoded with the
    SealedRecord schema, registered under the topic's subject, in the Confluent frame."""
    import json

    from confluent_kafka.schema_registry import Schema

    from sealtrail import schemas
    from sealtrail.core.avro import AvroCodec, frame

    schema = schemas.sealed_record()
    codec = AvroCodec(schema)
    schema_id = registry_client(settings.registry_url).register_schema(
        f"{settings.sealed_topic}-value", Schema(json.dumps(schema), "AVRO"))
    return lambda record: frame(schema_id, codec.encode(record))


def inject_zombie_records(settings: Settings, partition: int, count: int) -> int:
    """Write what a zombie sealer writes: ``count`` validly signed records that continue an
    older epoch's head of sealed ``partition`` (the newest admitted record of an epoch
    below the current one), produced after the new owner's records. Returns their epoch."""
    from confluent_kafka import Producer

    from sealtrail.core.chain import ChainHead, seal
    from sealtrail.core.hashing import sha256
    from sealtrail.keys import load_signer

    records = sealed_topic(settings)[partition]
    fence = Fence()
    admitted = [r for r in records if fence.admit(r, -1, b"")]
    newest = admitted[-1]["epoch"]
    old = [r for r in admitted if r["epoch"] < newest]
    assert old, "the partition has only one epoch"
    last = old[-1]
    head = ChainHead(last["chain_id"], last["seq"], last["entry_hash"], last["epoch"])
    framed = sealed_framer(settings)
    signer = load_signer(settings.keys)
    producer = Producer({"bootstrap.servers": settings.bootstrap})
    offset = last["source"]["offset"]
    for i in range(count):
        raw = f"zombie-{i}".encode()
        record = seal(head, {
            "kind": "REJECTION", "event": None,
            "rejection": {"reason": "UNDECODABLE", "detail": "written by a zombie",
                          "raw_sha256": sha256(raw), "raw_size": len(raw)},
            "redaction": dict(last["redaction"], fields=[]),
            "ingested_at": last["ingested_at"] + 1,
            "source": {**last["source"], "offset": offset + 1 + i, "schema_id": None},
        }, signer)
        head = head.advance(record)
        producer.produce(settings.sealed_topic, framed(record), record["chain_id"].encode(),
                         partition=partition)
    assert producer.flush(30) == 0
    return head.epoch


def run_chaos(settings: Settings, tmp_path: Path, *, seed: int, events: int, wave: int,
              faults: int, min_kills: int, min_rebalances: int, interval: float = 4.0,
              title: str = "chaos") -> Accounting:
    """Emit ``events`` in waves of ``wave`` while applying ``faults`` random faults every
    ``interval`` s (at least ``min_kills`` SIGKILLs and ``min_rebalances`` joins/leaves),
    then account for every event and print the summary table."""
    chaos = Chaos(settings, tmp_path, seed)
    try:
        chaos.start_archiver()
        for _ in range(2):
            chaos.start_sealer()
        waves = max(1, events // wave)
        done_faults = 0
        plan: list[str] = ["kill"] * min_kills + ["rebalance"] * min_rebalances
        chaos.rng.shuffle(plan)
        plan += ["any"] * max(0, faults - len(plan))
        rounds = max(waves, len(plan))
        for i in range(rounds):
            if i < waves:
                chaos.emit_wave(wave)
            time.sleep(interval)
            chaos.reap_producers()
            if done_faults < len(plan) and i >= done_faults * rounds / len(plan):
                kind = plan[done_faults]
                if kind == "kill" and chaos.sealers:
                    chaos.kill_one()
                    if not chaos.sealers or chaos.rng.random() < 0.7:
                        chaos.start_sealer()
                        chaos.joins += 1
                elif kind == "rebalance":
                    if len(chaos.sealers) > 1 and chaos.rng.random() < 0.5:
                        chaos.leave_one()
                    else:
                        chaos.start_sealer()
                        chaos.joins += 1
                else:
                    chaos.step()
                done_faults += 1
        if not chaos.sealers:
            chaos.start_sealer()
        chaos.drain(300)
        chaos.stop()
        result = account(settings, chaos.emitted)
        print()
        print(result.table(title, kills=chaos.kills, joins=chaos.joins, leaves=chaos.leaves,
                           **{"sealer processes": chaos.started}))
        assert chaos.kills >= min_kills and chaos.joins + chaos.leaves >= min_rebalances
        return result
    finally:
        chaos.kill_all()
