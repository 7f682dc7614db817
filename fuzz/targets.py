"""The fuzz targets: each takes bytes and raises when an invariant breaks.

Invariants (G10): nothing raises but the documented error types, nothing hangs (the
engines bound each input's time), and where two readers exist they agree.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sealtrail import schemas
from sealtrail.core.avro import AvroCodec, frame
from sealtrail.core.chain import ChainHead, check_entry
from sealtrail.core.signing import Ed25519Signer, Keyring, PublicKey
from sealtrail.errors import DataError, DecodeError, IntegrityError, MalformedInputError

__all__ = ["TARGETS", "Finding", "Target"]

SEED = bytes(range(32))


class Finding(AssertionError):
    """An invariant of a target does not hold for an input."""


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    max_len: int  # inputs longer than this are cut (the engines' -max_len)


# -- shared fixtures, built once per process -------------------------------------------------


@functools.cache
def signer() -> Ed25519Signer:
    return Ed25519Signer(SEED)


@functools.cache
def keyring() -> Keyring:
    s = signer()
    return Keyring.of([PublicKey(s.key_id, s.public_key, 0, None)])


# -- the sealer's per-record path -----------------------------------------------------------

#: Writer schemas registered for the raw topic, in order (ids 1.. on a fresh registry):
#: the AuditEvent, the AuditEvent with an array<null> (the poison shape), a recursive
#: record, and maps of arrays of empty records. AuditEvent v2, pinned: the corpus files are
#: bytes written with these schemas, whatever the newest version (the reader) is.
EVENT_VERSION = 2
WRITERS: tuple[dict[str, Any], ...] = (
    schemas.load(schemas.AUDIT_EVENT, EVENT_VERSION),
    {**schemas.load(schemas.AUDIT_EVENT, EVENT_VERSION), "fields": [
        *schemas.load(schemas.AUDIT_EVENT, EVENT_VERSION)["fields"],
        {"name": "pad", "type": {"type": "array", "items": "null"}, "default": []}]},
    {"type": "record", "name": "AuditEvent", "namespace": "io.sealtrail", "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "next", "type": ["null", "io.sealtrail.AuditEvent"], "default": None}]},
    {"type": "record", "name": "AuditEvent", "namespace": "io.sealtrail", "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "m", "type": {"type": "map", "values": {"type": "array", "items": {
            "type": "record", "name": "E", "fields": []}}}}]},
)


class _SealerRig:
    """A real Sealer on an in-process registry (no broker: seal_value needs none)."""

    def __init__(self) -> None:
        from confluent_kafka.schema_registry import Schema

        from sealtrail.config import Settings
        from sealtrail.pipeline import Sealer
        from sealtrail.policy import load_policy
        from sealtrail.registry import RegistryServer
        from sealtrail.schemas.registry_client import registry_client

        self.server = RegistryServer(db_path=None).start()
        client = registry_client(self.server.url)
        self.ids = [client.register_schema(f"raw-{i}-value", Schema(json.dumps(w), "AVRO"))
                    for i, w in enumerate(WRITERS)]
        settings = Settings(bootstrap="127.0.0.1:1", registry_url=self.server.url,
                            raw_topic="raw", sealed_topic="sealed")
        from sealtrail.pipeline.dlq import DlqCipher

        self.sealer = Sealer(settings, signer=signer(),
                             policy=load_policy(None, b"k" * 32, "k1"), registry=client,
                             dlq=DlqCipher("dlq-fuzz", bytes(32)))
        self.sealer._consumer.close()  # seal_value does no Kafka I/O
        self.sealed = AvroCodec(schemas.sealed_record())
        self.valid = AvroCodec(WRITERS[0]).encode(_event())


def _event() -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "fuzz-1", "event_type": "record.read", "action": "read",
        "occurred_at": 1_700_000_000_000_000,
        "actor": {"id": "u-1", "type": "user", "principal": "p@example.com"},
        "origin": {"service": "s", "instance": "i", "service_version": None,
                   "environment": None, "source_ip": "203.0.113.9", "user_agent": None,
                   "request_id": None, "trace_id": None},
        "resource": {"type": "t", "id": "1"}, "outcome": "SUCCESS", "reason": None,
        "authorization": {"decision": "ALLOW", "policy": "p", "permissions": ["a"]},
        "tenant": None, "classification": "INTERNAL", "attributes": {"email": "a@b.c"}}
    for field in schemas.load(schemas.AUDIT_EVENT, EVENT_VERSION)["fields"]:
        event.setdefault(field["name"], field.get("default"))
    return event


@functools.cache
def sealer_rig() -> _SealerRig:
    return _SealerRig()


def raw_value(data: bytes) -> bytes | None:
    """A raw Kafka value from fuzz bytes: the first byte picks the shape (as is, None,
    framed under one of the WRITERS ids, or the valid event with byte patches)."""
    rig = sealer_rig()
    if not data:
        return None
    mode, rest = data[0] % 8, data[1:]
    if mode < len(rig.ids):
        return frame(rig.ids[mode], rest)
    if mode == 4:
        patched = bytearray(rig.valid)
        for at in range(0, len(rest) - 1, 2):
            patched[rest[at] % len(patched)] = rest[at + 1]
        return frame(rig.ids[0], bytes(patched))
    if mode == 5:  # header ids at the edges of the unsigned range
        return frame(int.from_bytes((rest + bytes(4))[:4], "big"), rest[4:])
    return rest


def fuzz_seal_value(data: bytes) -> None:
    """Every raw value is sealed, never INTERNAL, and the entry decodes and checks out:
    unsigned as seal_value writes it (hash and link), and as the seal of its one-entry
    batch once the sealer closes the transaction (record format 2)."""
    rig = sealer_rig()
    from sealtrail.pipeline.recovery import ChainState

    head = ChainHead.genesis("raw.0.fuzz")
    state = ChainState(head, 0)
    value = raw_value(data)
    framed, record, rejected = rig.sealer.seal_value(state, value, "raw", 0, 0)
    if rejected is not None and rejected.reason == "INTERNAL":
        raise Finding(f"INTERNAL rejection: {rejected.detail}")
    problem = check_entry(head, rig.sealed.decode(framed[5:]), None)
    if problem is not None:
        raise Finding(f"unsigned entry does not check out: {problem}")
    closed = rig.sealer.records.close_batch(state, record)
    problem = check_entry(head, rig.sealed.decode(closed[5:]), keyring())
    if problem is not None:
        raise Finding(f"sealed entry does not check out: {problem}")


# -- segments: the reference and the native reader ------------------------------------------


def fuzz_segment(data: bytes) -> None:
    """read_segment raises only DecodeError; the native reader answers None or exactly the
    reference's canonical bytes."""
    from sealtrail.archive import fast_segments
    from sealtrail.archive.segments import read_segment
    from sealtrail.core.canonical import canonical_json

    try:
        reference = read_segment(data)
    except DecodeError:
        reference = None
    rows = fast_segments.transcode_segment(data)
    if rows is None:
        return
    if reference is None:
        raise Finding("the native reader read a segment the reference refuses")
    try:
        want = [canonical_json(r) for r in reference]
    except (TypeError, ValueError):
        raise Finding("the native reader read records without canonical form") from None
    if [r[fast_segments.RECORD_JSON] for r in rows] != want:
        raise Finding("the native reader and the reference disagree")


# -- checkpoints, notes, proofs, bundles ----------------------------------------------------


def fuzz_checkpoint(data: bytes) -> None:
    from sealtrail.core.checkpoint import SignedCheckpoint

    try:
        signed = SignedCheckpoint.from_bytes(data)
    except IntegrityError:
        return
    # TypeError/ValueError: verify reports these as "malformed" (no signer could make them)
    with contextlib.suppress(TypeError, ValueError):
        signed.problem(keyring())


def fuzz_note(data: bytes) -> None:
    from sealtrail.core.note import verify_note

    with contextlib.suppress(IntegrityError, MalformedInputError):
        verify_note(data, "sealtrail", signer().public_key)


def fuzz_proof(data: bytes) -> None:
    from sealtrail.verify.proof import verify_proof

    with contextlib.suppress(DataError):
        verify_proof(data, keyring())


def fuzz_export(data: bytes) -> None:
    """A bundle: the bytes as a zip, or packed as one bundle member (manifest or proof)."""
    import zipfile

    from sealtrail.export import verify_export

    bundle = data
    if data[:1] in (b"m", b"p"):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            if data[:1] == b"m":
                z.writestr("manifest.json", data[1:])
            else:
                z.writestr("manifest.json", json.dumps({
                    "format": "sealtrail-export/v1", "files": {}, "count": 1}))
                z.writestr("proofs/000000-x.json", data[1:])
        bundle = buf.getvalue()
    with contextlib.suppress(MalformedInputError):
        verify_export(bundle, keyring())


def _registry_target(data: bytes) -> None:
    from fuzz.registry_target import fuzz_registry

    fuzz_registry(data)


def warm() -> None:
    """Import every module the targets use (atheris instruments modules as they import)."""

    import fuzz.registry_target  # noqa: F401


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("seal_value", fuzz_seal_value, 4096),
    Target("segment", fuzz_segment, 16384),
    Target("checkpoint", fuzz_checkpoint, 4096),
    Target("note", fuzz_note, 4096),
    Target("proof", fuzz_proof, 16384),
    Target("export", fuzz_export, 16384),
    Target("registry", _registry_target, 4096),
)}
