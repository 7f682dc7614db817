"""Proof for one event: an outside auditor checks it offline with only a public keyring.

A proof file (``sealtrail prove``) is the canonical JSON (docs/format.md, "Canonical JSON")
of::

    {"format": "sealtrail-proof/v1",
     "how": HOW,                       the fixed text below, saying how to check it
     "event_id": "...",
     "entry": {...},                   the sealed record in the canonical value model, with
                                       "entry_hash" and "signature" (lowercase hex)
     "leaf_index": i, "tree_size": n,  position of the entry in its checkpoint's Merkle tree
     "inclusion_proof": ["hex", ...],  RFC 6962 audit path, leaf level first
     "checkpoint_key": "chains/<chain>/checkpoints/<index>.json",
     "checkpoint": {...}}              the signed checkpoint exactly as archived

Every byte is covered: the file must be exactly the canonical form of what it holds, every
value is either hashed, signed, or must equal what the signed values imply.
:func:`verify_proof` does all checks and raises IntegrityError naming the first that fails.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sealtrail import layout
from sealtrail.archive import ArchiveStore, ObjectMissingError
from sealtrail.core import merkle
from sealtrail.core.canonical import ENTRY_FIELDS, canonical_json, entry_body
from sealtrail.core.checkpoint import SignedCheckpoint
from sealtrail.core.hashing import ENTRY_DOMAIN, SIG_ENTRY_DOMAIN, sha256
from sealtrail.core.note import checkpoint_body, sign_note
from sealtrail.core.signing import Keyring, Signer
from sealtrail.errors import DataError, DecodeError, IntegrityError, MalformedInputError
from sealtrail.inputs import ListOf, Shape, check_shape, load_json
from sealtrail.retention import walk_units
from sealtrail.segments import read_segment

__all__ = ["HOW", "ProofResult", "build_proof", "chain_note", "load_proof", "verify_proof"]

NONE = type(None)

FORMAT = "sealtrail-proof/v1"
HOW = (
    "entry_hash = SHA-256('sealtrail:entry:v1' 0x00 || canonical JSON of entry without "
    "entry_hash and signature); Ed25519 signature over 'sealtrail:sig:entry:v1' 0x00 || "
    "entry_hash by entry.key_id, valid at entry.ingested_at; RFC 6962 leaf = "
    "SHA-256(0x00 || entry_hash), inclusion_proof to checkpoint.merkle_root at leaf_index = "
    "seq - first_seq of tree_size = last_seq - first_seq + 1; checkpoint signed per "
    "docs/format.md; the file is its own canonical JSON"
)


class EventNotFoundError(DataError):
    """No archived entry holds the event id."""


def _value_model(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record (body plus seal) in the canonical JSON value model (bytes as hex)."""
    doc: dict[str, Any] = json.loads(canonical_json(entry_body(record)))
    doc["entry_hash"] = record["entry_hash"].hex()
    doc["signature"] = record["signature"].hex()
    return doc


def build_proof(store: ArchiveStore, event_id: str) -> bytes:
    """The proof file for ``event_id`` (the first archived entry carrying it)."""
    for unit in walk_units(store):
        for position, record in enumerate(unit.records):
            event = record.get("event")
            if isinstance(event, Mapping) and event.get("event_id") == event_id:
                cp_bytes = store.get(unit.checkpoint_key)
                signed = SignedCheckpoint.from_bytes(cp_bytes)
                leaves = [r["entry_hash"] for r in unit.records]
                doc = {
                    "format": FORMAT, "how": HOW, "event_id": event_id,
                    "entry": _value_model(record),
                    "leaf_index": position, "tree_size": len(leaves),
                    "inclusion_proof": [h.hex() for h in merkle.inclusion_proof(leaves,
                                                                                position)],
                    "checkpoint_key": unit.checkpoint_key,
                    "checkpoint": json.loads(signed.to_bytes()),
                }
                return canonical_json(doc)
    raise EventNotFoundError(f"no archived entry holds event {event_id!r} in {store.url}")


@dataclass(frozen=True)
class ProofResult:
    event_id: str
    chain_id: str
    seq: int
    checkpoint_index: int
    key_id: str


def _hex(value: Any, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise IntegrityError(f"{what} must be a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise IntegrityError(f"{what} is not hex") from None
    if raw.hex() != value or (size is not None and len(raw) != size):
        raise IntegrityError(f"{what} must be {size or 'some'} bytes of lowercase hex")
    return raw


#: The largest proof file: one entry (an event is at most max_event_bytes), a checkpoint and
#: an audit path of at most 64 hashes.
MAX_PROOF_BYTES = 16 * 1024 * 1024
_HEX = str
_ENTRY = Shape({"chain_id": str, "seq": int, "epoch": int, "kind": str, "event": (dict, NONE),
                "rejection": (dict, NONE), "redaction": dict, "ingested_at": int,
                "source": dict, "prev_hash": _HEX, "key_id": str, "entry_hash": _HEX,
                "signature": _HEX})
PROOF_SHAPE = Shape({"format": str, "how": str, "event_id": str, "entry": _ENTRY,
                     "leaf_index": int, "tree_size": int,
                     "inclusion_proof": ListOf(_HEX, 64), "checkpoint_key": str,
                     "checkpoint": Shape({"format": str, "checkpoint": Shape({
                         "chain_id": str, "index": int, "first_seq": int, "last_seq": int,
                         "head_hash": _HEX, "merkle_root": _HEX, "prev_checkpoint_hash": _HEX,
                         "segment_key": str, "segment_sha256": _HEX, "segment_size": int,
                         "created_at": int, "key_id": str}, exact=False),
                         "checkpoint_hash": _HEX, "signature": _HEX})})


def load_proof(data: bytes, what: str = "proof") -> dict[str, Any]:
    """The proof document in ``data`` once its size, nesting, structure and types are those
    of a proof; MalformedInputError otherwise (nothing is checked yet)."""
    doc = load_json(data, what=what, max_bytes=MAX_PROOF_BYTES)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise MalformedInputError(f"{what} is not a {FORMAT} document")
    check_shape(doc, PROOF_SHAPE, what)
    return doc


def verify_proof(data: bytes, keyring: Keyring) -> ProofResult:
    """Check a proof file offline against ``keyring``: MalformedInputError when it is not a
    proof at all (:func:`load_proof`), IntegrityError when its evidence does not hold."""
    doc = load_proof(data)
    try:
        canonical = canonical_json(doc)
    except (TypeError, ValueError) as exc:  # a float, a lone surrogate
        raise IntegrityError(f"proof holds a value without canonical form: {exc}") from None
    if canonical != data:
        raise IntegrityError("proof file is not in canonical form (it was altered)")
    expected_keys = {"format", "how", "event_id", "entry", "leaf_index", "tree_size",
                     "inclusion_proof", "checkpoint_key", "checkpoint"}
    if set(doc) != expected_keys:
        raise IntegrityError(f"proof fields are {sorted(doc)}, expected {sorted(expected_keys)}")
    if doc["how"] != HOW:
        raise IntegrityError("proof 'how' text differs from the format's")
    entry = doc["entry"]
    if not isinstance(entry, dict) or set(entry) != {*ENTRY_FIELDS, "entry_hash", "signature"}:
        raise IntegrityError("proof entry does not hold exactly the sealed record fields")
    body = {k: entry[k] for k in ENTRY_FIELDS}
    digest = sha256(ENTRY_DOMAIN, canonical_json(body))
    stated = _hex(entry["entry_hash"], "entry_hash", 32)
    if digest != stated:
        raise IntegrityError(f"entry hash {stated.hex()} does not match the entry "
                             f"(calculated {digest.hex()})")
    signature = _hex(entry["signature"], "signature", 64)
    ingested = entry["ingested_at"]
    if not isinstance(ingested, int) or not isinstance(entry["key_id"], str):
        raise IntegrityError("entry ingested_at/key_id have the wrong type")
    problem = keyring.verify(entry["key_id"], SIG_ENTRY_DOMAIN + digest, signature,
                             at_us=ingested)
    if problem:
        raise IntegrityError(f"entry signature: {problem}")
    event = entry["event"]
    if not isinstance(event, dict) or event.get("event_id") != doc["event_id"]:
        raise IntegrityError("the entry does not hold the event the proof names")
    signed = SignedCheckpoint.from_bytes(canonical_json(doc["checkpoint"]))
    if signed.to_bytes() != canonical_json(doc["checkpoint"]):
        raise IntegrityError("checkpoint is not in its archived canonical form")
    cp_problem = signed.problem(keyring)
    if cp_problem:
        raise IntegrityError(f"checkpoint: {cp_problem}")
    cp = signed.checkpoint
    if cp.chain_id != entry["chain_id"]:
        raise IntegrityError(f"checkpoint is of chain {cp.chain_id}, entry of "
                             f"{entry['chain_id']}")
    if doc["checkpoint_key"] != layout.checkpoint_key(cp.chain_id, cp.index):
        raise IntegrityError("checkpoint_key does not name the checkpoint")
    seq = entry["seq"]
    if not isinstance(seq, int) or not cp.first_seq <= seq <= cp.last_seq:
        raise IntegrityError(f"entry seq {seq} is outside checkpoint {cp.index} "
                             f"({cp.first_seq}..{cp.last_seq})")
    if doc["leaf_index"] != seq - cp.first_seq or doc["tree_size"] != cp.size:
        raise IntegrityError("leaf_index/tree_size do not match the entry and checkpoint")
    path = doc["inclusion_proof"]
    if not isinstance(path, list):
        raise IntegrityError("inclusion_proof must be a list")
    proof = [_hex(p, "inclusion proof element", 32) for p in path]
    root = merkle.root_from_inclusion_proof(doc["leaf_index"], doc["tree_size"],
                                            merkle.leaf_hash(digest), proof)
    if root != cp.merkle_root:
        raise IntegrityError(f"inclusion proof leads to root {root.hex()}, checkpoint "
                             f"{cp.index} states {cp.merkle_root.hex()}")
    return ProofResult(doc["event_id"], cp.chain_id, seq, cp.index, entry["key_id"])


# -- C2SP checkpoint notes ------------------------------------------------------------------


def chain_note(store: ArchiveStore, chain_id: str, *, origin: str, name: str,
               signer: Signer, public_key: bytes, index: int | None = None) -> bytes:
    """Checkpoint ``index`` (default: the newest) of ``chain_id`` as a C2SP signed note.

    The chain is the log: tree size = last_seq + 1, root = RFC 6962 root of the entry
    hashes of seq 0..last_seq (read from the segments up to that checkpoint), and one
    extension line ``sealtrail-checkpoint <index> <checkpoint_hash hex>``."""
    keys = [k for k in store.list(f"{layout.CHAINS}{chain_id}/checkpoints/")
            if layout.parse_index(k) is not None]
    if not keys:
        raise DataError(f"chain {chain_id!r} has no checkpoint in {store.url}")
    last = len(keys) - 1 if index is None else index
    leaves: list[bytes] = []
    signed = None
    for i in range(last + 1):
        try:
            signed = SignedCheckpoint.from_bytes(store.get(layout.checkpoint_key(chain_id, i)))
        except ObjectMissingError:
            raise DataError(f"checkpoint {i} of {chain_id!r} is missing") from None
        cp = signed.checkpoint
        if cp.segment_key:
            try:
                records = read_segment(store.get(cp.segment_key))
            except (ObjectMissingError, DecodeError) as exc:
                raise DataError(f"segment {cp.segment_key} is unusable: {exc}") from None
            leaves.extend(r["entry_hash"] for r in records)
        if len(leaves) != cp.last_seq + 1:
            raise DataError(f"checkpoint {i} of {chain_id!r} does not follow on from the "
                            "segments before it; run `sealtrail verify` first")
    assert signed is not None
    body = checkpoint_body(
        f"{origin}/{chain_id}", len(leaves), merkle.root(leaves),
        [f"sealtrail-checkpoint {signed.checkpoint.index} {signed.checkpoint_hash.hex()}"])
    return sign_note(body, name, signer, public_key)
