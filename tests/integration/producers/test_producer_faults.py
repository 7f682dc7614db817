"""Producer faults on the real stack: an emitting process killed with SIGKILL, and the
broker replaced by a fresh, empty one while events are being emitted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from helpers.paths import TESTS
from helpers.pipeline_checks import archived_records, store_of, verify, wait_until
from helpers.producer_proxy import KafkaCutProxy
from helpers.stages import Stage, with_settings

from sealtrail.config import Settings
from sealtrail.kafka.admin import ensure_topics
from sealtrail.producers import AuditClient
from sealtrail.runtime import dev

EMITTER = TESTS / "helpers" / "producer_emitter.py"


def start_emitter(settings: Settings, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(EMITTER), "--service", "orders", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **settings.to_env()},
    )


def archived_event_ids(settings: Settings) -> Counter[str]:
    return Counter(r["event"]["event_id"] for r in archived_records(store_of(settings))
                   if r["kind"] == "EVENT")


def test_emitter_killed_mid_stream_loses_nothing_and_its_spool_drains_on_restart(
    settings: Settings, stages: list[Stage], tmp_path: Path
) -> None:
    """SIGKILL a process while it emits; a restarted process finds the spool and sends
    what was not acknowledged: every event emit() returned is archived exactly once."""
    stages.append(Stage(settings, "seal", tmp_path / "seal.log"))
    stages.append(Stage(settings, "archive", tmp_path / "archive.log"))
    first = start_emitter(settings, "--count", "200000")
    accepted: list[str] = []
    assert first.stdout is not None
    for line in first.stdout:
        accepted.append(line.strip())
        if len(accepted) >= 6000:
            break
    first.kill()
    first.wait()
    accepted += [x.strip() for x in first.stdout.read().splitlines() if x.strip()]
    accepted = [x for x in accepted if not x.startswith("{")]
    spool = settings.home / "spool"
    assert any(p.suffix == ".seg" for p in spool.rglob("*")), "no spool left behind"
    second = start_emitter(settings, "--drain")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["remaining"] == 0
    assert report["recovered"] > 0, "the kill came after everything was acknowledged"
    wait_until(lambda: set(accepted) <= set(archived_event_ids(settings)), 90,
               "every accepted event in the archive",
               alive=lambda: all(s.alive() for s in stages))
    time.sleep(2)  # give any duplicate the chance to show
    for stage in stages:
        assert stage.stop() == 0, stage.output()
    ids = archived_event_ids(settings)
    assert set(accepted) <= set(ids)
    assert max(ids.values()) == 1, [i for i, n in ids.items() if n > 1][:5]
    assert verify(settings).ok


def start_broker(port: int, advertised: int) -> subprocess.Popen[bytes]:
    """A fresh in-memory Tansu on ``port`` that advertises the proxy at ``advertised``."""
    cmd = dev.broker_command(port)
    cmd[cmd.index("--advertised-listener-url") + 1] = f"tcp://127.0.0.1:{advertised}"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dev.wait_for_port(port, 20, proc)
    return proc


class Emitter(threading.Thread):
    """Emits at a steady rate on a thread; ``accepted`` holds every id emit() returned."""

    def __init__(self, client: AuditClient, rate: float) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.rate = rate
        self.accepted: list[str] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        i = 0
        while not self.stop.is_set():
            delay = start + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                self.accepted.append(self.client.emit(
                    "record.update", "update", actor_id=f"u-{i % 40}",
                    resource_type="order", resource_id=f"o-{i}"))
            except BaseException as exc:  # the test asserts there were none
                self.errors.append(exc)
            i += 1


def raw_high_watermarks(settings: Settings) -> int:
    consumer = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": "probe"})
    try:
        return sum(consumer.get_watermark_offsets(
            TopicPartition(settings.raw_topic, p), timeout=10, cached=False)[1]
            for p in range(settings.partitions))
    finally:
        consumer.close()


def test_broker_replaced_under_load_every_event_archived_exactly_once(
    settings: Settings, stages: list[Stage], tmp_path: Path
) -> None:
    """Emit throughout while the broker goes away and a fresh, empty one takes its place:
    emit() never fails, the spool carries the events over, and every event emit() returned
    is archived exactly once."""
    proxy_port, broker_port = dev.free_port(), dev.free_port()
    broker = start_broker(broker_port, proxy_port)
    proxy = KafkaCutProxy(proxy_port, broker_port)
    s = with_settings(settings, bootstrap=f"127.0.0.1:{proxy_port}")
    client: AuditClient | None = None
    try:
        ensure_topics(s)
        stages.append(Stage(s, "seal", tmp_path / "seal-a.log"))
        stages.append(Stage(s, "archive", tmp_path / "archive-a.log"))
        client = AuditClient(service="orders", bootstrap=s.bootstrap,
                             registry_url=s.registry_url, topic=s.raw_topic,
                             spool_dir=tmp_path / "spool", stall_seconds=3)
        emitter = Emitter(client, rate=1500)
        emitter.start()
        wait_until(lambda: client is not None and client.delivered > 3000, 30, "deliveries")
        # The broker goes away for the producer (its last requests are answered first).
        proxy.cut("sealtrail-producer-")
        time.sleep(1)
        # What broker A holds is sealed and archived before A is stopped: its storage is
        # memory only, so anything left there would be lost by the broker, not the client.
        store = store_of(s)
        on_a = raw_high_watermarks(s)
        wait_until(lambda: len(archived_event_ids(s)) >= on_a, 60, "broker A archived",
                   alive=lambda: all(st.alive() for st in stages))
        for stage in stages:
            assert stage.stop() == 0, stage.output()
        sealed_on_a = set(archived_event_ids(s))
        broker.kill()
        broker.wait()
        spooled_before = client.metrics.counts.spooled
        time.sleep(2)  # emit() keeps accepting while no broker is there
        broker = start_broker(broker_port, proxy_port)
        ensure_topics(s)
        stages.append(Stage(s, "seal", tmp_path / "seal-b.log"))
        stages.append(Stage(s, "archive", tmp_path / "archive-b.log"))
        proxy.restore()
        wait_until(lambda: client is not None and client.pending < 500, 60, "spool drained")
        time.sleep(2)
        emitter.stop.set()
        emitter.join()
        assert client.flush(60) == 0
        assert emitter.errors == []
        assert client.metrics.counts.spooled > spooled_before
        accepted = emitter.accepted
        wait_until(lambda: set(accepted) <= set(archived_event_ids(s)), 90,
                   "every accepted event in the archive",
                   alive=lambda: all(st.alive() for st in stages[2:]))
        time.sleep(2)
        for stage in stages[2:]:
            assert stage.stop() == 0, stage.output()
        ids = archived_event_ids(s)
        assert set(ids) == set(accepted)
        assert max(ids.values()) == 1, [i for i, n in ids.items() if n > 1][:5]
        assert verify(s).ok
        # Per key (actor), the archive holds the events in the order they were emitted:
        # what broker A sealed first, then broker B's chain, where the spool went first.
        records = [r for r in archived_records(store) if r["kind"] == "EVENT"]
        for key in {f"u-{i % 40}" for i in range(40)}:
            wanted = [e for i, e in enumerate(accepted) if f"u-{i % 40}" == key]
            mine = [r for r in records if r["event"]["actor"]["id"] == key]
            on_a = sorted((r for r in mine if r["event"]["event_id"] in sealed_on_a),
                          key=lambda r: r["seq"])
            on_b = sorted((r for r in mine if r["event"]["event_id"] not in sealed_on_a),
                          key=lambda r: r["seq"])
            assert [r["event"]["event_id"] for r in on_a + on_b] == wanted, key
    finally:
        if client is not None:
            client.close(timeout=1)
        proxy.close()
        broker.kill()
        broker.wait()
