"""Signed checkpoints: a statement of a chain's head and of the Merkle root of the
entries since the previous checkpoint, chained to that previous checkpoint.

One checkpoint covers one archive segment, so a segment is verified against its
checkpoint without reading any other. See docs/format.md, "Checkpoints".

Two versions: ``sealtrail-checkpoint/v1`` (twelve fields) and ``sealtrail-checkpoint/v2``,
which also signs the segment's retention (mode, class, retain-until: what decides that a
missing segment was purged, rather than deleted) and the Merkle tree of the whole chain
so far (size, root and compact range: a C2SP checkpoint of the chain, and what
consistency proofs start from). Writers write v2; readers read both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sealtrail.core.canonical import canonical_json
from sealtrail.core.hashing import (
    CHECKPOINT_DOMAIN,
    CHECKPOINT_V2_DOMAIN,
    HASH_SIZE,
    SIG_CHECKPOINT_DOMAIN,
    ZERO_HASH,
    sha256,
)
from sealtrail.core.merkle import Frontier
from sealtrail.core.signing import Keyring, Signer
from sealtrail.errors import IntegrityError

__all__ = ["FORMATS", "Checkpoint", "SignedCheckpoint"]

_TEXT_FIELDS = ("chain_id", "segment_key", "key_id")
_INT_FIELDS = ("index", "first_seq", "last_seq", "segment_size", "created_at")
_HASH_FIELDS = ("head_hash", "merkle_root", "prev_checkpoint_hash", "segment_sha256")
_V1_FIELDS = frozenset((*_TEXT_FIELDS, *_INT_FIELDS, *_HASH_FIELDS))
_V2_ONLY = ("retention_mode", "retention_class", "retain_until", "tree_size", "tree_root",
            "tree_frontier")
_V2_FIELDS = _V1_FIELDS | set(_V2_ONLY)
#: The archived ``format`` of each statement version.
FORMATS = {1: "sealtrail-checkpoint/v1", 2: "sealtrail-checkpoint/v2"}
_MODES = ("COMPLIANCE", "GOVERNANCE")


#: The largest checkpoint file a reader parses (sealtrail writes about 900 bytes).
MAX_CHECKPOINT_BYTES = 64 * 1024


@dataclass(frozen=True)
class Checkpoint:
    """The statement a checkpoint signs. Hashes are lowercase hex in JSON."""

    chain_id: str
    index: int
    first_seq: int
    last_seq: int
    head_hash: bytes
    merkle_root: bytes
    prev_checkpoint_hash: bytes
    segment_key: str
    segment_sha256: bytes
    segment_size: int
    created_at: int
    key_id: str
    # Version 2: the segment's retention, and the whole chain's Merkle tree so far.
    retention_mode: str | None = None
    retention_class: str | None = None
    retain_until: int | None = None  # microseconds UTC, a whole second
    tree_size: int | None = None  # last_seq + 1
    tree_root: bytes | None = None  # RFC 6962 root of the entry hashes of seq 0..last_seq
    tree_frontier: tuple[bytes, ...] | None = None  # the compact range of that tree

    def __post_init__(self) -> None:
        # Checked first, so that a statement read from an archive with a field of the
        # wrong type fails here as IntegrityError, not later as a TypeError.
        for name in _TEXT_FIELDS:
            if not isinstance(getattr(self, name), str):
                raise IntegrityError(f"checkpoint field {name!r} must be a string")
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise IntegrityError(f"checkpoint field {name!r} must be an integer")
        for name in _HASH_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != HASH_SIZE:
                raise IntegrityError(f"checkpoint field {name!r} must be a {HASH_SIZE}-byte hash")
        if self.segment_size < 0:
            raise IntegrityError(f"checkpoint {self.index} of {self.chain_id}: negative size")
        heartbeat = self.segment_key == "" and self.last_seq == self.first_seq - 1
        if self.index < 0 or self.first_seq < 0 or (self.last_seq < self.first_seq
                                                     and not heartbeat):
            raise IntegrityError(
                f"checkpoint {self.index} of {self.chain_id}: impossible range "
                f"{self.first_seq}..{self.last_seq}"
            )
        if self.index == 0 and self.prev_checkpoint_hash != ZERO_HASH:
            raise IntegrityError(f"checkpoint 0 of {self.chain_id} must link to the zero hash")
        v2 = [getattr(self, name) is not None for name in _V2_ONLY]
        if any(v2):
            if not all(v2):
                raise IntegrityError("a version 2 checkpoint states all of " + ", ".join(_V2_ONLY))
            self._check_v2()

    def _check_v2(self) -> None:
        where = f"checkpoint {self.index} of {self.chain_id}"
        if self.retention_mode not in _MODES or not isinstance(self.retention_class, str) \
                or not self.retention_class:
            raise IntegrityError(f"{where}: retention mode must be one of {_MODES} and the "
                                 "class a non-empty string")
        for name in ("retain_until", "tree_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise IntegrityError(f"checkpoint field {name!r} must be a non-negative integer")
        frontier = self.tree_frontier
        if not isinstance(frontier, tuple) or not isinstance(self.tree_root, bytes) or \
                len(self.tree_root) != HASH_SIZE or \
                any(not isinstance(h, bytes) or len(h) != HASH_SIZE for h in frontier):
            raise IntegrityError(f"{where}: tree_root and tree_frontier must be 32-byte hashes")

    def inconsistency(self) -> str | None:
        """Why a well-formed statement cannot be true as a whole, or None: a version 2
        tree whose size is not last_seq + 1, or whose root is not its compact range's.
        (Checked after the signature, so an edited statement is reported as such.)"""
        if self.version == 1:
            return None
        assert self.tree_frontier is not None and self.tree_size is not None
        if self.tree_size != self.last_seq + 1:
            return f"tree_size {self.tree_size} is not last_seq + 1 ({self.last_seq + 1})"
        try:
            frontier = Frontier(self.tree_size, self.tree_frontier)
        except IntegrityError as exc:
            return str(exc)
        if frontier.root() != self.tree_root:
            return "tree_root is not the root of tree_frontier"
        return None

    @property
    def version(self) -> int:
        return 1 if self.retain_until is None else 2

    @property
    def frontier(self) -> Frontier | None:
        """The chain's compact range after this checkpoint (version 2; call
        :meth:`inconsistency` first), else None."""
        if self.tree_frontier is None:
            return None
        return Frontier(self.last_seq + 1, self.tree_frontier)

    @property
    def size(self) -> int:
        return self.last_seq - self.first_seq + 1

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        for name in _HASH_FIELDS:
            doc[name] = doc[name].hex()
        if self.version == 1:
            for name in _V2_ONLY:
                del doc[name]
        else:
            doc["tree_root"] = doc["tree_root"].hex()
            doc["tree_frontier"] = [h.hex() for h in doc["tree_frontier"]]
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], version: int = 1) -> Checkpoint:
        try:
            fields = dict(doc)
            want = _V1_FIELDS if version == 1 else _V2_FIELDS
            if set(fields) != want:
                odd = sorted(set(fields) ^ want)
                raise ValueError(f"a version {version} statement has exactly the fields of "
                                 f"docs/format.md (differs in {', '.join(odd)})")
            for name in _HASH_FIELDS:
                fields[name] = bytes.fromhex(fields[name])
            if version == 2:
                fields["tree_root"] = bytes.fromhex(fields["tree_root"])
                if not isinstance(fields["tree_frontier"], list):
                    raise ValueError("tree_frontier is not a list")
                fields["tree_frontier"] = tuple(bytes.fromhex(h)
                                                for h in fields["tree_frontier"])
            return cls(**fields)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise IntegrityError(f"malformed checkpoint statement: {exc}") from None

    def digest(self) -> bytes:
        domain = CHECKPOINT_DOMAIN if self.version == 1 else CHECKPOINT_V2_DOMAIN
        return sha256(domain, canonical_json(self.to_json()))

    def sign(self, signer: Signer) -> SignedCheckpoint:
        if signer.key_id != self.key_id:
            raise ValueError("checkpoint key_id must name the signer's key")
        digest = self.digest()
        return SignedCheckpoint(self, digest, signer.sign(SIG_CHECKPOINT_DOMAIN + digest))


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint with its hash and Ed25519 signature."""

    checkpoint: Checkpoint
    checkpoint_hash: bytes
    signature: bytes

    def to_bytes(self) -> bytes:
        """The archived form: canonical JSON, so the object's bytes are deterministic."""
        return canonical_json(
            {
                "format": FORMATS[self.checkpoint.version],
                "checkpoint": self.checkpoint.to_json(),
                "checkpoint_hash": self.checkpoint_hash.hex(),
                "signature": self.signature.hex(),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedCheckpoint:
        import json

        if len(data) > MAX_CHECKPOINT_BYTES:  # one is about 900 bytes
            raise IntegrityError(f"malformed checkpoint: {len(data)} bytes, at most "
                                 f"{MAX_CHECKPOINT_BYTES}")
        try:
            doc = json.loads(data)
            version = next((v for v, name in FORMATS.items() if doc.get("format") == name),
                           None)
            if version is None:
                raise ValueError("format is not one of " + ", ".join(FORMATS.values()))
            return cls(
                Checkpoint.from_json(doc["checkpoint"], version),
                bytes.fromhex(doc["checkpoint_hash"]),
                bytes.fromhex(doc["signature"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IntegrityError(f"malformed checkpoint: {str(exc)[:300]}") from None
        except RecursionError:
            raise IntegrityError("malformed checkpoint: JSON nested too deeply") from None

    def problem(self, keyring: Keyring) -> str | None:
        """None when the hash and the signature check out against ``keyring``."""
        digest = self.checkpoint.digest()
        if digest != self.checkpoint_hash:
            return (
                f"checkpoint hash {self.checkpoint_hash.hex()} does not match its content "
                f"(calculated {digest.hex()})"
            )
        return keyring.verify(
            self.checkpoint.key_id, SIG_CHECKPOINT_DOMAIN + digest, self.signature,
            at_us=self.checkpoint.created_at,
        )
