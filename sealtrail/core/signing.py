"""Ed25519 signing and the pinned public keyring.

A :class:`Signer` holds a private key (or stands for a KMS/HSM that does);
a :class:`Keyring` holds only public keys the verifier chose to trust, each
with a validity window. Nothing here reads files: see ``sealtrail.keys``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealtrail.errors import KeyMaterialError

__all__ = ["Ed25519Signer", "Keyring", "PublicKey", "Signer", "key_id_for"]

SIGNATURE_SIZE = 64


class Signer(Protocol):
    """Something that signs with one key; ``key_id`` names that key in keyrings.

    A KMS or HSM signer implements the same two members. Callers read ``key_id`` and
    then call ``sign`` for the same statement, from one thread: a signer whose key can
    change (``sealtrail.keys.ReloadingSigner``) switches keys only between the two, so
    the key id a record names is the key that signs it.
    """

    @property
    def key_id(self) -> str:
        """The id of the key the next ``sign`` uses."""
        ...

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        ...


def key_id_for(public_key: bytes) -> str:
    """The key id sealtrail derives from a raw 32-byte public key: ``ed25519:`` + 16 hex."""
    import hashlib

    return "ed25519:" + hashlib.sha256(public_key).hexdigest()[:16]


class Ed25519Signer:
    """An in-process Ed25519 signer. Its ``repr`` never shows the key."""

    __slots__ = ("_key", "key_id", "public_key")

    def __init__(self, seed: bytes, key_id: str | None = None) -> None:
        if len(seed) != 32:
            raise KeyMaterialError("an Ed25519 private key is a 32-byte seed")
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = key_id or key_id_for(self.public_key)

    @classmethod
    def generate(cls) -> Ed25519Signer:
        """A signer with a fresh random key."""
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        seed = Ed25519PrivateKey.generate().private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption()
        )
        return cls(seed)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"Ed25519Signer(key_id={self.key_id!r})"


@dataclass(frozen=True)
class PublicKey:
    """A trusted public key with the window (microseconds UTC) in which it may sign."""

    key_id: str
    public_key: bytes
    not_before: int = 0
    not_after: int | None = None

    def __post_init__(self) -> None:
        if len(self.public_key) != 32:
            raise KeyMaterialError(f"key {self.key_id!r}: an Ed25519 public key is 32 bytes")
        if self.not_after is not None and self.not_after < self.not_before:
            raise KeyMaterialError(f"key {self.key_id!r}: not_after is before not_before")

    def valid_at(self, when_us: int) -> bool:
        """Whether a signature made at ``when_us`` falls in this key's window."""
        return self.not_before <= when_us and (self.not_after is None or when_us <= self.not_after)


_LOADED: dict[bytes, Ed25519PublicKey] = {}


def _loaded(public_key: bytes) -> Ed25519PublicKey:
    """The key object for raw ``public_key``, loaded once (loading costs about as much as
    a verification). Only keyring keys come here, so the cache stays small."""
    found = _LOADED.get(public_key)
    if found is None:
        found = Ed25519PublicKey.from_public_bytes(public_key)
        if len(_LOADED) < 1024:
            _LOADED[public_key] = found
    return found


@dataclass(frozen=True)
class Keyring:
    """The public keys a verifier trusts, by key id. Keys found in an archive are not."""

    keys: Mapping[str, PublicKey] = field(default_factory=dict)

    @classmethod
    def of(cls, keys: Iterable[PublicKey]) -> Keyring:
        return cls({k.key_id: k for k in keys})

    def verify(self, key_id: str, message: bytes, signature: bytes, *, at_us: int) -> str | None:
        """None when ``signature`` is valid; otherwise the reason it is not."""
        key = self.keys.get(key_id)
        if key is None:
            return f"unknown key {key_id!r} (not in the trusted keyring)"
        if not key.valid_at(at_us):
            return f"key {key_id!r} was not valid at {at_us} (outside its validity window)"
        try:
            _loaded(key.public_key).verify(signature, message)
        except InvalidSignature:
            return f"signature by {key_id!r} is invalid"
        return None

    def to_json(self) -> dict[str, Any]:
        """The keyring file format (docs/format.md, "Public keyring")."""
        return {
            "format": "sealtrail-keyring/v1",
            "keys": [
                {
                    "key_id": k.key_id,
                    "algorithm": "ed25519",
                    "public_key": base64.b64encode(k.public_key).decode(),
                    "not_before": k.not_before,
                    "not_after": k.not_after,
                }
                for k in sorted(self.keys.values(), key=lambda k: k.key_id)
            ],
        }

    @classmethod
    def from_json(cls, doc: Any) -> Keyring:
        """Parse the keyring file format; raises KeyMaterialError with what is wrong."""
        if not isinstance(doc, dict) or doc.get("format") != "sealtrail-keyring/v1":
            raise KeyMaterialError("not a sealtrail keyring (expected format sealtrail-keyring/v1)")
        keys = []
        entries = doc.get("keys") or []
        if not isinstance(entries, list):
            raise KeyMaterialError("keyring 'keys' must be a list")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise KeyMaterialError(f"keyring entry {i} is malformed: not an object")
            try:
                if entry["algorithm"] != "ed25519":
                    raise KeyMaterialError(f"keyring entry {i}: unsupported algorithm")
                keys.append(
                    PublicKey(
                        key_id=str(entry["key_id"]),
                        public_key=base64.b64decode(entry["public_key"], validate=True),
                        not_before=int(entry.get("not_before") or 0),
                        not_after=None if entry.get("not_after") is None
                        else int(entry["not_after"]),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise KeyMaterialError(f"keyring entry {i} is malformed: {exc}") from None
        if not keys:
            raise KeyMaterialError("the keyring holds no keys")
        seen: set[str] = set()
        for i, key in enumerate(keys):
            if key.key_id in seen:
                # Keyring.of would keep only the last entry and silently drop the other.
                raise KeyMaterialError(f"keyring entry {i}: key id {key.key_id!r} is listed twice")
            seen.add(key.key_id)
        return cls.of(keys)

    @classmethod
    def loads(cls, text: str) -> Keyring:
        try:
            doc = json.loads(text)
        except ValueError as exc:  # JSONDecodeError, and numbers of more than 4300 digits
            raise KeyMaterialError(f"keyring is not valid JSON: {str(exc)[:200]}") from None
        except RecursionError:
            raise KeyMaterialError("keyring is not a keyring: JSON nested too deeply") from None
        return cls.from_json(doc)
