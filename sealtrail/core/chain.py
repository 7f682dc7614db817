"""Sealing entries into a hash chain, and checking a chain entry by entry.

A chain is identified by ``chain_id``; entry ``seq`` (0-based) links to the
previous entry through ``prev_hash``. The first entry links to
``genesis_hash(chain_id)``. See docs/format.md.

An entry's ``signature`` is one of (docs/format.md, "Signatures"):

* 64 bytes: an *entry signature* (record format 1), Ed25519 over the entry statement;
* empty: the entry is *unsigned* and belongs to the batch that the chain's next batch
  seal closes (record format 2, what the sealer writes);
* 65 bytes, ``0x01`` then 64: a *batch seal* (record format 2): Ed25519 over the batch
  statement, which names the batch's first and last seq, the seal's time, the RFC 6962
  root of the batch's entry hashes and the seal entry's own hash.

:class:`Seals` is the one place where either kind is checked; every reader walks a chain
through it, so an unsigned entry is evidence only once the seal after it checks out.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sealtrail.core import merkle
from sealtrail.core.canonical import ENTRY_FIELDS, canonical_json, entry_body
from sealtrail.core.findings import Kind
from sealtrail.core.hashing import (
    ENTRY_DOMAIN,
    GENESIS_DOMAIN,
    SIG_BATCH_DOMAIN,
    SIG_ENTRY_DOMAIN,
    hasher,
    sha256,
)
from sealtrail.core.signing import SIGNATURE_SIZE, Keyring, Signer

__all__ = ["BATCH_SEAL_SIZE", "BATCH_SEAL_TAG", "ChainHead", "EntryProblem", "Seals",
           "batch_statement", "check_entry", "entry_hash", "genesis_hash", "seal", "seal_batch",
           "sealed_prefix"]

#: The first byte of a batch seal; the 64-byte Ed25519 signature follows it.
BATCH_SEAL_TAG = b"\x01"
BATCH_SEAL_SIZE = 1 + SIGNATURE_SIZE
_POSITIONS = struct.Struct(">QQq")  # first seq, last seq, sealed_at


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


def seal(head: ChainHead, unsealed: dict[str, Any], signer: Signer, *,
         sign: bool = True) -> dict[str, Any]:
    """Seal ``unsealed`` (every field of a SealedRecord but the chain position and seal)
    as the next entry after ``head``. Returns the complete record; ``unsealed`` is reused.

    ``sign`` False leaves the entry unsigned (record format 2): :func:`seal_batch` then
    signs the batch it ends or belongs to. The key id is read either way: with
    ``sealtrail.keys.ReloadingSigner`` every entry of a batch names the key that seals it.
    """
    record = unsealed
    record["chain_id"] = head.chain_id
    record["seq"] = head.seq + 1
    record["epoch"] = head.epoch
    record["prev_hash"] = head.entry_hash
    record["key_id"] = signer.key_id
    digest = entry_hash(record)
    record["entry_hash"] = digest
    record["signature"] = signer.sign(SIG_ENTRY_DOMAIN + digest) if sign else b""
    return record


def batch_statement(first_seq: int, last_seq: int, sealed_at: int, batch_root: bytes,
                    head_hash: bytes) -> bytes:
    """What a batch seal signs: the domain, seq ``first_seq``..``last_seq`` (8 bytes each,
    big-endian), ``sealed_at`` (the seal entry's ingested_at, 8 bytes signed), the RFC
    6962 root of the batch's entry hashes and the seal entry's hash."""
    return SIG_BATCH_DOMAIN + _POSITIONS.pack(first_seq, last_seq, sealed_at) + batch_root \
        + head_hash


def seal_batch(first_seq: int, entry_hashes: Sequence[bytes], last: dict[str, Any],
               signer: Signer) -> None:
    """Make ``last`` (sealed unsigned, its hash the last of ``entry_hashes``, which are
    those of seq ``first_seq``..``last["seq"]``) the batch's seal: sets its signature."""
    statement = batch_statement(first_seq, last["seq"], last["ingested_at"],
                                merkle.root(entry_hashes), last["entry_hash"])
    last["signature"] = BATCH_SEAL_TAG + signer.sign(statement)


def sealed_prefix(records: Sequence[Mapping[str, Any]], end: int | None = None) -> int:
    """How many of ``records`` (consecutive entries of a chain, oldest first; only the
    first ``end`` of them when given) end with a signed entry: the records after it belong
    to a batch whose seal is not among them."""
    end = len(records) if end is None else end
    while end and not records[end - 1]["signature"]:
        end -= 1
    return end


class Seals:
    """The signature rule of one chain, walked in seq order from ``first_seq`` (the seq
    after a signed entry, or 0): :meth:`entry` for each entry that links, in order.

    An entry signature verifies on its own. An unsigned entry waits for the batch seal
    after it; the seal verifies over every entry since the last signed one. ``open``
    says whether entries are waiting: a reader takes them as evidence only once a seal
    closed them (a segment must end with a signed entry)."""

    __slots__ = ("first_seq", "hashes")

    def __init__(self, first_seq: int) -> None:
        self.first_seq = first_seq
        self.hashes: list[bytes] = []

    @property
    def open(self) -> bool:
        return bool(self.hashes)

    def unsealed(self, last_seq: int) -> str:
        """Why the waiting entries, up to ``last_seq``, are not evidence."""
        return (f"seq {self.first_seq}..{last_seq} are unsigned and no batch seal after them "
                "covers them (a batch ends with its seal; these are not evidence)")

    def entry(self, keyring: Keyring, seq: int, key_id: str, digest: bytes, signature: bytes,
              at_us: int) -> str | None:
        """Why the signature of entry ``seq`` (hash ``digest``) does not check out, or None
        (an unsigned entry: not yet; it waits for its seal)."""
        size = len(signature)
        if size == 0:
            self.hashes.append(digest)
            return None
        if size == SIGNATURE_SIZE:
            if self.hashes:
                return (self.unsealed(seq - 1)
                        + f"; seq {seq} carries an entry signature, not a batch seal")
            self.first_seq = seq + 1
            return keyring.verify(key_id, SIG_ENTRY_DOMAIN + digest, signature, at_us=at_us)
        if size == BATCH_SEAL_SIZE and signature[:1] == BATCH_SEAL_TAG:
            self.hashes.append(digest)
            first, root = self.first_seq, merkle.root(self.hashes)
            self.hashes = []
            self.first_seq = seq + 1
            problem = keyring.verify(key_id, batch_statement(first, seq, at_us, root, digest),
                                     signature[1:], at_us=at_us)
            return None if problem is None else f"{problem} (the batch seal of seq {first}..{seq})"
        return (f"a signature of {size} bytes is neither an entry signature ({SIGNATURE_SIZE}),"
                f" a batch seal ({BATCH_SEAL_SIZE}, tag 0x01) nor empty")


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
    prev: ChainHead, record: Mapping[str, Any], keyring: Keyring | None,
    seals: Seals | None = None,
) -> EntryProblem | None:
    """Check one entry against the head before it. ``keyring=None`` skips signatures
    (hash-chain checking only). Returns None when the entry is sound; a record that lacks
    a field or cannot be hashed is reported (kind HASH), never raised.

    ``seals``: the chain's signature rule, for a walk of several entries (an unsigned
    entry then passes, waiting for its batch seal: the walker checks ``seals.open`` where
    its entries end). Without it the entry must be signed on its own: an unsigned entry,
    or a batch seal of more than itself, is a SIGNATURE problem."""
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
        alone = seals is None
        seals = Seals(seq) if seals is None else seals
        problem = seals.entry(keyring, seq, record["key_id"], digest, record["signature"],
                              record["ingested_at"])
        if problem is None and alone and seals.open:
            problem = seals.unsealed(seq)
        if problem:
            kind = Kind.UNKNOWN_KEY if problem.startswith("unknown key") else Kind.SIGNATURE
            return EntryProblem(kind, f"seq {seq}: {problem}")
    return None
