"""``sealtrail dlq read | rotate-key``: the encrypted dead-letter copies of rejected records."""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from sealtrail.cli.common import keys_hint, keys_location, operator_option, settings_from, using
from sealtrail.config import Settings
from sealtrail.errors import DataError


def configure_dlq(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Rejected raw records never went through the redaction policy, so the sealer copies "
        "them to the DLQ topic encrypted under dlq.key (keys directory, 0600); the sealed "
        "chain holds only their reason, size and SHA-256. Reading them needs that key and is "
        "itself an audit event (chain of custody). See docs/operations.md.")
    actions = p.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    r = actions.add_parser(
        "read", help="decrypt and list the dead letters",
        description="Read the DLQ topic from its beginning to its current end, decrypt each "
        "record with dlq.key (or a retired DLQ key), and list reason, raw coordinates, chain "
        "and seq, size and SHA-256. --out writes each raw record's value (and key) as files "
        "(0600) to repair and re-send; --json prints JSON lines with the bytes in base64.")
    r.add_argument("--out", metavar="DIR", help="write <topic>.<partition>.<offset>.value "
                   "(and .key) files into DIR (created 0700)")
    r.add_argument("--json", action="store_true", help="JSON lines, bytes in base64")
    r.add_argument("--max", type=int, default=10_000, metavar="N",
                   help="read at most N records (default 10000)")
    r.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="give up waiting for the topic after S seconds")
    operator_option(r, "in the chain-of-custody event")
    r.set_defaults(func=_read)
    k = actions.add_parser(
        "rotate-key", help="replace dlq.key (the old key is kept in retired/)",
        description="Create a new dlq.key; the old one moves to <keys_dir>/retired/ so dead "
        "letters it encrypted stay readable until the topic's retention removes them, after "
        "which the retired file can be deleted. Restart the sealers to use the new key.")
    k.set_defaults(func=_rotate)


def _read(args: argparse.Namespace) -> None:
    from sealtrail.custody import operator_name, require_access
    from sealtrail.pipeline.dlq import DlqKeys

    settings = settings_from(args).require_endpoints()
    with using(keys_location(settings), hint=keys_hint(settings)):
        keys = DlqKeys(settings.keys)
    messages = _consume(settings, args.max, args.timeout)
    letters, problems = [], []
    for partition, offset, value, headers in messages:
        try:
            letters.append((partition, offset, keys.open(value, headers)))
        except Exception as exc:  # one bad message is reported, the others still read
            problems.append(f"{settings.dlq_topic}/{partition}@{offset}: {exc}")
    custody = require_access(settings, tool="dlq", operator=operator_name(settings, args.operator),
                             query=f"dlq read {settings.dlq_topic}", count=len(letters))
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
    for partition, offset, letter in letters:
        if out is not None:
            _write_files(out, letter)
        if args.json:
            print(json.dumps(_as_json(partition, offset, letter), sort_keys=True))
        else:
            value = letter.value or b""
            print(f"{partition}@{offset}  {letter.reason:<14} raw {letter.topic}/"
                  f"{letter.partition}@{letter.offset}  chain {letter.chain_id}#{letter.seq}  "
                  f"{len(value)} bytes  sha256 {hashlib.sha256(value).hexdigest()[:16]}")
    for problem in problems:
        print(f"UNREADABLE {problem}", file=sys.stderr)
    print(f"{len(letters)} dead letters read from {settings.dlq_topic}"
          f"{f', written to {out}' if out else ''} (DLQ keys of the "
          f"{keys_location(settings)})", file=sys.stderr)
    print(custody.message, file=sys.stderr)
    if problems:
        raise DataError(f"{len(problems)} dead letters of {settings.dlq_topic} could not be "
                        f"read with the DLQ keys of {settings.keys} (listed above)")


def _consume(settings: Settings, limit: int, timeout: float
             ) -> list[tuple[int, int, bytes, dict[str, str]]]:
    """(partition, offset, value, headers) of the topic's committed records, from the
    beginning to the end it had when called; nothing is committed."""
    import time
    import uuid

    from confluent_kafka import Consumer, TopicPartition

    from sealtrail.errors import TransportError
    from sealtrail.kafka.client import kafka_config

    topic, bootstrap = settings.dlq_topic, settings.bootstrap
    consumer = Consumer({**kafka_config(settings), "enable.auto.commit": False,
                         "group.id": f"sealtrail-dlq-read-{uuid.uuid4().hex[:8]}",
                         "isolation.level": "read_committed"})
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None:
            raise TransportError(f"DLQ topic {topic} not found on {bootstrap}")
        ends: dict[int, int] = {}
        starts = []
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p),
                                                       timeout=timeout)
            if high > low:
                ends[p] = high
                starts.append(TopicPartition(topic, p, low))
        found: list[tuple[int, int, bytes, dict[str, str]]] = []
        if not starts:
            return found
        consumer.assign(starts)
        deadline = time.monotonic() + timeout
        while ends and len(found) < limit and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.5):
                if msg.error() is not None:
                    continue
                p, offset = msg.partition(), msg.offset()
                headers = {k: (v or b"").decode("utf-8", "replace")
                           for k, v in (msg.headers() or [])}
                found.append((p, offset, msg.value() or b"", headers))
                if offset >= ends.get(p, 0) - 1:
                    ends.pop(p, None)
        return found[:limit]
    finally:
        consumer.close()


def _as_json(partition: int, offset: int, letter: Any) -> dict[str, Any]:
    def b64(data: bytes | None) -> str | None:
        return None if data is None else base64.b64encode(data).decode()

    return {"dlq_partition": partition, "dlq_offset": offset, "reason": letter.reason,
            "chain_id": letter.chain_id, "seq": letter.seq, "topic": letter.topic,
            "partition": letter.partition, "offset": letter.offset,
            "key_base64": b64(letter.key), "value_base64": b64(letter.value)}


def _write_files(out: Path, letter: Any) -> None:
    from sealtrail.runtime.durable import write_private_bytes

    stem = f"{letter.topic}.{letter.partition}.{letter.offset}"
    write_private_bytes(out / f"{stem}.value", letter.value or b"")
    if letter.key is not None:
        write_private_bytes(out / f"{stem}.key", letter.key)


def _rotate(args: argparse.Namespace) -> None:
    from sealtrail.pipeline.dlq import rotate_dlq_key

    settings = settings_from(args)
    with using(keys_location(settings), hint=keys_hint(settings)):
        old, new = rotate_dlq_key(settings.keys)
    print(f"DLQ key rotated: {old} -> {new}; {old} kept in retired/ to read older dead "
          "letters. Restart the sealers to encrypt with the new key.")
