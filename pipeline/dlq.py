"""The dead-letter copies of rejected raw records, encrypted under their own key.

A rejected record never went through the redaction policy: it may hold anything a
service sent (passwords, tokens, e-mail addresses, full IP addresses). The sealer seals
only a description of it (reason, a value-free detail, SHA-256 and size); the bytes
themselves go to the DLQ topic so an operator can repair and re-send them, and there they
are encrypted, so the topic's readers, replicas, backups and mirror tools see ciphertext.

A DLQ message (docs/operations.md, "The dead-letter topic")::

    key      the chain id (the raw record's key, often an actor id, is inside the ciphertext)
    headers  reason, chain_id, seq, source_topic, source_partition, source_offset,
             encryption = "dlq-v1", key_id
    value    b"STDLQ" 0x01 | u8 len(key id) | key id (ASCII) | 12-byte nonce |
             AES-256-GCM(plaintext) with its 16-byte tag

    plaintext  u8 flags (1: the record had a key, 2: it had a value) | u32 len(key) |
               key | value
    associated data  "sealtrail:dlq:v1" 0x00 key id 0x00 source_topic 0x00
                     source_partition 0x00 source_offset   (decimal ASCII)

so a ciphertext moved to claim another raw record does not decrypt. The key is
``dlq.key`` in the keys directory (0600), separate from every other key: whoever may read
dead letters gets that file (``sealtrail dlq read``), nothing else. Retired DLQ keys stay in
``retired/`` until the topic's retention has expired what they encrypted.
"""

from __future__ import annotations

import base64
import os
import secrets
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealtrail.errors import ConfigError, DataError, KeyMaterialError
from sealtrail.keys import DLQ_KEY, RETIRED, read_private, write_private

__all__ = ["DLQ_KEY", "DeadLetter", "DlqCipher", "DlqKeys", "rotate_dlq_key"]

MAGIC = b"STDLQ\x01"
ENCRYPTION = "dlq-v1"
_AAD = b"sealtrail:dlq:v1\x00"
_NONCE = 12
_LEN = struct.Struct(">BI")


def _new_doc() -> dict[str, object]:
    return {"key_id": "dlq-" + secrets.token_hex(4),
            "secret": base64.b64encode(secrets.token_bytes(32)).decode(),
            "created_at": time.time_ns() // 1000}


def _key_of(path: Path) -> tuple[str, bytes]:
    doc = read_private(path)
    try:
        key_id, secret = str(doc["key_id"]), base64.b64decode(doc["secret"], validate=True)
    except (KeyError, ValueError, TypeError):
        raise KeyMaterialError(f"{path} is malformed") from None
    if len(secret) != 32 or not key_id.isascii() or not 0 < len(key_id) < 64:
        raise KeyMaterialError(f"{path} is malformed")
    return key_id, secret


def _aad(key_id: str, topic: str, partition: int, offset: int) -> bytes:
    return (_AAD + key_id.encode("ascii") + b"\x00"
            + f"{topic}\x00{partition}\x00{offset}".encode())


class DlqCipher:
    """Encrypts dead letters under the current ``dlq.key`` (created on first use)."""

    def __init__(self, key_id: str, secret: bytes) -> None:
        self.key_id = key_id
        self._aead = AESGCM(secret)
        self._prefix = MAGIC + bytes([len(key_id)]) + key_id.encode("ascii")

    @classmethod
    def for_keys(cls, keys_dir: Path) -> DlqCipher:
        """The cipher of ``keys_dir/dlq.key``; the key is created (0600) when missing."""
        path = keys_dir / DLQ_KEY
        if not path.exists():
            try:
                write_private(path, _new_doc())
            except ConfigError:  # created meanwhile by another process
                pass
            except OSError as exc:  # a read-only keys directory (a mounted secret)
                raise ConfigError(
                    f"no {DLQ_KEY} in {keys_dir}, and it cannot be created there "
                    f"({exc.strerror}): run `sealtrail keys init` where the keys are kept "
                    "(it adds the missing key) and deploy the keys directory again") from None
        return cls(*_key_of(path))

    def seal(self, key: bytes | None, value: bytes | None, *, topic: str, partition: int,
             offset: int) -> bytes:
        """The DLQ value for the raw record (``key``, ``value``) at topic/partition/offset."""
        flags = (1 if key is not None else 0) | (2 if value is not None else 0)
        plain = _LEN.pack(flags, len(key or b"")) + (key or b"") + (value or b"")
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, plain, _aad(self.key_id, topic, partition, offset))
        return self._prefix + nonce + sealed

    def headers(self, *, reason: str, chain_id: str, seq: int, topic: str, partition: int,
                offset: int) -> dict[str, str]:
        return {"reason": reason, "chain_id": chain_id, "seq": str(seq),
                "source_topic": topic, "source_partition": str(partition),
                "source_offset": str(offset), "encryption": ENCRYPTION, "key_id": self.key_id}

    def __repr__(self) -> str:
        return f"DlqCipher(key_id={self.key_id!r})"


@dataclass(frozen=True)
class DeadLetter:
    """One decrypted dead letter: the raw record as the sealer received it."""

    reason: str
    chain_id: str
    seq: int
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class DlqKeys:
    """Every DLQ key of a keys directory (current and retired), to read dead letters."""

    def __init__(self, keys_dir: Path) -> None:
        self._keys: dict[str, AESGCM] = {}
        paths = [keys_dir / DLQ_KEY, *sorted((keys_dir / RETIRED).glob("dlq-*.key"))]
        for path in paths:
            if path.exists():
                key_id, secret = _key_of(path)
                self._keys[key_id] = AESGCM(secret)
        if not self._keys:
            raise ConfigError(f"no DLQ key in {keys_dir} ({DLQ_KEY}): dead letters cannot "
                              "be read without the key the sealer wrote them with")

    def open(self, value: bytes, headers: Mapping[str, str]) -> DeadLetter:
        """Decrypt one DLQ message; DataError when it is not one, or does not decrypt
        under a known key for the coordinates its headers claim."""
        try:
            topic = headers["source_topic"]
            partition, offset = int(headers["source_partition"]), int(headers["source_offset"])
            reason, chain_id, seq = headers["reason"], headers["chain_id"], int(headers["seq"])
        except (KeyError, ValueError):
            raise DataError("not a sealtrail dead letter: headers missing or malformed") \
                from None
        if not value.startswith(MAGIC) or len(value) < len(MAGIC) + 1:
            raise DataError(f"dead letter of {topic}/{partition}@{offset} is not encrypted "
                            f"in the {ENCRYPTION} format")
        n = value[len(MAGIC)]
        start = len(MAGIC) + 1
        key_id = value[start:start + n].decode("ascii", "replace")
        aead = self._keys.get(key_id)
        if aead is None:
            raise KeyMaterialError(f"dead letter of {topic}/{partition}@{offset} is "
                                   f"encrypted under {key_id}, which this keys directory "
                                   "does not hold")
        nonce = value[start + n:start + n + _NONCE]
        try:
            plain = aead.decrypt(nonce, value[start + n + _NONCE:],
                                 _aad(key_id, topic, partition, offset))
        except (InvalidTag, ValueError):
            raise DataError(f"dead letter of {topic}/{partition}@{offset} does not decrypt "
                            "(altered, or moved from other coordinates)") from None
        flags, klen = _LEN.unpack_from(plain)
        body = plain[_LEN.size:]
        return DeadLetter(reason, chain_id, seq, topic, partition, offset,
                          body[:klen] if flags & 1 else None,
                          body[klen:] if flags & 2 else None)


def rotate_dlq_key(keys_dir: Path) -> tuple[str, str]:
    """A new ``dlq.key``; the old one moves to ``retired/`` so what it encrypted stays
    readable until the topic's retention expires it. Returns (old id, new id)."""
    path = keys_dir / DLQ_KEY
    old = read_private(path)
    write_private(keys_dir / RETIRED / f"{old['key_id']}.key",
                  {**old, "retired_at": time.time_ns() // 1000}, replace=True)
    new = _new_doc()
    write_private(path, new, replace=True)
    return str(old.get("key_id")), str(new["key_id"])
