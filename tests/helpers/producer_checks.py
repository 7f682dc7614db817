"""What a producer wrote: the raw topic read back, and a client's spool decoded."""

from __future__ import annotations

import struct
import time
import uuid
from typing import Any

from confluent_kafka import Consumer

from sealtrail import schemas
from sealtrail.config import Settings
from sealtrail.core.avro import AvroCodec, unframe
from sealtrail.producers import AuditClient

CODEC = AvroCodec(schemas.load(schemas.AUDIT_EVENT))


def consume(settings: Settings, count: int, timeout: float = 30
            ) -> list[tuple[str, dict[str, Any]]]:
    """(key, event) of the first ``count`` records of the raw topic, per-partition order."""
    consumer = Consumer({"bootstrap.servers": settings.bootstrap,
                         "group.id": f"probe-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    consumer.subscribe([settings.raw_topic])
    out: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            _sid, body = unframe(msg.value())
            out.append((msg.key().decode(), CODEC.decode(body)))
    finally:
        consumer.close()
    return out


def spooled(client: AuditClient) -> list[dict[str, Any]]:
    """Every event in the client's spool, in emit order (format of producers/spool.py)."""
    events = []
    for seg in sorted(client.spool_dir.glob("*.seg")):
        data = seg.read_bytes()
        pos = 0
        while pos + 8 <= len(data):
            length, _crc = struct.unpack_from(">II", data, pos)
            if length < 2:  # preallocated, not yet written
                break
            payload = data[pos + 8:pos + 8 + length]
            (klen,) = struct.unpack_from(">H", payload)
            _sid, body = unframe(payload[2 + klen:])
            events.append(CODEC.decode(body))
            pos += 8 + length
    return events
