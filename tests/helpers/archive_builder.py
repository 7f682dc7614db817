"""Build a local archive for verify tests without Kafka, and tamper with it afterwards.

:func:`build_archive` seals N chains x M segments x K records with the real sealing code
(:func:`sealtrail.core.chain.seal`, an :class:`Ed25519Signer`) and writes them with the
real :class:`SegmentWriter` (one segment plus one signed checkpoint per chain per flush).
Entries are entry-signed (record format 1) unless ``batch`` asks for batch seals (record
format 2, :func:`sealtrail.core.chain.seal_batch`).
Each chain stands for one raw partition whose source offsets run contiguously from 0,
unless a gap is asked for. Keys come from fixed seeds, so archives are reproducible.

The tamper helpers write files directly with pathlib: the local store refuses to
overwrite objects, an attacker with file-system access does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sealtrail.archive import ArchiveStore, open_store
from sealtrail.archive.segments import read_segment, write_segment
from sealtrail.consumers.archiver import SegmentWriter
from sealtrail.core import layout, merkle
from sealtrail.core.chain import BATCH_SEAL_SIZE, ChainHead, entry_hash, seal, seal_batch
from sealtrail.core.checkpoint import Checkpoint, SignedCheckpoint
from sealtrail.core.hashing import SIG_CHECKPOINT_DOMAIN, SIG_ENTRY_DOMAIN
from sealtrail.core.merkle import Frontier
from sealtrail.core.signing import Ed25519Signer, Keyring, PublicKey

__all__ = [
    "T0",
    "BuiltArchive",
    "Clock",
    "build_archive",
    "forge_checkpoint",
    "keyring_of",
    "make_event",
    "reseal",
    "segment_bytes",
    "signer",
    "write_keyring",
    "write_object",
]

#: ingested_at of the first record: 2024-01-01T00:00:00Z in microseconds.
T0 = 1_704_067_200_000_000
#: Microseconds between two consecutive records (and a record and its checkpoint).
TICK = 1_000
RAW_TOPIC = "audit.raw"
POLICY = ("default", 3)
EVENT_TYPES = (
    ("auth.login", "login", "session"),
    ("record.read", "read", "patient_record"),
    ("record.update", "update", "invoice"),
    ("admin.role_grant", "grant", "role"),
)


def signer(name: str) -> Ed25519Signer:
    """A deterministic Ed25519 signer for ``name`` (seed = SHA-256 of the name)."""
    return Ed25519Signer(hashlib.sha256(f"sealtrail-test-key:{name}".encode()).digest())


def keyring_of(
    *signers: Ed25519Signer, windows: dict[str, tuple[int, int | None]] | None = None
) -> Keyring:
    """A keyring trusting ``signers``; ``windows`` maps key ids to (not_before, not_after)."""
    windows = windows or {}
    keys = []
    for s in signers:
        not_before, not_after = windows.get(s.key_id, (0, None))
        keys.append(PublicKey(s.key_id, s.public_key, not_before, not_after))
    return Keyring.of(keys)


def write_keyring(path: Path, keyring: Keyring) -> Path:
    """Write ``keyring`` as a public.json file at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(keyring.to_json(), indent=2) + "\n")
    return path


class Clock:
    """A fake microsecond clock that moves only when told (shared by sealing and archiving)."""

    def __init__(self, start: int = T0) -> None:
        self.now = start

    def tick(self, by: int = TICK) -> int:
        self.now += by
        return self.now

    def __call__(self) -> int:
        return self.now


def make_event(n: int, partition: int) -> dict[str, Any]:
    """A realistic AuditEvent (every field present, as Avro decoding returns it)."""
    event_type, action, resource_type = EVENT_TYPES[n % len(EVENT_TYPES)]
    denied = n % 5 == 3
    return {
        "event_id": f"{partition:02d}-{n:06d}-{hashlib.md5(str(n).encode()).hexdigest()[:12]}",
        "event_type": event_type,
        "action": action,
        "occurred_at": T0 - 250_000 + n * TICK,
        "actor": {"id": f"user-{n % 7}", "type": "user",
                  "principal": f"oidc|user-{n % 7}@example.com", "on_behalf_of": None,
                  "display_name": None, "email": None},
        "origin": {
            "service": "billing-api", "instance": f"billing-api-{partition}",
            "service_version": "2.4.1", "environment": "test",
            "source_ip": f"10.0.{partition}.{n % 250 + 1}", "user_agent": "curl/8.5.0",
            "request_id": f"req-{partition}-{n}", "trace_id": f"{n:032x}",
        },
        "resource": {"type": resource_type, "id": f"{resource_type}-{n * 13 % 1000}"},
        "outcome": "DENIED" if denied else "SUCCESS",
        "reason": "missing permission billing:write" if denied else None,
        "authorization": {
            "decision": "DENY" if denied else "ALLOW",
            "policy": "rbac-v7",
            "permissions": ["billing:read", "billing:write"] if denied else ["billing:read"],
        },
        "tenant": f"tenant-{partition % 2}",
        "session_id": None,
        "classification": "CONFIDENTIAL" if n % 2 else "INTERNAL",
        "attributes": {"amount_cents": str(100 * n), "currency": "EUR"},
    }


def _unsealed(n: int, partition: int, offset: int, ingested_at: int,
              rejection: bool) -> dict[str, Any]:
    record: dict[str, Any] = {
        "kind": "EVENT",
        "event": None,
        "rejection": None,
        "redaction": {"policy_id": POLICY[0], "policy_version": POLICY[1],
                      "fields": ["actor.principal=hmac", "origin.source_ip=truncate"]},
        "ingested_at": ingested_at,
        "source": {"topic": RAW_TOPIC, "partition": partition, "offset": offset,
                   "schema_id": 1},
    }
    if rejection:
        raw = b"\x00\x00\x00\x00\x63not-avro"
        record["kind"] = "REJECTION"
        record["redaction"]["fields"] = []
        record["rejection"] = {"reason": "UNKNOWN_SCHEMA",
                               "detail": "schema id 99 is not in the registry",
                               "raw_sha256": hashlib.sha256(raw).digest(),
                               "raw_size": len(raw)}
        record["source"]["schema_id"] = 99
    else:
        record["event"] = make_event(n, partition)
    return record


@dataclass
class BuiltArchive:
    """An archive written by :func:`build_archive`, with what a test needs to attack it."""

    root: Path
    keyring_path: Path
    keyring: Keyring
    chain_ids: list[str]
    sealers: list[Ed25519Signer]
    archivers: list[Ed25519Signer]
    segments: int
    records_per_segment: int
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    batch: int | None = None  # record format 2: at most this many entries per batch seal

    @property
    def store(self) -> ArchiveStore:
        return open_store(self.root)

    def path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def segment_key(self, chain: int | str, index: int) -> str:
        return layout.segment_key(self._chain(chain), index)

    def checkpoint_key(self, chain: int | str, index: int) -> str:
        return layout.checkpoint_key(self._chain(chain), index)

    def segment_path(self, chain: int | str, index: int) -> Path:
        return self.path(self.segment_key(chain, index))

    def checkpoint_path(self, chain: int | str, index: int) -> Path:
        return self.path(self.checkpoint_key(chain, index))

    def first_seq(self, index: int) -> int:
        """First seq of segment ``index`` (every segment holds records_per_segment)."""
        return index * self.records_per_segment

    def read_records(self, chain: int | str, index: int) -> list[dict[str, Any]]:
        return read_segment(self.segment_path(chain, index).read_bytes())

    def read_checkpoint(self, chain: int | str, index: int) -> SignedCheckpoint:
        return SignedCheckpoint.from_bytes(self.checkpoint_path(chain, index).read_bytes())

    def frontier_before(self, chain: int | str, index: int) -> Frontier:
        """The chain's Merkle tree before segment ``index`` (what a forger restating
        checkpoint ``index`` extends)."""
        if index == 0:
            return Frontier()
        found = self.read_checkpoint(chain, index - 1).checkpoint.frontier
        assert found is not None, "a format v1 checkpoint states no tree"
        return found

    def signed_by(self, chain: int | str, seq: int) -> int:
        """The seq of the signed entry whose signature covers entry ``seq`` as built: the
        entry itself when entry-signed, the seal of its batch in record format 2."""
        return next(r["seq"] for r in self.records[self._chain(chain)][seq:] if r["signature"])

    def _chain(self, chain: int | str) -> str:
        return self.chain_ids[chain] if isinstance(chain, int) else chain


def build_archive(
    base: Path,
    *,
    chains: int = 2,
    segments: int = 3,
    records: int = 4,
    gap: tuple[int, int, int] | None = None,
    rejections: Sequence[int] = (1, 6),
    separate_archiver_key: bool = False,
    rotate_at: int | None = None,
    keyring: Keyring | None = None,
    batch: int | None = None,
) -> BuiltArchive:
    """Write ``chains`` x ``segments`` x ``records`` sealed records under ``base/archive``
    and the trusting keyring as ``base/keys/public.json``.

    ``gap=(chain, seq, skipped)``: from ``seq`` on, that chain's source offsets jump by
    ``skipped`` (raw records lost). ``rejections``: per-chain indices of REJECTION entries.
    ``separate_archiver_key``: checkpoints are signed by their own key (as when the sealer
    and the archiver hold different keys). ``rotate_at``: from that segment index on, new
    keys sign; the keyring closes the old keys' windows just before the rotation.
    ``keyring``: write this keyring instead of the one trusting every key used.
    ``batch``: record format 2: entries are sealed unsigned and every ``batch``-th entry
    since the last seal, and the last entry of each segment, is a batch seal (segments end
    at a seal, as the archiver cuts them).
    """
    root = base / "archive"
    store = open_store(root)
    clock = Clock()
    sealers = [signer("sealer-1")]
    archivers = [signer("archiver-1") if separate_archiver_key else sealers[0]]
    if rotate_at is not None:
        sealers.append(signer("sealer-2"))
        archivers.append(signer("archiver-2") if separate_archiver_key else sealers[1])
    chain_ids = [f"{RAW_TOPIC}.{p}.{hashlib.sha256(bytes([p])).hexdigest()[:16]}"
                 for p in range(chains)]
    heads = {c: ChainHead.genesis(c) for c in chain_ids}
    offsets = dict.fromkeys(chain_ids, 0)
    sealed: dict[str, list[dict[str, Any]]] = {c: [] for c in chain_ids}
    batches: dict[str, list[bytes]] = {c: [] for c in chain_ids}  # open batches' hashes
    windows: dict[str, tuple[int, int | None]] = {}
    generation = 0

    def trusted() -> Keyring:  # what the archiver's tail checks trust, as the keys rotate
        return keyring_of(*{k.key_id: k for k in [*sealers, *archivers]}.values(),
                          windows=windows)

    writer = SegmentWriter(store, archivers[0], retention_days=1, clock=clock,
                           keyring=trusted)
    for index in range(segments):
        if rotate_at is not None and index == rotate_at:
            windows[sealers[0].key_id] = (0, clock.now)
            windows[archivers[0].key_id] = (0, clock.now)
            clock.tick()
            windows[sealers[1].key_id] = (clock.now, None)
            windows[archivers[1].key_id] = (clock.now, None)
            generation = 1
            writer = SegmentWriter(store, archivers[1], retention_days=1, clock=clock,
                                   keyring=trusted)
        for p, chain_id in enumerate(chain_ids):
            for n in range(records):
                seq = heads[chain_id].seq + 1
                if gap is not None and gap[0] == p and gap[1] == seq:
                    offsets[chain_id] += gap[2]
                unsealed = _unsealed(seq, p, offsets[chain_id], clock.tick(),
                                     rejection=seq in rejections)
                record = _seal_next(heads[chain_id], unsealed, sealers[generation],
                                    batch, batches[chain_id], n == records - 1)
                heads[chain_id] = heads[chain_id].advance(record)
                offsets[chain_id] += 1
                sealed[chain_id].append(record)
                writer.add(record)
        clock.tick()
        writer.flush()
    used = {s.key_id: s for s in [*sealers, *archivers]}
    if keyring is None:
        keyring = keyring_of(*used.values(), windows=windows)
    keyring_path = write_keyring(base / "keys" / "public.json", keyring)
    return BuiltArchive(root, keyring_path, keyring, chain_ids, sealers, archivers,
                        segments, records, sealed, batch)


def _seal_next(head: ChainHead, unsealed: dict[str, Any], sealer: Ed25519Signer,
               batch: int | None, pending: list[bytes], last: bool) -> dict[str, Any]:
    """Seal the next entry: entry-signed when ``batch`` is None; else unsigned, and the
    seal of the open batch (whose hashes ``pending`` holds) when it is the ``batch``-th
    or the ``last`` of its segment."""
    record = seal(head, unsealed, sealer, sign=batch is None)
    if batch is not None:
        pending.append(record["entry_hash"])
        if len(pending) == batch or last:
            seal_batch(record["seq"] + 1 - len(pending), pending, record, sealer)
            pending.clear()
    return record


# -- tampering ---------------------------------------------------------------------------


def _restate(cp: Checkpoint, records: list[dict[str, Any]], before: Frontier | None
             ) -> Checkpoint:
    """``cp`` restated, consistently, for ``records`` (what a holder of the key can do)."""
    leaves = [r["entry_hash"] for r in records]
    tree: dict[str, Any] = {}
    if cp.version == 2:
        frontier = (before or Frontier()).copy()
        frontier.extend([merkle.leaf_hash(h) for h in leaves])
        tree = {"tree_size": frontier.size, "tree_root": frontier.root(),
                "tree_frontier": tuple(frontier.nodes)}
    return replace(cp, first_seq=records[0]["seq"], last_seq=records[-1]["seq"],
                   head_hash=records[-1]["entry_hash"], merkle_root=merkle.root(leaves),
                   **tree)


def write_object(path: Path, data: bytes) -> None:
    """Replace the file at ``path`` with ``data``, as an attacker with disk access would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        os.chmod(path, path.stat().st_mode | stat.S_IWUSR)
    path.write_bytes(data)


def reseal(
    records: list[dict[str, Any]],
    start: int,
    resigner: Ed25519Signer | None = None,
    *,
    key_id: str | None = None,
) -> list[dict[str, Any]]:
    """Recompute prev_hash and entry_hash of ``records[start:]`` so that they chain again.

    With ``resigner`` each entry is signed again by it in the form it had, naming ``key_id``
    (default: the resigner's own id): an entry signature over the new hash, a batch seal
    over its batch as it now stands (the entries after the previous signed one in
    ``records``, or from its first), an unsigned entry left unsigned. Without, the old
    signatures are kept.
    """
    prev = records[start - 1]["entry_hash"] if start else records[0]["prev_hash"]
    first = 0  # where the open batch starts in records
    for position, record in enumerate(records):
        if position >= start:
            if position:
                record["seq"] = records[position - 1]["seq"] + 1
            record["prev_hash"] = prev
            if resigner is not None:
                record["key_id"] = key_id or resigner.key_id
            digest = entry_hash(record)
            record["entry_hash"] = digest
            prev = digest
            if resigner is not None and len(record["signature"]) == BATCH_SEAL_SIZE:
                seal_batch(records[first]["seq"],
                           [r["entry_hash"] for r in records[first:position + 1]], record,
                           resigner)
            elif resigner is not None and record["signature"]:
                record["signature"] = resigner.sign(SIG_ENTRY_DOMAIN + digest)
        if record["signature"]:
            first = position + 1
    return records


def segment_bytes(chain_id: str, records: Iterable[dict[str, Any]]) -> bytes:
    """A segment file of ``records``, written as the archiver writes one."""
    records = list(records)
    return write_segment(records, {
        "sealtrail.chain_id": chain_id,
        "sealtrail.first_seq": str(records[0]["seq"]),
        "sealtrail.last_seq": str(records[-1]["seq"]),
    })


def forge_checkpoint(
    original: SignedCheckpoint,
    forger: Ed25519Signer,
    *,
    key_id: str | None = None,
    records: list[dict[str, Any]] | None = None,
    segment: bytes | None = None,
    before: Frontier | None = None,
) -> bytes:
    """The bytes of ``original`` re-signed by ``forger`` under ``key_id`` (default: the
    forger's id), after restating it for ``records`` stored as ``segment`` if given (a
    version 2 checkpoint's chain tree too: ``before`` is the tree before the segment,
    default empty)."""
    cp = original.checkpoint
    if records is not None:
        cp = _restate(cp, records, before)
    if segment is not None:
        cp = replace(cp, segment_sha256=hashlib.sha256(segment).digest(),
                     segment_size=len(segment))
    cp = replace(cp, key_id=key_id or forger.key_id)
    digest = cp.digest()
    return SignedCheckpoint(cp, digest, forger.sign(SIG_CHECKPOINT_DOMAIN + digest)).to_bytes()

