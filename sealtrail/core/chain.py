"""Sealing entries into a hash chain, and checking a chain entry by entry.

A chain is identified by ``chain_id``; entry ``seq`` (0-based) links to the
previous entry through ``prev_hash``. The first entry links to
``genesis_hash(chain_id)``. See docs/format.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sealtrail.core.canonical import ENTRY_FIELDS, canonical_json, entry_body
from sealtrail.core.findings import Kind
from sealtrail.core.hashing import (
    ENTRY_DOMAIN,
    GENESIS_DOMAIN,
    SIG_ENTRY_DOMAIN,
    hasher,
    sha256,
)
from sealtrail.core.signing import Keyring, Signer

__all__ = ["ChainHead", "EntryProblem", "check_entry", "entry_hash", "entry_signature_problem",
           "genesis_hash", "seal"]


def genesis_hash(chain_id: str) -> bytes:
    """The prev_hash of a chain's first entry."""
    return sha256(GENESIS_DOMAIN, chain_id.encode("utf-8"))


_ENTRY = hasher(ENTRY_DOMAIN)


def entry_hash(record: Mapping[str, Any]) -> bytes:
    """SHA-256 over the entry domain and the canonical bytes of the entry body."""
    h = _ENTRY.copy()  # the domain absorbed once: no copy of the body to join it
    h.update(canonical_json(entry_body(record)))
    return h.digest()


@dataclass(frozen=True)
class ChainHead:
    """Where a chain stands: the last sealed seq and its entry hash."""

    chain_id: str
    seq: int  # -1 for a chain with no entries yet
    entry_hash: bytes
    epoch: int

    @classmethod
    def genesis(cls, chain_id: str, epoch: int = 0) -> ChainHead:
        return cls(chain_id, -1, genesis_hash(chain_id), epoch)

    def advance(self, record: Mapping[str, Any]) -> ChainHead:
        return ChainHead(self.chain_id, record["seq"], record["entry_hash"], record["epoch"])


def seal(head: ChainHead, unsealed: dict[str, Any], signer: Signer) -> dict[str, Any]:
    """Seal ``unsealed`` (every field of a SealedRecord but the chain position and seal)
    as the next entry after ``head``. Returns the complete record; ``unsealed`` is reused.
    """
    record = unsealed
    record["chain_id"] = head.chain_id
    record["seq"] = head.seq + 1
    record["epoch"] = head.epoch
    record["prev_hash"] = head.entry_hash
    record["key_id"] = signer.key_id
    digest = entry_hash(record)
    record["entry_hash"] = digest
    record["signature"] = signer.sign(SIG_ENTRY_DOMAIN + digest)
    return record


def entry_signature_problem(keyring: Keyring, key_id: str, digest: bytes, signature: bytes,
                            at_us: int) -> str | None:
    """Why the seal of an entry whose hash is ``digest`` does not verify, or None.

    The one place where entry signatures are checked (the reference and the native segment
    paths both call it): a second signature scheme is added here, beside this one."""
    return keyring.verify(key_id, SIG_ENTRY_DOMAIN + digest, signature, at_us=at_us)


@dataclass(frozen=True)
class EntryProblem:
    """Why an entry does not check out (a value :func:`check_entry` returns, not an
    exception): ``kind`` is one of HASH, LINK, SEQ, EPOCH, CHAIN, SIGNATURE, UNKNOWN_KEY
    (HASH also covers a record that lacks a field or cannot be hashed); ``expected`` and
    ``found`` the values compared, where there are two."""

    kind: Kind
    message: str
    expected: str | None = None
    found: str | None = None


# The fields check_entry compares or passes on, with the type each must have.
_POSITION_TYPES: tuple[tuple[str, type], ...] = (
    ("chain_id", str), ("seq", int), ("epoch", int), ("ingested_at", int),
    ("prev_hash", bytes), ("entry_hash", bytes), ("key_id", str), ("signature", bytes),
)


def _malformed(record: Mapping[str, Any]) -> str | None:
    """Why ``record`` cannot even be checked (a field missing or of the wrong type), or None."""
    for name in (*ENTRY_FIELDS, "entry_hash", "signature"):
        if name not in record:
            return f"field {name!r} is missing"
    for name, kind in _POSITION_TYPES:
        value = record[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"field {name!r} is a {type(value).__name__}, not {kind.__name__}"
    return None


def check_entry(
    prev: ChainHead, record: Mapping[str, Any], keyring: Keyring | None
) -> EntryProblem | None:
    """Check one entry against the head before it. ``keyring=None`` skips signatures
    (hash-chain checking only). Returns None when the entry is sound; a record that lacks
    a field or cannot be hashed is reported (kind HASH), never raised."""
    malformed = _malformed(record)
    if malformed is not None:
        return EntryProblem(Kind.HASH, f"entry after seq {prev.seq} cannot be hashed: {malformed}")
    seq = record["seq"]
    if record["chain_id"] != prev.chain_id:
        return EntryProblem(Kind.CHAIN, f"entry seq {seq} belongs to chain {record['chain_id']!r}")
    if seq != prev.seq + 1:
        return EntryProblem(Kind.SEQ, f"expected seq {prev.seq + 1}, found {seq}",
                            str(prev.seq + 1), str(seq))
    if record["epoch"] < prev.epoch:
        return EntryProblem(
            Kind.EPOCH, f"seq {seq} has epoch {record['epoch']} after epoch {prev.epoch} (fenced)",
            f">= {prev.epoch}", str(record["epoch"]),
        )
    if record["prev_hash"] != prev.entry_hash:
        return EntryProblem(
            Kind.LINK,
            f"seq {seq} prev_hash {record['prev_hash'].hex()} does not match "
            f"entry_hash {prev.entry_hash.hex()} of seq {prev.seq}",
            prev.entry_hash.hex(), record["prev_hash"].hex(),
        )
    try:
        digest = entry_hash(record)
    except (TypeError, ValueError) as exc:  # e.g. a float or a lone surrogate in the event
        return EntryProblem(Kind.HASH, f"seq {seq} cannot be hashed: {exc}")
    if digest != record["entry_hash"]:
        return EntryProblem(
            Kind.HASH,
            f"seq {seq} entry_hash {record['entry_hash'].hex()} does not match its "
            f"content (calculated {digest.hex()})",
            digest.hex(), record["entry_hash"].hex(),
        )
    if keyring is not None:
        problem = entry_signature_problem(keyring, record["key_id"], digest,
                                          record["signature"], record["ingested_at"])
        if problem:
            kind = Kind.UNKNOWN_KEY if problem.startswith("unknown key") else Kind.SIGNATURE
            return EntryProblem(kind, f"seq {seq}: {problem}")
    return None
