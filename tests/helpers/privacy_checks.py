"""Helpers of the privacy tests: running the CLI, reading whole topics, gathering every
sink a value could leak into, and looking for canaries in them."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from sealtrail.config import Settings

COMMAND = [sys.executable, "-m", "sealtrail.cli.main"]


def cli(cwd: Path, settings: Settings | None, *args: str | Path,
        extra_env: dict[str, str] | None = None,
        timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run ``sealtrail ARGS`` with ``settings`` (and only them) in the environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEALTRAIL_")}
    env = {**base, **(settings.to_env() if settings else {}), **(extra_env or {})}
    proc = subprocess.run([*COMMAND, *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def topic_messages(settings: Settings, topic: str, timeout: float = 60
                   ) -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    """Every committed message of ``topic`` now: (key, value, headers)."""
    consumer = Consumer({"bootstrap.servers": settings.bootstrap,
                         "group.id": f"privacy-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    found: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics[topic]
        ends, starts = {}, []
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            if high > low:
                ends[p] = high
                starts.append(TopicPartition(topic, p, low))
        if not starts:
            return found
        consumer.assign(starts)
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        # Transaction markers take offsets but are never delivered: stop when every
        # partition's position reached its end, or nothing came for 3 s.
        while time.monotonic() < deadline and time.monotonic() - quiet_since < 3:
            batch = consumer.consume(500, 0.5)
            for msg in batch:
                if msg.error() is None:
                    found.append((msg.key(), msg.value(), list(msg.headers() or [])))
            if batch:
                quiet_since = time.monotonic()
            positions = consumer.position([TopicPartition(topic, p) for p in ends])
            if all(tp.offset >= ends[tp.partition] for tp in positions):
                break
    finally:
        consumer.close()
    return found


def message_bytes(messages: Iterable[tuple[bytes | None, bytes | None,
                                          list[tuple[str, bytes]]]]) -> bytes:
    out = io.BytesIO()
    for key, value, headers in messages:
        out.write(key or b"")
        out.write(b"\n")
        out.write(value or b"")
        out.write(b"\n")
        for name, raw in headers:
            out.write(name.encode() + b"=" + (raw or b"") + b"\n")
    return out.getvalue()


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by its path (zip files also by each member)."""
    found: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")) if root.is_dir() else [root]:
        if not path.is_file():
            continue
        data = path.read_bytes()
        found[str(path)] = data
        if path.suffix == ".zip":
            with zipfile.ZipFile(io.BytesIO(data)) as bundle:
                for name in bundle.namelist():
                    found[f"{path}!{name}"] = bundle.read(name)
    return found


def leaks(sinks: dict[str, bytes], needles: Iterable[bytes]) -> list[tuple[str, bytes]]:
    """(sink, needle) for every needle found in a sink, case-insensitively."""
    lowered = {name: data.lower() for name, data in sinks.items()}
    return [(name, needle) for needle in needles for name, data in lowered.items()
            if needle.lower() in data]


def private_modes(paths: Iterable[Path]) -> dict[str, str]:
    """Paths whose mode lets group or others in, with the mode."""
    return {str(p): oct(p.stat().st_mode & 0o777) for p in paths
            if p.exists() and p.stat().st_mode & 0o077}


def event_values(record: dict[str, Any]) -> list[str]:
    """Every string inside a sealed record (for the acceptance check's source_ip test)."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str):
            out.append(node)

    walk(record)
    return out
