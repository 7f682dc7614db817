"""Raw records an attacker with write access to the raw topic can send (G10), shared by
the sealer tests, the hostile-traffic end-to-end test and the fuzz regression corpus."""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass
from typing import Any

from sealtrail import schemas
from sealtrail.core.avro import AvroCodec, frame

#: Magic byte 0 and schema id 2^32 - 1: crashed every sealer when the sealed record's
#: schema_id was a signed int (the 10-byte record that once broke the sealer).
SCHEMA_ID_RECORD = b"\x00\xff\xff\xff\xffjunk"

#: The array block count of the poison record: fastavro skipped 2^62 nulls one by one.
POISON_COUNT = 2**62


def zigzag(n: int) -> bytes:
    """``n`` as an Avro long (zigzag varint)."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte = z & 0x7F
        z >>= 7
        if z:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pad_writer_schema() -> dict[str, Any]:
    """The AuditEvent plus ``pad: array<null>`` with default ``[]``: a BACKWARD (indeed
    FULL) compatible writer schema whose array items encode to zero bytes."""
    schema = json.loads(json.dumps(schemas.load(schemas.AUDIT_EVENT)))
    schema["fields"].append({"name": "pad", "type": {"type": "array", "items": "null"},
                             "default": []})
    return dict(schema)


def event(i: int, *, service: str = "hostile-test") -> dict[str, Any]:
    """A valid AuditEvent (every field of the newest version)."""
    base: dict[str, Any] = {
        "event_id": f"hostile-{service}-{i:06d}", "event_type": "record.read", "action": "read",
        "occurred_at": 1_700_000_000_000_000 + i,
        "actor": {"id": f"u-{i % 50}", "type": "user", "principal": None},
        "origin": {"service": service, "instance": "i-1", "service_version": None,
                   "environment": None, "source_ip": None, "user_agent": None,
                   "request_id": None, "trace_id": None},
        "resource": {"type": "customer", "id": f"c-{i}"}, "outcome": "SUCCESS",
        "reason": None, "authorization": None, "tenant": None, "classification": "INTERNAL",
        "attributes": {},
    }
    for field in schemas.load(schemas.AUDIT_EVENT)["fields"]:
        base.setdefault(field["name"], field.get("default"))
    return base


def poison_record(pad_id: int, pad_codec: AvroCodec, i: int = 0) -> bytes:
    """A valid event under the pad schema whose (last) ``pad`` array claims
    :data:`POISON_COUNT` nulls in one block (the 99-byte array poison record)."""
    body = pad_codec.encode({**event(i, service="poison"), "pad": []})
    assert body[-1:] == b"\x00", "pad is the last field: an empty array is one 0 byte"
    return frame(pad_id, body[:-1] + zigzag(POISON_COUNT) + b"\x00")


@dataclass(frozen=True)
class Ids:
    """Registry ids the hostile records are written against."""

    good: int  # the newest AuditEvent
    pad: int  # pad_writer_schema()


#: Event ids of the accepted pad-valid records: unique in a process, so none is sealed as
#: a DUPLICATE of another (random ids collided within a partition at volume).
_PAD_OK_IDS = itertools.count()


def hostile_values(rng: random.Random, ids: Ids, n: int,
                   *, big: int = 900_000) -> list[tuple[str, bytes | None]]:
    """``n`` hostile raw values, cycling through every hostile shape we know, each labelled
    with its shape. ``big`` is the size of the large values (900 kB by default)."""
    good = AvroCodec(schemas.load(schemas.AUDIT_EVENT))
    pad = AvroCodec(pad_writer_schema())
    valid = good.encode(event(rng.randrange(10**6), service="hostile"))
    shapes = [
        ("random", lambda: rng.randbytes(rng.randrange(1, 200))),
        ("empty", lambda: b""),
        ("tombstone", lambda: None),
        ("unknown-id", lambda: frame(rng.randrange(10**6, 2**31), valid)),
        ("id>=2^31", lambda: frame(rng.randrange(2**31, 2**32), valid)),
        ("issue-schema-id", lambda: SCHEMA_ID_RECORD),
        ("truncated", lambda: frame(ids.good, valid[: rng.randrange(1, len(valid))])),
        ("trailing", lambda: frame(ids.good, valid + rng.randbytes(rng.randrange(1, 9)))),
        ("header-only", lambda: frame(ids.good, b"")),
        ("wrong-magic", lambda: bytes([rng.randrange(1, 256)]) + frame(ids.good, valid)[1:]),
        ("big", lambda: frame(ids.good, rng.randbytes(big))),
        ("poison", lambda: poison_record(ids.pad, pad, rng.randrange(10**6))),
        ("poison-random-count", lambda: frame(ids.pad, pad.encode(
            {**event(1, service="poison"), "pad": []})[:-1]
            + zigzag(rng.randrange(10**5 + 1, 2**63)) + b"\x00")),
        ("pad-valid", lambda: frame(ids.pad, pad.encode(
            {**event(next(_PAD_OK_IDS), service="pad-ok"), "pad": [None] * 3}))),
    ]
    return [(label, make()) for label, make in
            (shapes[i % len(shapes)] for i in range(n))]


#: The reason each shape is sealed with (pad-valid is accepted: its event is fine).
EXPECTED_REASON = {
    "empty": "UNDECODABLE", "tombstone": "UNDECODABLE", "unknown-id": "UNKNOWN_SCHEMA",
    "id>=2^31": "UNKNOWN_SCHEMA", "issue-schema-id": "UNKNOWN_SCHEMA",
    "truncated": "UNDECODABLE", "trailing": "UNDECODABLE", "header-only": "UNDECODABLE",
    "wrong-magic": "UNDECODABLE", "big": "OVERSIZE", "poison": "LIMIT",
    "poison-random-count": "LIMIT", "pad-valid": None,
}
