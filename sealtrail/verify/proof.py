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

for an entry with an entry signature (record format 1). An entry of a batch (record format
2: unsigned, or a batch seal) gets ``"format": "sealtrail-proof/v2"``, ``"how": HOW_V2``
and one more member, ``"batch"``: the way from the entry to the batch seal that signs it
(:mod:`sealtrail.verify.proof_batch`).

Every byte is covered: the file must be exactly the canonical form of what it holds, every
value is either hashed, signed, or must equal what the signed values imply.
:func:`verify_proof` does all checks and raises IntegrityError naming the first that fails.

:func:`build_proof` and :func:`chain_note` read the archive through the one verifier
(:mod:`sealtrail.verify`): they prove nothing from a chain that does not check out up to
and including what they prove.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sealtrail.archive import ArchiveStore
from sealtrail.core import layout, merkle
from sealtrail.core.canonical import ENTRY_FIELDS, canonical_json, entry_body
from sealtrail.core.chain import Seals
from sealtrail.core.chain_walk import Step
from sealtrail.core.checkpoint import Checkpoint, SignedCheckpoint
from sealtrail.core.hashing import ENTRY_DOMAIN, sha256
from sealtrail.core.hexfield import hex_bytes
from sealtrail.core.note import checkpoint_body, consistency_request, sign_note
from sealtrail.core.signing import Keyring, Signer
from sealtrail.errors import DataError, IntegrityError, MalformedInputError
from sealtrail.inputs import ListOf, Shape, check_shape, load_json
from sealtrail.verify.proof_batch import BATCH_SHAPE, batch_part, check_batch, signed_alone

__all__ = ["FORMAT", "FORMAT_V2", "HOW", "HOW_V2", "ProofResult", "build_proof",
           "chain_note", "load_proof", "proof_document", "verify_proof"]

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
FORMAT_V2 = "sealtrail-proof/v2"
HOW_V2 = (
    "entry_hash = SHA-256('sealtrail:entry:v1' 0x00 || canonical JSON of entry without "
    "entry_hash and signature); entry.signature is empty, or the batch seal's when entry.seq "
    "= batch.last_seq (then entry.entry_hash, key_id, ingested_at and signature equal "
    "batch.seal's); RFC 6962 leaf = SHA-256(0x00 || entry_hash), batch.inclusion_proof to "
    "batch_root at batch.leaf_index = seq - batch.first_seq of size batch.last_seq - "
    "batch.first_seq + 1; batch.seal.signature = 0x01 || Ed25519 over "
    "'sealtrail:sig:batch:v1' 0x00 || first_seq, last_seq (uint64 big-endian) || "
    "seal.ingested_at (int64 big-endian) || batch_root || seal.entry_hash by "
    "batch.seal.key_id, valid at seal.ingested_at; batch.first_seq..last_seq within "
    "checkpoint.first_seq..last_seq; inclusion_proof to checkpoint.merkle_root at "
    "leaf_index = seq - first_seq of tree_size = last_seq - first_seq + 1; checkpoint "
    "signed per docs/format.md; the file is its own canonical JSON"
)


class EventNotFoundError(DataError):
    """No archived entry holds the event id."""


def _value_model(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record (body plus seal) in the canonical JSON value model (bytes as hex)."""
    doc: dict[str, Any] = json.loads(canonical_json(entry_body(record)))
    doc["entry_hash"] = record["entry_hash"].hex()
    doc["signature"] = record["signature"].hex()
    return doc


class _Found(Exception):
    """Stops a walk at what it was looking for."""

    def __init__(self, step: Step, position: int = 0) -> None:
        self.step = step
        self.position = position


def proof_document(event_id: str, records: Sequence[Mapping[str, Any]], position: int,
                   checkpoint_key: str, signed: SignedCheckpoint) -> dict[str, Any]:
    """The proof of ``records[position]``, an entry of the segment ``records`` (all of it,
    checked against ``signed`` through the one verifier) that ``signed`` covers: format v1
    for an entry signed on its own, v2 with the batch part for an entry of a batch."""
    leaves = [r["entry_hash"] for r in records]
    record = records[position]
    doc = {
        "format": FORMAT, "how": HOW, "event_id": event_id, "entry": _value_model(record),
        "leaf_index": position, "tree_size": len(leaves),
        "inclusion_proof": [h.hex() for h in merkle.inclusion_proof(leaves, position)],
        "checkpoint_key": checkpoint_key, "checkpoint": json.loads(signed.to_bytes()),
    }
    if not signed_alone(record):
        doc.update(format=FORMAT_V2, how=HOW_V2, batch=batch_part(records, position))
    return doc


def build_proof(store: ArchiveStore, event_id: str, keyring: Keyring) -> bytes:
    """The proof file for ``event_id`` (the first archived entry carrying it), from a chain
    verified against ``keyring`` up to and including the segment that holds it.
    EventNotFoundError when no chain holds it; IntegrityError naming the breaks when it is
    in no chain that checks out that far."""
    from sealtrail.verify import now_us, walk_chain

    def look(step: Step) -> None:
        records = step.outcome.records if step.outcome is not None else None
        for position, record in enumerate(records or ()):
            event = record.get("event")
            if isinstance(event, Mapping) and event.get("event_id") == event_id:
                raise _Found(step, position)

    breaks = []
    now = now_us()
    for chain_id in layout.chain_ids(store.list(layout.CHAINS)):
        try:
            walk = walk_chain(store, chain_id, keyring, now=now, want_records=True,
                              on_step=look)
        except _Found as found:
            step = found.step
            assert step.outcome is not None and step.outcome.records is not None
            return canonical_json(proof_document(event_id, step.outcome.records,
                                                 found.position, step.key, step.signed))
        if walk.finding is not None:
            breaks.append(walk.finding)
    if breaks:
        raise IntegrityError(f"event {event_id!r} is in no chain that checks out as far as "
                             "it; the evidence breaks at: " + "; ".join(map(str, breaks)))
    raise EventNotFoundError(f"no archived entry holds event {event_id!r} in {store.url}")


@dataclass(frozen=True)
class ProofResult:
    """What a proof proved. ``key_id``: the key that signed the entry (v1) or the seal of
    its batch (v2, ``batch`` True)."""

    event_id: str
    chain_id: str
    seq: int
    checkpoint_index: int
    key_id: str
    batch: bool = False


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


PROOF_SHAPE_V2 = Shape({**PROOF_SHAPE.fields, "batch": BATCH_SHAPE})
_SHAPES = {FORMAT: PROOF_SHAPE, FORMAT_V2: PROOF_SHAPE_V2}


def load_proof(data: bytes, what: str = "proof") -> dict[str, Any]:
    """The proof document in ``data`` once its size, nesting, structure and types are those
    of a proof (v1 or v2); MalformedInputError otherwise (nothing is checked yet)."""
    doc = load_json(data, what=what, max_bytes=MAX_PROOF_BYTES)
    form = doc.get("format") if isinstance(doc, dict) else None
    shape = _SHAPES.get(form) if isinstance(form, str) else None
    if not isinstance(doc, dict) or shape is None:
        raise MalformedInputError(f"{what} is not a {FORMAT} or {FORMAT_V2} document")
    check_shape(doc, shape, what)
    return doc


def _entry_digest(doc: Mapping[str, Any]) -> bytes:
    """The entry's hash, once it holds exactly the sealed record fields, its stated hash is
    that of its body and it holds the event the proof names."""
    entry = doc["entry"]
    if not isinstance(entry, dict) or set(entry) != {*ENTRY_FIELDS, "entry_hash", "signature"}:
        raise IntegrityError("proof entry does not hold exactly the sealed record fields")
    body = {k: entry[k] for k in ENTRY_FIELDS}
    digest = sha256(ENTRY_DOMAIN, canonical_json(body))
    stated = hex_bytes(entry["entry_hash"], "entry_hash", 32)
    if digest != stated:
        raise IntegrityError(f"entry hash {stated.hex()} does not match the entry "
                             f"(calculated {digest.hex()})")
    if not isinstance(entry["ingested_at"], int) or not isinstance(entry["key_id"], str):
        raise IntegrityError("entry ingested_at/key_id have the wrong type")
    event = entry["event"]
    if not isinstance(event, dict) or event.get("event_id") != doc["event_id"]:
        raise IntegrityError("the entry does not hold the event the proof names")
    return digest


def _checkpoint(doc: Mapping[str, Any], keyring: Keyring, digest: bytes) -> Checkpoint:
    """The proof's checkpoint, once it is signed, names the entry's chain and seq and the
    inclusion proof leads from the entry to its Merkle root."""
    entry = doc["entry"]
    signed = SignedCheckpoint.from_bytes(canonical_json(doc["checkpoint"]))
    if signed.to_bytes() != canonical_json(doc["checkpoint"]):
        raise IntegrityError("checkpoint is not in its archived canonical form")
    cp_problem = signed.problem(keyring) or signed.checkpoint.inconsistency()
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
    proof = [hex_bytes(p, "inclusion proof element", 32) for p in path]
    root = merkle.root_from_inclusion_proof(doc["leaf_index"], doc["tree_size"],
                                            merkle.leaf_hash(digest), proof)
    if root != cp.merkle_root:
        raise IntegrityError(f"inclusion proof leads to root {root.hex()}, checkpoint "
                             f"{cp.index} states {cp.merkle_root.hex()}")
    return cp


_V1_FIELDS = frozenset({"format", "how", "event_id", "entry", "leaf_index", "tree_size",
                        "inclusion_proof", "checkpoint_key", "checkpoint"})


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
    v2 = doc["format"] == FORMAT_V2
    expected_keys = _V1_FIELDS | {"batch"} if v2 else _V1_FIELDS
    if set(doc) != expected_keys:
        raise IntegrityError(f"proof fields are {sorted(doc)}, expected {sorted(expected_keys)}")
    if doc["how"] != (HOW_V2 if v2 else HOW):
        raise IntegrityError("proof 'how' text differs from the format's")
    digest = _entry_digest(doc)
    entry = doc["entry"]
    if not v2:  # the entry is signed on its own
        signature = hex_bytes(entry["signature"], "signature", 64)
        problem = Seals(entry["seq"]).entry(keyring, entry["seq"], entry["key_id"], digest,
                                            signature, entry["ingested_at"])
        if problem:
            raise IntegrityError(f"entry signature: {problem}")
    cp = _checkpoint(doc, keyring, digest)
    key_id = check_batch(doc["batch"], entry, digest, keyring, cp) if v2 else entry["key_id"]
    return ProofResult(doc["event_id"], cp.chain_id, entry["seq"], cp.index, key_id, v2)


# -- C2SP checkpoint notes ------------------------------------------------------------------


def chain_note(store: ArchiveStore, chain_id: str, *, origin: str, name: str,
               signer: Signer, public_key: bytes, keyring: Keyring,
               index: int | None = None, since: int | None = None) -> bytes:
    """Checkpoint ``index`` (default: the newest) of ``chain_id`` as a C2SP signed note,
    once the chain checks out against ``keyring`` up to that checkpoint.

    The chain is the log: tree size = last_seq + 1, root = RFC 6962 root of the entry
    hashes of seq 0..last_seq, and one extension line ``sealtrail-checkpoint <index>
    <checkpoint_hash hex>``. With ``since`` (an earlier checkpoint index): the RFC 9162
    consistency proof from that checkpoint's tree to this one, before the note, as a C2SP
    tlog-witness add-checkpoint body (``old <size>``, the proof, an empty line, the note)."""
    from sealtrail.verify import now_us, walk_chain

    reached: list[Step] = []
    leaves: list[bytes] = []  # leaf hashes of every entry up to the checkpoint
    sizes: dict[int, int] = {}  # checkpoint index -> tree size

    def keep(step: Step) -> None:
        reached[:] = [step]
        if step.outcome is not None:
            leaves.extend(step.outcome.leaf_hashes)
        sizes[step.position] = step.signed.checkpoint.last_seq + 1
        if step.position == index:
            raise _Found(step)

    try:
        walk = walk_chain(store, chain_id, keyring, now=now_us(), on_step=keep)
    except _Found:
        pass
    else:
        if walk.finding is not None:
            raise IntegrityError(f"chain {chain_id!r} does not check out up to checkpoint "
                                 f"{'(newest)' if index is None else index}: {walk.finding}")
    if not reached or (index is not None and reached[0].position != index):
        raise DataError(f"chain {chain_id!r} has no checkpoint "
                        f"{'' if index is None else index} in {store.url}")
    step = reached[0]
    assert step.tree_root is not None
    cp = step.signed.checkpoint
    body = checkpoint_body(
        f"{origin}/{chain_id}", cp.last_seq + 1, step.tree_root,
        [f"sealtrail-checkpoint {cp.index} {step.signed.checkpoint_hash.hex()}"])
    note = sign_note(body, name, signer, public_key)
    if since is None:
        return note
    old = sizes.get(since)
    if old is None or since > cp.index or not 0 < old <= len(leaves):
        raise DataError(f"--since {since}: not an earlier checkpoint of {chain_id!r} with "
                        "entries whose segments are all still there")
    tree = merkle.Frontier()
    tree.extend(leaves[:old])
    proof = merkle.consistency_proof(tree, leaves[old:])
    return consistency_request(old, proof, note)
