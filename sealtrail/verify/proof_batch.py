"""The batch part of a ``sealtrail-proof/v2`` file: an entry of record format 2 (docs/format.md,
"Signatures") is not signed on its own but by the batch seal after it, so its proof carries
the way from the entry to that seal (:mod:`sealtrail.verify.proof` holds the rest)::

    "batch": {"first_seq": f, "last_seq": l,   the batch: seq f..l, l the seal entry's
              "leaf_index": seq - f,
              "inclusion_proof": ["hex", ...],  RFC 6962 audit path of the entry's hash
                                                among the batch's entry hashes, leaf first
              "seal": {"entry_hash", "key_id", "ingested_at", "signature"}}   of entry l

:func:`check_batch` recomputes the batch root from the audit path and checks the seal's
signature over the batch statement (:func:`sealtrail.core.chain.batch_statement`), as
:class:`sealtrail.core.chain.Seals` does for a whole batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sealtrail.core import merkle
from sealtrail.core.chain import BATCH_SEAL_SIZE, BATCH_SEAL_TAG, batch_statement, sealed_prefix
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.hexfield import hex_bytes
from sealtrail.core.signing import SIGNATURE_SIZE, Keyring
from sealtrail.errors import IntegrityError
from sealtrail.inputs import ListOf, Shape

__all__ = ["BATCH_SHAPE", "batch_part", "check_batch", "signed_alone"]

#: The longest audit path a proof may hold (a tree of 2**64 leaves).
MAX_PATH = 64
_U64 = 2**64
_I64 = 2**63

BATCH_SHAPE = Shape({"first_seq": int, "last_seq": int, "leaf_index": int,
                     "inclusion_proof": ListOf(str, MAX_PATH),
                     "seal": Shape({"entry_hash": str, "key_id": str, "ingested_at": int,
                                    "signature": str})})


def signed_alone(record: Mapping[str, Any]) -> bool:
    """Whether ``record`` carries an entry signature (record format 1): its proof needs no
    batch part."""
    return len(record["signature"]) == SIGNATURE_SIZE


def batch_part(records: Sequence[Mapping[str, Any]], position: int) -> dict[str, Any]:
    """The batch part of the proof of ``records[position]`` (an entry of a batch), from the
    records of a segment that checked out (it starts a batch and ends with a signed
    entry): the batch runs from the record after the previous signed one (or the first) to
    the first batch seal at or after ``position``."""
    start = sealed_prefix(records, position)
    end = position
    while end < len(records) and not records[end]["signature"]:
        end += 1
    if end == len(records) or len(records[end]["signature"]) != BATCH_SEAL_SIZE:
        raise IntegrityError(f"seq {records[position]['seq']} is covered by no batch seal in "
                             "its segment (the segment should not have checked out)")
    seal = records[end]
    hashes = [r["entry_hash"] for r in records[start:end + 1]]
    return {
        "first_seq": records[start]["seq"], "last_seq": seal["seq"],
        "leaf_index": position - start,
        "inclusion_proof": [h.hex() for h in merkle.inclusion_proof(hashes, position - start)],
        "seal": {"entry_hash": seal["entry_hash"].hex(), "key_id": seal["key_id"],
                 "ingested_at": seal["ingested_at"], "signature": seal["signature"].hex()},
    }


def check_batch(batch: Mapping[str, Any], entry: Mapping[str, Any], digest: bytes,
                keyring: Keyring, cp: Checkpoint) -> str:
    """Check that the entry (``entry`` in the value model, its hash ``digest``, already
    checked against its body) is covered by the batch seal ``batch`` describes, and that
    the whole batch lies in checkpoint ``cp``. Returns the key id that signed the seal;
    IntegrityError naming what does not hold."""
    seq, first, last = entry["seq"], batch["first_seq"], batch["last_seq"]
    if not 0 <= first <= seq <= last < _U64:
        raise IntegrityError(f"batch {first}..{last} does not hold entry seq {seq}")
    if not cp.first_seq <= first <= last <= cp.last_seq:
        raise IntegrityError(f"batch {first}..{last} is not inside checkpoint {cp.index} "
                             f"({cp.first_seq}..{cp.last_seq}): a batch never spans segments")
    if batch["leaf_index"] != seq - first:
        raise IntegrityError(f"batch leaf_index {batch['leaf_index']} is not seq {seq} - "
                             f"first_seq {first}")
    path = [hex_bytes(p, "batch inclusion proof element", 32) for p in batch["inclusion_proof"]]
    batch_root = merkle.root_from_inclusion_proof(seq - first, last - first + 1,
                                                  merkle.leaf_hash(digest), path)
    seal = batch["seal"]
    head = hex_bytes(seal["entry_hash"], "batch seal entry_hash", 32)
    signature = hex_bytes(seal["signature"], "batch seal signature", BATCH_SEAL_SIZE)
    sealed_at, key_id = seal["ingested_at"], seal["key_id"]
    if seq == last:
        if dict(seal) != {k: entry[k] for k in seal}:
            raise IntegrityError(f"entry seq {seq} is the batch's seal entry but differs "
                                 "from the seal the batch part states")
    elif entry["signature"] != "":
        raise IntegrityError(f"entry seq {seq} is before its batch seal (seq {last}) but "
                             "is not unsigned")
    if signature[:1] != BATCH_SEAL_TAG:
        raise IntegrityError("batch seal signature does not start with the tag 0x01")
    if not -_I64 <= sealed_at < _I64:
        raise IntegrityError(f"batch seal ingested_at {sealed_at} is out of range")
    problem = keyring.verify(key_id, batch_statement(first, last, sealed_at, batch_root, head),
                             signature[1:], at_us=sealed_at)
    if problem:
        raise IntegrityError(f"batch seal of seq {first}..{last}: {problem}")
    return str(key_id)
