"""The sealer's hot path with the native codecs against the same path without them: the
same raw records, sealed into the same chain with the same clock and keys, give the same
framed sealed records byte for byte (so the same entry hashes and signatures), for
accepted events of every AuditEvent version, tricky strings, and every kind of rejection."""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema

from sealtrail import schemas
from sealtrail.config import Settings
from sealtrail.core import avro_program, canonical
from sealtrail.core.avro import AvroCodec, frame
from sealtrail.core.chain import ChainHead
from sealtrail.keys import load_hmac_key, load_signer
from sealtrail.pipeline import Sealer
from sealtrail.pipeline.recovery import ChainState
from sealtrail.policy import load_policy
from sealtrail.schemas.registry_client import registry_client

pytestmark = pytest.mark.skipif(
    not avro_program.AVAILABLE or canonical._native is None,
    reason="the native codecs (sealtrail.core._avro_native, _canonical_native) are not "
    "built: reinstall sealtrail where a C compiler and the Python headers are present")

TRICKY = ['"quoted" \\ back', "tab\tnew\nline\x00\x1f", "\x7f\u2028\u00e9\u65e5\U0001f512",
          "\uffff\ue000\U0001f600", "/slash"]


def _event(rng: random.Random, n: int, version: int) -> dict[str, Any]:
    text = rng.choice(TRICKY) if n % 3 == 0 else f"v-{n}"
    event: dict[str, Any] = {
        "event_id": f"e-{n}", "event_type": "record.read", "action": "read",
        "occurred_at": 1_700_000_000_000_000 + n,
        "actor": {"id": f"u-{n % 7}", "type": "user",
                  "principal": None if n % 4 else f"u-{n}@idp.example.com"},
        "origin": {"service": "billing", "instance": "b-1", "service_version": "1.0",
                   "environment": None, "source_ip": f"203.0.113.{n % 250}",
                   "user_agent": text, "request_id": f"r-{n}", "trace_id": None},
        "resource": {"type": "invoice", "id": text}, "outcome": "SUCCESS",
        "reason": text if n % 5 == 0 else None,
        "authorization": None if n % 2 else {"decision": "ALLOW", "policy": "rbac",
                                             "permissions": ["a", text]},
        "tenant": "t-1", "classification": "INTERNAL",
        "attributes": {"email": f"u{n}@example.com", "password": "p" * (n % 3),
                       text: text, "n": str(n)},
    }
    if version >= 2:
        event["session_id"] = f"s-{n}"
        event["actor"]["on_behalf_of"] = None if n % 2 else "agent"
    return event


def _raw_records(settings: Settings) -> list[bytes | None]:
    client = registry_client(settings.registry_url)
    ids = {}
    for version in schemas.versions(schemas.AUDIT_EVENT):
        schema = schemas.load(schemas.AUDIT_EVENT, version)
        ids[version] = (client.register_schema(f"{settings.raw_topic}-value",
                                               Schema(json.dumps(schema), "AVRO")),
                        AvroCodec(schema))
    rng = random.Random(16)
    out: list[bytes | None] = []
    for n in range(300):
        version = rng.choice(list(ids))
        sid, codec = ids[version]
        out.append(frame(sid, codec.encode(_event(rng, n, version))))
    sid, codec = ids[max(ids)]
    invalid = _event(rng, 900, max(ids))
    invalid["action"] = " "
    out += [frame(sid, codec.encode(invalid)),          # INVALID
            out[5],                                     # DUPLICATE
            b"\x00\x00\x00",                            # UNDECODABLE (short header)
            frame(sid, b"\x02\x61"),                    # UNDECODABLE (truncated body)
            frame(sid, codec.encode(_event(rng, 901, max(ids))) + b"\x00"),  # trailing byte
            frame(987_654, b"\x00"),                    # UNKNOWN_SCHEMA
            None,                                       # no value
            frame(sid, b"x" * (settings.max_event_bytes + 1))]  # OVERSIZE
    return out


def _seal_all(settings: Settings, values: list[bytes | None]) -> list[bytes]:
    keys = settings.keys
    hmac_key, hmac_id = load_hmac_key(keys)
    sealer = Sealer(settings, signer=load_signer(keys),
                    policy=load_policy(settings.policy_file, hmac_key, hmac_id),
                    registry=registry_client(settings.registry_url), clock=lambda: 42)
    state = ChainState(ChainHead.genesis("raw.0.native"), 0)
    try:
        return [sealer.seal_value(state, value, "raw", 0, offset)[0]
                for offset, value in enumerate(values)]
    finally:
        sealer._consumer.close()  # (run() is never called: nothing else closes it)


def test_native_and_reference_paths_seal_the_same_bytes(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = dataclasses.replace(settings, max_event_bytes=4096)
    values = _raw_records(settings)
    native = _seal_all(settings, values)
    with monkeypatch.context() as patch:
        patch.setattr(avro_program, "native", None)
        patch.setattr(canonical, "_native", None)
        assert AvroCodec(schemas.sealed_record())._encoder is None
        reference = _seal_all(settings, values)
    assert len(native) == len(reference) == len(values)
    for i, (a, b) in enumerate(zip(native, reference, strict=True)):
        assert a == b, f"record {i} differs"
    # the run covered what it claims: every rejection reason and both kinds of entry
    sealed = AvroCodec(schemas.sealed_record())
    records = [sealed.decode(v[5:]) for v in native]
    reasons = {r["rejection"]["reason"] for r in records if r["rejection"]}
    assert reasons == {"INVALID", "DUPLICATE", "UNDECODABLE", "UNKNOWN_SCHEMA", "OVERSIZE"}
    assert sum(r["kind"] == "EVENT" for r in records) == 300
