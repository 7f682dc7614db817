"""Subject data keys for crypto-shredding: the encrypt action's keys, their store, and
reading encrypted fields back.

Each data subject (the value at the policy's subject field, e.g. ``actor.id``) gets
its own random 256-bit data key. Fields the policy encrypts are sealed as::

    enc:v1:<key id>:<base64(nonce || ciphertext || tag)>

AES-256-GCM, a 12-byte random nonce, standard base64 with padding, and associated
data ``"sealtrail:field:v1" 0x00 <key id> 0x00 <field path>`` so a ciphertext moved to
another field or relabelled with another key id does not decrypt (docs/redaction.md).
Encryption happens before the entry is hashed: the chain covers the ciphertext, and
destroying the key (``sealtrail forget``) leaves every archive verifying while the
fields become unreadable everywhere they were copied (topic, archive, replays, exports).

:class:`KeyStore` is the boundary a KMS-backed store replaces; :class:`LocalKeyStore`
is the embedded default under the keys directory::

    master.key                 wraps every data key (AES-256-GCM), 0600
    data-keys/<key id>.json    a wrapped data key, 0600
    data-keys/<key id>.erased  tombstone left by forget (no key material, no subject)
    subjects/<subject ref>.json   which key id a subject has, 0600
    subjects/.generation       touched by forget, so running processes drop caches

The subject itself is never written to disk: files are named by the subject ref, an
HMAC of the subject under a key derived from the master key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealtrail.core.redaction import ENC_PREFIX
from sealtrail.errors import ConfigError, KeyMaterialError
from sealtrail.keys import MASTER_KEY, read_private, write_private

__all__ = [
    "KeyStore",
    "LocalKeyStore",
    "SubjectEncryptor",
    "decrypt_event",
    "decrypt_value",
    "encrypted_key_id",
]

log = logging.getLogger("sealtrail.keys.subject")

DATA_KEYS = "data-keys"
SUBJECTS = "subjects"
GENERATION = ".generation"
FIELD_AAD = b"sealtrail:field:v1\x00"
WRAP_AAD = b"sealtrail:dek:v1\x00"
INDEX_INFO = b"sealtrail:subject-index:v1"
NONCE_SIZE = 12
_KEY_ID = re.compile(r"dk-[0-9a-f]{16}\Z")
_ENC = re.compile(r"enc:v1:([A-Za-z0-9_.-]{1,128}):([A-Za-z0-9+/=]+)\Z")


class KeyStore(Protocol):
    """Where subject data keys live. A KMS-backed store implements the same methods."""

    def data_key_for(self, subject: str) -> tuple[str, bytes]:
        """(key id, 32-byte data key) of ``subject``, created on first use."""
        ...

    def data_key(self, key_id: str) -> bytes | None:
        """The data key ``key_id``; None when it was destroyed or never existed."""
        ...

    def forget(self, subject: str) -> list[str]:
        """Destroy every data key of ``subject``; returns the destroyed key ids."""
        ...

    def subject_ref(self, subject: str) -> str:
        """An opaque, stable reference to ``subject`` that does not reveal it."""
        ...


def _aad(key_id: str, path: str) -> bytes:
    return FIELD_AAD + key_id.encode() + b"\x00" + path.encode("utf-8")


class LocalKeyStore:
    """The embedded key store in a keys directory (see the module docstring).

    Safe for several processes on one host (files are created atomically); a running
    process notices ``forget`` by another within ``check_interval`` seconds. Several
    hosts need a shared store: use a KMS-backed KeyStore."""

    def __init__(self, keys_dir: Path, *, check_interval: float = 0.5,
                 clock: Callable[[], float] = time.monotonic, max_cached: int = 10_000) -> None:
        self.keys_dir = keys_dir
        self._data = keys_dir / DATA_KEYS
        self._subjects = keys_dir / SUBJECTS
        for d in (keys_dir, self._data, self._subjects):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        master_path = keys_dir / MASTER_KEY
        if not master_path.exists():
            with contextlib.suppress(ConfigError):  # another process created it first
                write_private(master_path, {
                    "key_id": "mk-" + secrets.token_hex(4),
                    "secret": base64.b64encode(secrets.token_bytes(32)).decode(),
                    "created_at": time.time_ns() // 1000})
        doc = read_private(master_path)
        try:
            master = base64.b64decode(doc["secret"], validate=True)
            self.master_key_id = str(doc["key_id"])
        except (KeyError, ValueError, TypeError):
            raise KeyMaterialError(f"{master_path} is malformed") from None
        if len(master) != 32:
            raise KeyMaterialError(f"{master_path}: the master key must be 32 bytes")
        self._wrap = AESGCM(master)
        self._index_key = hmac.new(master, INDEX_INFO, hashlib.sha256).digest()
        self._interval = check_interval
        self._clock = clock
        self._max = max_cached
        self._by_subject: dict[str, tuple[str, bytes]] = {}
        self._by_id: dict[str, bytes] = {}
        self._generation = self._read_generation()
        self._next_check = clock() + check_interval

    def __repr__(self) -> str:
        return f"LocalKeyStore({str(self.keys_dir)!r})"

    # -- caches --------------------------------------------------------------------

    def _read_generation(self) -> int:
        try:
            return (self._subjects / GENERATION).stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def _fresh(self) -> None:
        if self._clock() < self._next_check:
            return
        self._next_check = self._clock() + self._interval
        generation = self._read_generation()
        if generation != self._generation:
            self._generation = generation
            self._by_subject.clear()
            self._by_id.clear()

    def _cache(self, subject: str, key_id: str, key: bytes) -> None:
        if len(self._by_subject) >= self._max:
            self._by_subject.clear()
            self._by_id.clear()
        self._by_subject[subject] = (key_id, key)
        self._by_id[key_id] = key

    # -- files ---------------------------------------------------------------------

    def subject_ref(self, subject: str) -> str:
        return hmac.new(self._index_key, subject.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def _index_path(self, subject: str) -> Path:
        return self._subjects / f"{self.subject_ref(subject)}.json"

    def _key_path(self, key_id: str) -> Path:
        return self._data / f"{key_id}.json"

    def _load(self, key_id: str) -> bytes | None:
        path = self._key_path(key_id)
        if not path.exists():
            return None
        doc = read_private(path)
        try:
            blob = base64.b64decode(doc["wrapped"], validate=True)
            return self._wrap.decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:],
                                      WRAP_AAD + key_id.encode())
        except (KeyError, ValueError, TypeError, InvalidTag):
            raise KeyMaterialError(f"{path} does not unwrap with the master key "
                            f"{self.master_key_id}") from None

    def data_key_for(self, subject: str) -> tuple[str, bytes]:
        self._fresh()
        hit = self._by_subject.get(subject)
        if hit is not None:
            return hit
        index = self._index_path(subject)
        for _ in range(3):
            if index.exists():
                key_id = str(read_private(index)["key_id"])
                key = self._load(key_id) if _KEY_ID.match(key_id) else None
                if key is not None:
                    self._cache(subject, key_id, key)
                    return key_id, key
                index.unlink(missing_ok=True)  # dangling: its key was destroyed
            key_id, key = "dk-" + secrets.token_hex(8), secrets.token_bytes(32)
            nonce = secrets.token_bytes(NONCE_SIZE)
            wrapped = nonce + self._wrap.encrypt(nonce, key, WRAP_AAD + key_id.encode())
            write_private(self._key_path(key_id), {
                "key_id": key_id, "master_key_id": self.master_key_id,
                "wrapped": base64.b64encode(wrapped).decode(),
                "created_at": time.time_ns() // 1000})
            try:
                write_private(index, {"key_id": key_id})
            except ConfigError:  # another process gave the subject a key first
                self._key_path(key_id).unlink(missing_ok=True)
                continue
            self._cache(subject, key_id, key)
            return key_id, key
        raise KeyMaterialError("could not create a data key: the subject index keeps changing")

    def data_key(self, key_id: str) -> bytes | None:
        if not _KEY_ID.match(key_id):
            return None
        self._fresh()
        key = self._by_id.get(key_id)
        if key is None:
            key = self._load(key_id)
            if key is not None:
                self._by_id[key_id] = key
        return key

    def is_erased(self, key_id: str) -> bool:
        """Whether ``key_id`` was destroyed by forget (a tombstone exists)."""
        return bool(_KEY_ID.match(key_id)) and (self._data / f"{key_id}.erased").exists()

    def forget(self, subject: str) -> list[str]:
        index = self._index_path(subject)
        destroyed: list[str] = []
        if index.exists():
            key_id = str(read_private(index).get("key_id", ""))
            if _KEY_ID.match(key_id):
                self._destroy(key_id)
                destroyed.append(key_id)
            index.unlink(missing_ok=True)
        # Running processes drop their cached keys when this file changes.
        generation = self._subjects / GENERATION
        generation.write_text(f"{time.time_ns()}\n")
        os.utime(generation)
        self._by_subject.pop(subject, None)
        for key_id in destroyed:
            self._by_id.pop(key_id, None)
        return destroyed

    def _destroy(self, key_id: str) -> None:
        path = self._key_path(key_id)
        if path.exists():
            # Overwrite before unlinking; on copy-on-write or journalled storage this is
            # best effort, see docs/redaction.md on backups and storage.
            size = path.stat().st_size
            with open(path, "r+b") as f:
                f.write(b"\0" * size)
                f.flush()
                os.fsync(f.fileno())
            path.unlink()
        tomb = self._data / f"{key_id}.erased"
        tomb.write_text(json.dumps({"key_id": key_id, "erased_at": time.time_ns() // 1000}))
        os.chmod(tomb, 0o600)


class SubjectEncryptor:
    """The encrypt action's FieldEncryptor over a KeyStore (AES-256-GCM)."""

    def __init__(self, keystore: KeyStore) -> None:
        self._keystore = keystore
        self._ciphers: dict[str, tuple[bytes, AESGCM]] = {}

    def encrypt(self, subject: str, value: str, *, path: str) -> str:
        key_id, key = self._keystore.data_key_for(subject)
        cached = self._ciphers.get(key_id)
        if cached is None or cached[0] is not key:
            if len(self._ciphers) > 1024:
                self._ciphers.clear()
            cached = (key, AESGCM(key))
            self._ciphers[key_id] = cached
        nonce = os.urandom(NONCE_SIZE)
        blob = nonce + cached[1].encrypt(nonce, value.encode("utf-8"), _aad(key_id, path))
        return f"{ENC_PREFIX}{key_id}:{base64.b64encode(blob).decode()}"

    def __repr__(self) -> str:
        return f"SubjectEncryptor({self._keystore!r})"


def encrypted_key_id(value: str) -> str | None:
    """The data key id of an ``enc:v1:`` field value, None for any other string."""
    m = _ENC.match(value) if value.startswith(ENC_PREFIX) else None
    return m.group(1) if m else None


def decrypt_value(value: str, path: str, keystore: KeyStore) -> str | None:
    """The plaintext of the encrypted field ``value`` found at ``path``; None when the
    key is gone (forgotten) or unknown, or the value was not made for this path/key."""
    m = _ENC.match(value)
    if m is None:
        return None
    key = keystore.data_key(m.group(1))
    if key is None:
        return None
    try:
        blob = base64.b64decode(m.group(2), validate=True)
        plain = AESGCM(key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:],
                                    _aad(m.group(1), path))
        return plain.decode("utf-8")
    except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError):
        return None


def decrypt_event(event: dict[str, Any], keystore: KeyStore, *,
                  unreadable: list[str] | None = None) -> dict[str, Any]:
    """A copy of ``event`` (an AuditEvent dict) with every encrypted field decrypted
    while its key exists. Fields whose key was destroyed keep their ``enc:v1:`` value;
    their paths are appended to ``unreadable`` when given. ``event`` is not changed."""
    out = copy.deepcopy(event)

    def walk(node: dict[str, Any], prefix: str) -> None:
        for name, value in node.items():
            path = prefix + name
            if isinstance(value, dict):
                walk(value, path + ".")
            elif isinstance(value, str) and value.startswith(ENC_PREFIX):
                plain = decrypt_value(value, path, keystore)
                if plain is None:
                    if unreadable is not None:
                        unreadable.append(path)
                else:
                    node[name] = plain

    walk(out, "")
    return out
