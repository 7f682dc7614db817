"""Reading back what the pipeline produced: archive contents, waits, raw injection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer

from sealtrail.archive import ArchiveStore, open_archive
from sealtrail.archive.segments import read_segment
from sealtrail.config import Settings
from sealtrail.core import layout
from sealtrail.core.checkpoint import SignedCheckpoint
from sealtrail.keys import PUBLIC_KEYRING, load_keyring
from sealtrail.verify import ArchiveReport, verify_archive


def store_of(settings: Settings) -> ArchiveStore:
    return open_archive(settings)


def archived_count(store: ArchiveStore) -> int:
    total = 0
    for key in store.list(layout.CHAINS):
        if "/checkpoints/" in key:
            total += SignedCheckpoint.from_bytes(store.get(key)).checkpoint.size
    return total


def archived_records(store: ArchiveStore) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for key in store.list(layout.CHAINS):
        if "/segments/" in key:
            records.extend(read_segment(store.get(key)))
    return records


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               alive: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        assert alive(), f"a stage died while waiting for {what}"
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def verify(settings: Settings) -> ArchiveReport:
    keyring = load_keyring(settings.keys / PUBLIC_KEYRING)
    return verify_archive(store_of(settings), keyring)


def run_producer(settings: Settings, service: str, count: int, seed: int = 0,
                 rate: float = 0.0) -> subprocess.Popen[bytes]:
    """A simulated service emitting ``count`` events (at most ``rate``/s), as a process."""
    return subprocess.Popen(
        [sys.executable, "-m", "sealtrail.demo.traffic", "--service", service,
         "--count", str(count), "--seed", str(seed), "--rate", str(rate)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, **settings.to_env()},
    )


def finish_producer(proc: subprocess.Popen[bytes], timeout: float = 120) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode(errors="replace")
    report: dict[str, Any] = json.loads(out)
    return report


def produce_raw(settings: Settings, values: list[bytes | None], key: bytes = b"raw") -> None:
    producer = Producer({"bootstrap.servers": settings.bootstrap})
    for value in values:
        producer.produce(settings.raw_topic, value, key)
    assert producer.flush(30) == 0
