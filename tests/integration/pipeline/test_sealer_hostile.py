"""The sealer's per-record path (``Sealer.seal_value``) against hostile raw records, on the
real embedded registry: every record is sealed, none raises (G10)."""

from __future__ import annotations

import json
import random
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema
from helpers.hostile_inputs import (
    EXPECTED_REASON,
    SCHEMA_ID_RECORD,
    Ids,
    event,
    hostile_values,
    pad_writer_schema,
    poison_record,
)

from sealtrail import schemas
from sealtrail.config import Settings
from sealtrail.core.avro import AvroCodec, frame, unframe
from sealtrail.core.chain import ChainHead, Seals, check_entry
from sealtrail.keys import PUBLIC_KEYRING, load_hmac_key, load_keyring, load_signer
from sealtrail.pipeline import Sealer
from sealtrail.pipeline.recovery import ChainState
from sealtrail.policy import load_policy
from sealtrail.schemas.registry_client import registry_client


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the block runs longer than ``seconds``."""
    def timeout(signum: int, frame: Any) -> None:
        raise AssertionError(f"took longer than {seconds} s: the sealer hangs on this input")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def sealer(settings: Settings) -> Iterator[Sealer]:
    hmac_key, hmac_id = load_hmac_key(settings.keys)
    made = Sealer(settings, signer=load_signer(settings.keys),
                  policy=load_policy(settings.policy_file, hmac_key, hmac_id),
                  registry=registry_client(settings.registry_url))
    yield made
    made._consumer.close()  # never subscribed: seal_value needs no Kafka
    made._committer.shutdown()


@pytest.fixture
def ids(settings: Settings) -> Ids:
    registry = registry_client(settings.registry_url)
    good = registry.register_schema(f"{settings.raw_topic}-value", Schema(
        json.dumps(schemas.load(schemas.AUDIT_EVENT)), "AVRO"))
    pad = registry.register_schema(f"{settings.raw_topic}-value", Schema(
        json.dumps(pad_writer_schema()), "AVRO"))
    return Ids(good, pad)


def _decode_sealed(settings: Settings, framed: bytes) -> dict[str, Any]:
    """The sealed record as any reader gets it: with its writer schema from the registry."""
    schema_id, body = unframe(framed)
    text = registry_client(settings.registry_url).get_schema(schema_id).schema_str
    record: dict[str, Any] = AvroCodec(json.loads(text)).decode(body)
    return record


def test_schema_id_at_or_above_2_31_is_sealed_as_unknown_schema(
        sealer: Sealer, settings: Settings) -> None:
    """The 10-byte hostile record (schema id 2^32 - 1) is sealed as UNKNOWN_SCHEMA with
    its unsigned id kept in source.schema_id (SealedRecord v2: a long)."""
    state = ChainState(ChainHead.genesis("t.0.a"), 0)
    _, record, rejected = sealer.seal_value(state, SCHEMA_ID_RECORD, "raw", 0, 7)
    assert rejected is not None and rejected.reason == "UNKNOWN_SCHEMA"
    decoded = _decode_sealed(settings, sealer.records.close_batch(state, record))
    assert decoded["source"]["schema_id"] == 2**32 - 1
    assert decoded["rejection"]["reason"] == "UNKNOWN_SCHEMA"
    assert decoded["rejection"]["raw_size"] == len(SCHEMA_ID_RECORD)
    assert state.head.seq == 0 and state.next_source_offset == 8
    keyring = load_keyring(settings.keys / PUBLIC_KEYRING)
    assert check_entry(ChainHead.genesis("t.0.a"), decoded, keyring) is None


def test_array_poison_record_is_sealed_as_limit_at_once(
        sealer: Sealer, settings: Settings, ids: Ids) -> None:
    """The array poison record (a block of 2^62 nulls) is sealed as LIMIT
    without iterating its items; the same writer schema with a few nulls is accepted."""
    pad = AvroCodec(pad_writer_schema())
    state = ChainState(ChainHead.genesis("t.0.b"), 0)
    with deadline(20):
        _, record, rejected = sealer.seal_value(state, poison_record(ids.pad, pad), "raw", 0, 0)
    assert rejected is not None and rejected.reason == "LIMIT"
    assert "pad" in rejected.detail and "items" in rejected.detail
    ok = frame(ids.pad, pad.encode({**event(1), "pad": [None, None]}))
    _, record, rejected = sealer.seal_value(state, ok, "raw", 0, 1)
    assert rejected is None and record["event"]["event_id"] == event(1)["event_id"]
    assert record["source"]["schema_id"] == ids.pad


def test_every_hostile_shape_is_sealed_with_its_reason(
        sealer: Sealer, settings: Settings, ids: Ids) -> None:
    """Each hostile shape is sealed, in offset order, with the reason it
    deserves; nothing raises, nothing is INTERNAL, and every entry links, and verifies
    under the batch seal that closes them (one batch, as one transaction would)."""
    keyring = load_keyring(settings.keys / PUBLIC_KEYRING)
    state = ChainState(ChainHead.genesis("t.0.c"), 0)
    head, seals = state.head, Seals(0)
    values = hostile_values(random.Random(13), ids, 56, big=settings.max_event_bytes + 1)
    with deadline(120):
        for offset, (label, value) in enumerate(values):
            framed, record, rejected = sealer.seal_value(state, value, "raw", 0, offset)
            if offset == len(values) - 1:
                framed = sealer.records.close_batch(state, record)
            decoded = _decode_sealed(settings, framed)
            assert check_entry(head, decoded, keyring, seals) is None, label
            head = head.advance(decoded)
            reason = None if rejected is None else rejected.reason
            assert reason != "INTERNAL", (label, rejected)
            if label in EXPECTED_REASON:
                assert reason == EXPECTED_REASON[label], (label, rejected)
    assert not seals.open  # the seal verified over every entry of the batch
    assert state.next_source_offset == len(values) and state.head == head


class _Exploding:
    """The real policy, except that it raises (quoting a value) for one actor: a stand-in
    for any bug on the record's path."""

    def __init__(self, real: Any) -> None:
        self.policy_id, self.version, self._real = real.policy_id, real.version, real

    def __call__(self, event: dict[str, Any]) -> Any:
        if event["actor"]["id"] == "u-7":
            raise ValueError(f"cannot redact {event['event_id']} secret-value-xyz")
        return self._real(event)


def test_an_unexpected_failure_is_sealed_as_internal_and_sealing_goes_on(
        sealer: Sealer, settings: Settings, ids: Ids) -> None:
    """An exception of any type on one record's path becomes an INTERNAL rejection that
    names the exception type and place but quotes nothing of the record; the next record
    is sealed as usual and the chain stays whole."""
    sealer.records.policy = _Exploding(sealer.records.policy)  # type: ignore[assignment]
    codec = AvroCodec(schemas.load(schemas.AUDIT_EVENT))
    state = ChainState(ChainHead.genesis("t.0.d"), 0)
    bad = frame(ids.good, codec.encode(event(7)))
    framed, record, rejected = sealer.seal_value(state, bad, "raw", 0, 0)
    assert rejected is not None and rejected.reason == "INTERNAL"
    assert "ValueError" in rejected.detail and "test_sealer_hostile.py" in rejected.detail
    assert "secret-value-xyz" not in rejected.detail
    assert event(7)["event_id"] not in rejected.detail
    assert _decode_sealed(settings, framed)["source"]["schema_id"] == ids.good
    _, record, rejected = sealer.seal_value(state, frame(ids.good, codec.encode(event(8))),
                                            "raw", 0, 1)
    assert rejected is None and record["seq"] == 1
