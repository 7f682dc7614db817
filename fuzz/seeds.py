"""Seed inputs for every target: real files sealtrail writes, and every hostile input issue
13 quotes. ``python -m fuzz.seeds DIR`` writes them as ``DIR/<target>/<name>.bin`` (the
regression corpus in tests/fuzz_corpus/ was made so, plus what fuzzing found)."""

from __future__ import annotations

import io
import json
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

from fuzz.targets import WRITERS, _event, signer
from sealtrail import schemas
from sealtrail.core.avro import AvroCodec
from sealtrail.core.chain import ChainHead, seal, seal_batch


def zigzag(n: int) -> bytes:
    """``n`` as an Avro long (zigzag varint)."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte, z = z & 0x7F, z >> 7
        out.append(byte | (0x80 if z else 0))
        if not z:
            return bytes(out)


def _records(count: int, schema_id: int, *, batch: bool = False) -> list[dict[str, Any]]:
    """``count`` sealed records of one chain; ``batch``: sealed as one batch (record format
    2: unsigned, the last carrying the batch seal)."""
    head = ChainHead.genesis("raw.0.seed")
    out = []
    for i in range(count):
        event = dict(_event(), event_id=f"seed-{i}") if i % 3 else None
        record = seal(head, {
            "kind": "EVENT" if event else "REJECTION", "event": event,
            "rejection": None if event else {"reason": "UNDECODABLE", "detail": f"seed {i}",
                                             "raw_sha256": bytes(32), "raw_size": i},
            "redaction": {"policy_id": "default", "policy_version": 1, "fields": []},
            "ingested_at": 1_700_000_000_000_000 + i,
            "source": {"topic": "raw", "partition": 0, "offset": i, "schema_id": schema_id},
        }, signer(), sign=not batch)
        head = head.advance(record)
        out.append(record)
    if batch:
        seal_batch(0, [r["entry_hash"] for r in out], out[-1], signer())
    return out


def sealer_seed_segments() -> list[bytes]:
    """Segments of SealedRecord v1 and v2, deflate and null codecs."""
    import fastavro

    from sealtrail.archive.segments import write_segment
    from sealtrail.core.envelope import strip_logical_types

    out = []
    for version in schemas.versions(schemas.SEALED_RECORD):
        schema = schemas.sealed_record(version=version)
        records = _records(4, 7 if version == 1 else 2**32 - 1)
        out.append(write_segment(records, {"sealtrail.chain_id": "raw.0.seed"}, schema))
        buf = io.BytesIO()
        fastavro.writer(buf, fastavro.parse_schema(strip_logical_types(schema),
                                                   _write_hint=False), records, codec="null")
        out.append(buf.getvalue())
    return out


def _poison() -> bytes:
    pad = AvroCodec(WRITERS[1])
    body = pad.encode({**_event(), "pad": []})
    return b"\x01" + body[:-1] + zigzag(2**62) + b"\x00"  # mode 1: the pad writer's id


def _bundle(manifest: bytes, extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", manifest)
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return buf.getvalue()


def _bomb() -> bytes:
    """A bundle whose events.jsonl honestly inflates 32 MiB from about 32 kB."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    size = 32 * 1024 * 1024
    compressed = deflate.compress(bytes(size)) + deflate.flush()
    info = zipfile.ZipInfo("events.jsonl")
    info.compress_type = zipfile.ZIP_DEFLATED
    info.file_size, info.compress_size, info.CRC = size, len(compressed), zlib.crc32(bytes(size))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("manifest.json", json.dumps({"format": "sealtrail-export/v1", "count": 0,
                                                "files": {"events.jsonl": "00" * 32}}))
        z.fp.seek(z.start_dir)  # type: ignore[union-attr]
        info.header_offset = z.fp.tell()  # type: ignore[union-attr]
        z.fp.write(info.FileHeader(False) + compressed)  # type: ignore[union-attr]
        z.start_dir = z.fp.tell()  # type: ignore[union-attr]
        z.filelist.append(info)
        z.NameToInfo[info.filename] = info
    return buf.getvalue()


def _proof(*, batch: bool = False) -> bytes:
    """A valid proof of the first event of a three-entry segment: sealtrail-proof/v1, or
    v2 when the segment is one batch (``batch``)."""
    from sealtrail.core import merkle
    from sealtrail.core.canonical import canonical_json
    from sealtrail.core.checkpoint import Checkpoint
    from sealtrail.verify.proof import proof_document

    s = signer()
    records = _records(3, 9, batch=batch)
    leaves = [r["entry_hash"] for r in records]
    chain = records[0]["chain_id"]
    cp = Checkpoint(chain, 0, 0, 2, leaves[-1], merkle.root(leaves), bytes(32),
                    f"chains/{chain}/segments/0000000000.avro", bytes(32), 100,
                    1_700_000_000_500_000, s.key_id).sign(s)
    position = 1  # records[1] is an event
    return canonical_json(proof_document(
        records[position]["event"]["event_id"], records, position,
        f"chains/{chain}/checkpoints/0000000000.json", cp))


def _export() -> bytes:
    """A valid export bundle holding that proof."""
    import hashlib

    proof = _proof()
    files = {"proofs/000000-seed-1.json": proof, "events.jsonl": b"{}\n"}
    manifest = {"format": "sealtrail-export/v1", "count": 1, "query": "q", "operator": "o",
                "time_range_asked": {"since_utc": None, "until_utc": None},
                "files": {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}}
    return _bundle(json.dumps(manifest).encode(), files)


def seeds() -> dict[str, dict[str, bytes]]:
    """{target: {name: input}}."""
    from sealtrail.core.checkpoint import Checkpoint
    from sealtrail.core.note import checkpoint_body, sign_note

    s = signer()
    cp = Checkpoint("raw.0.seed", 0, 0, 0, bytes(32), bytes(32), bytes(32),
                    "chains/raw.0.seed/segments/0000000000.avro", bytes(32), 10,
                    1_700_000_000_000_000, s.key_id).sign(s)
    note = sign_note(checkpoint_body("sealtrail/raw.0.seed", 1, bytes(32)), "sealtrail", s,
                     s.public_key)
    nested = b"[" * 10_000 + b"]" * 10_000  # the issue used a million: the same path
    return {
        "seal_value": {
            "issue-schema-id-4294967295": b"\x07" + b"\x00\xff\xff\xff\xffjunk",
            "issue-array-poison": _poison(),
            "valid-event": b"\x00" + AvroCodec(WRITERS[0]).encode(_event()),
            "recursive-deep": b"\x02" + b"\x02a\x02" * 200 + b"\x02a\x00",
            "empty-records-map": b"\x03\x02a" + zigzag(1) + b"\x02k" + zigzag(2**40)
            + b"\x00\x00",
            "tombstone": b"",
            "header-only": b"\x00",
            "patched-valid": b"\x04" + bytes(range(40)),
        },
        "segment": {f"real-{i}": seg for i, seg in enumerate(sealer_seed_segments())},
        "checkpoint": {"real": cp.to_bytes(), "nested": nested,
                       "list": b'{"format": "sealtrail-checkpoint/v1", "checkpoint": []}'},
        "note": {"real": note, "no-blank-line": b"a\nb\n", "bad-utf8": b"x\n\n\xff\n"},
        "proof": {"real": _proof(), "real-v2": _proof(batch=True),
                  "issue-deeply-nested": nested,
                  "huge-number": b'{"format": "sealtrail-proof/v1", "n": ' + b"9" * 5000 + b"}",
                  "wrong-types": json.dumps({"format": "sealtrail-proof/v1", "entry": []})
                  .encode()},
        "export": {"real": _export(), "issue-manifest-is-a-list": _bundle(b"[]"),
                   "files-a-list": _bundle(json.dumps({"format": "sealtrail-export/v1",
                                                       "files": [], "count": 0}).encode()),
                   "zip-bomb": _bomb(), "not-a-zip": b"PK\x03\x04",
                   "proof-member": b"p" + nested[:20_000]},
        "registry": {
            "register": b"\x00" + json.dumps({"schema": json.dumps(WRITERS[0])}).encode(),
            "deep-schema": b"\x00" + json.dumps({"schema": "[" * 5000 + "]" * 5000}).encode(),
            "raw-garbage": b"\x05GET /\xff\xfe HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "chunked": b"\x05POST /subjects/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0",
        },
    }


def write(directory: Path) -> None:
    for target, inputs in seeds().items():
        (directory / target).mkdir(parents=True, exist_ok=True)
        for name, data in inputs.items():
            (directory / target / f"{name}.bin").write_bytes(data)


if __name__ == "__main__":
    write(Path(sys.argv[1]))
