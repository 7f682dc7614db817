"""Signed checkpoints: a statement of a chain's head and of the Merkle root of the
entries since the previous checkpoint, chained to that previous checkpoint.

One checkpoint covers one archive segment, so a segment is verified against its
checkpoint without reading any other. See docs/format.md, "Checkpoints".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sealtrail.core.canonical import canonical_json
from sealtrail.core.hashing import (
    CHECKPOINT_DOMAIN,
    HASH_SIZE,
    SIG_CHECKPOINT_DOMAIN,
    ZERO_HASH,
    sha256,
)
from sealtrail.core.signing import Keyring, Signer
from sealtrail.errors import IntegrityError

__all__ = ["Checkpoint", "SignedCheckpoint"]

_TEXT_FIELDS = ("chain_id", "segment_key", "key_id")
_INT_FIELDS = ("index", "first_seq", "last_seq", "segment_size", "created_at")
_HASH_FIELDS = ("head_hash", "merkle_root", "prev_checkpoint_hash", "segment_sha256")


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

    @property
    def size(self) -> int:
        return self.last_seq - self.first_seq + 1

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        for name in _HASH_FIELDS:
            doc[name] = doc[name].hex()
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Checkpoint:
        try:
            fields = dict(doc)
            for name in _HASH_FIELDS:
                fields[name] = bytes.fromhex(fields[name])
            return cls(**fields)
        except (TypeError, ValueError, KeyError) as exc:
            raise IntegrityError(f"malformed checkpoint statement: {exc}") from None

    def digest(self) -> bytes:
        return sha256(CHECKPOINT_DOMAIN, canonical_json(self.to_json()))

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
                "format": "sealtrail-checkpoint/v1",
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
            if doc.get("format") != "sealtrail-checkpoint/v1":
                raise ValueError("format is not sealtrail-checkpoint/v1")
            return cls(
                Checkpoint.from_json(doc["checkpoint"]),
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
