"""Key files: the signing key, the HMAC key and the master key (mode 0600), the public
keyring, rotation, and signers that pick up a rotated key without a restart.

Layout of a keys directory (mode 0700; docs/keys.md)::

    signing.key        {"key_id", "algorithm": "ed25519", "seed": base64, "created_at"}  0600
    hmac.key           {"key_id", "secret": base64, "created_at"}                        0600
    master.key         {"key_id", "secret": base64, "created_at"}  wraps subject data keys 0600
    dlq.key            {"key_id", "secret": base64, "created_at"}  encrypts dead letters 0600
    public.json        the public keyring (docs/format.md) to hand to verifiers
    retired/           signing and HMAC keys replaced by rotation, 0600 (``<key id>.key``)
    data-keys/, subjects/   the embedded subject key store (sealtrail.keys.subject)

Private key material is never logged and never part of an exception message: errors
name the file, not its content.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import secrets
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealtrail.core.redaction import HmacPseudonymizer
from sealtrail.core.signing import Ed25519Signer, Keyring, PublicKey
from sealtrail.errors import ConfigError, KeyMaterialError
from sealtrail.runtime.durable import fsync_dir

__all__ = [
    "DLQ_KEY",
    "HMAC_KEY",
    "MASTER_KEY",
    "PUBLIC_KEYRING",
    "RETIRED",
    "SIGNING_KEY",
    "ReloadingPseudonymizer",
    "ReloadingSigner",
    "Rotation",
    "init_keys",
    "load_hmac_key",
    "load_keyring",
    "load_signer",
    "read_private",
    "rotate_hmac_key",
    "rotate_signing_key",
    "write_private",
]

log = logging.getLogger("sealtrail.keys")

SIGNING_KEY = "signing.key"
HMAC_KEY = "hmac.key"
MASTER_KEY = "master.key"
DLQ_KEY = "dlq.key"
"""Encrypts the dead-letter copies of rejected records (sealtrail.pipeline.dlq)."""
PUBLIC_KEYRING = "public.json"
RETIRED = "retired"
DEFAULT_GRACE_S = 10.0
"""After a rotation the old signing key stays valid this long, so signers that have not
yet reloaded (they check once a second) still sign inside its window."""


def _now_us() -> int:
    return time.time_ns() // 1000


def write_private(path: Path, doc: dict[str, Any], *, replace: bool = False) -> None:
    """Write ``doc`` as JSON to ``path`` with mode 0600, durably and atomically.

    Without ``replace`` an existing file is never overwritten (ConfigError)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # atomic, fails if the file exists
            except FileExistsError:
                raise ConfigError(f"{path} already exists; not overwriting a key") from None
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def read_private(path: Path) -> dict[str, Any]:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(
            f"no key file at {path}: create keys with `sealtrail keys init`"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyMaterialError(
            f"{path} is readable by others (mode {oct(mode & 0o777)}); chmod 600 it")
    try:
        doc = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise KeyMaterialError(f"{path} is not a sealtrail key file") from None
    if not isinstance(doc, dict):
        raise KeyMaterialError(f"{path} is not a sealtrail key file")
    return doc


def _secret_doc(prefix: str) -> dict[str, Any]:
    return {"key_id": prefix + secrets.token_hex(4),
            "secret": base64.b64encode(secrets.token_bytes(32)).decode(),
            "created_at": _now_us()}


def _write_keyring(path: Path, keyring: Keyring) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(keyring.to_json(), indent=2) + "\n")
    os.replace(tmp, path)


def init_keys(keys_dir: Path) -> tuple[Ed25519Signer, bool]:
    """Create the keys in ``keys_dir`` unless they exist. Returns (signer, created).

    A missing HMAC or master key is added to an existing directory."""
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, prefix in ((HMAC_KEY, "h"), (MASTER_KEY, "mk-"), (DLQ_KEY, "dlq-")):
        if not (keys_dir / name).exists():
            with contextlib.suppress(ConfigError):  # created meanwhile by another process
                write_private(keys_dir / name, _secret_doc(prefix))
    signing = keys_dir / SIGNING_KEY
    if signing.exists():
        return load_signer(keys_dir), False
    seed = secrets.token_bytes(32)
    signer = Ed25519Signer(seed)
    write_private(signing, {"key_id": signer.key_id, "algorithm": "ed25519",
                            "seed": base64.b64encode(seed).decode(), "created_at": _now_us()})
    keyring_path = keys_dir / PUBLIC_KEYRING
    existing = list(load_keyring(keyring_path).keys.values()) if keyring_path.exists() else []
    _write_keyring(keyring_path, Keyring.of(
        [*existing, PublicKey(signer.key_id, signer.public_key, not_before=0)]))
    return signer, True


def _signer_from(path: Path) -> Ed25519Signer:
    doc = read_private(path)
    try:
        return Ed25519Signer(base64.b64decode(doc["seed"], validate=True), str(doc["key_id"]))
    except (KeyError, ValueError, TypeError):
        raise KeyMaterialError(f"{path} is malformed") from None


def load_signer(keys_dir: Path) -> Ed25519Signer:
    """The signer whose private key is in ``keys_dir/signing.key``."""
    return _signer_from(keys_dir / SIGNING_KEY)


def load_hmac_key(keys_dir: Path) -> tuple[bytes, str]:
    """(secret, key id) of the pseudonymisation key."""
    path = keys_dir / HMAC_KEY
    doc = read_private(path)
    try:
        return base64.b64decode(doc["secret"], validate=True), str(doc["key_id"])
    except (KeyError, ValueError, TypeError):
        raise KeyMaterialError(f"{path} is malformed") from None


#: The largest keyring file read (one with a thousand keys is about 200 kB).
MAX_KEYRING_BYTES = 16 * 1024 * 1024


def load_keyring(path: Path) -> Keyring:
    """The pinned public keyring at ``path`` (a file the verifier supplies)."""
    try:
        if path.stat().st_size > MAX_KEYRING_BYTES:
            raise KeyMaterialError(f"keyring {path} is larger than {MAX_KEYRING_BYTES} bytes: "
                                   "not a keyring")
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read keyring {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise KeyMaterialError(f"keyring {path} is not UTF-8 text") from None
    return Keyring.loads(text)


# -- rotation ------------------------------------------------------------------------


@dataclass(frozen=True)
class Rotation:
    """What a rotation did: the retired and the new key id, the instant the new key is
    valid from, the old key's new not_after, and where the old private key was kept
    encrypted (None: it was destroyed)."""

    old_key_id: str
    new_key_id: str
    at_us: int
    old_not_after: int
    retired_file: Path | None
    plaintext_retired: tuple[Path, ...] = ()  # retired signing keys left in clear earlier


def _retire(keys_dir: Path, doc: dict[str, Any], at_us: int) -> Path:
    target = keys_dir / RETIRED / f"{doc['key_id'].replace(':', '_')}.key"
    write_private(target, {**doc, "retired_at": at_us}, replace=True)
    return target


def rotate_signing_key(keys_dir: Path, *, grace_s: float = DEFAULT_GRACE_S,
                       now_us: int | None = None,
                       keep_passphrase: bytes | None = None) -> Rotation:
    """Make a fresh signing key the active one, and retire the old one.

    In order: public.json gets the new key (valid from now) and the old key's
    ``not_after`` set to now + ``grace_s``; ``signing.key`` is replaced atomically (running
    ReloadingSigners pick it up within a second), after its old content was overwritten in
    place: the retired private seed is destroyed. Only with ``keep_passphrase`` is it kept,
    encrypted under that passphrase, as ``retired/<key id>.pem`` (0600). Records the old
    key signed inside its window keep verifying (the public keyring keeps the key)."""
    from sealtrail.keys.retire import (
        destroy_file,
        keep_encrypted,
        plaintext_retired_signing_keys,
    )

    if grace_s < 0:
        raise ConfigError("the grace period must be >= 0 seconds")
    old_path = keys_dir / SIGNING_KEY
    old_doc = read_private(old_path)
    old = _signer_from(old_path)
    at = _now_us() if now_us is None else now_us
    not_after = at + int(grace_s * 1_000_000)
    retired = None
    if keep_passphrase is not None:
        retired = keep_encrypted(
            keys_dir / RETIRED / f"{old.key_id.replace(':', '_')}.pem",
            base64.b64decode(old_doc["seed"]), keep_passphrase)
    seed = secrets.token_bytes(32)
    new = Ed25519Signer(seed)
    keyring_path = keys_dir / PUBLIC_KEYRING
    keys = dict(load_keyring(keyring_path).keys) if keyring_path.exists() else {}
    prev = keys.get(old.key_id)
    if prev is not None and prev.public_key != old.public_key:
        raise KeyMaterialError(f"{keyring_path} lists {old.key_id} with another public key; "
                        "not rotating")
    not_before = prev.not_before if prev is not None else 0
    if prev is not None and prev.not_after is not None:
        not_after = min(not_after, prev.not_after)
    not_after = max(not_after, not_before)
    keys[old.key_id] = PublicKey(old.key_id, old.public_key, not_before=not_before,
                                 not_after=not_after)
    keys[new.key_id] = PublicKey(new.key_id, new.public_key, not_before=at)
    _write_keyring(keyring_path, Keyring.of(keys.values()))
    held = old_path.with_name(f".{SIGNING_KEY}.retiring")
    if held.exists():  # left by an interrupted rotation
        destroy_file(held)
    os.link(old_path, held)  # the old seed's file, to overwrite once the new one is in place
    try:
        write_private(old_path, {"key_id": new.key_id, "algorithm": "ed25519",
                                 "seed": base64.b64encode(seed).decode(), "created_at": at},
                      replace=True)
    finally:
        destroy_file(held)
    log.info("signing key rotated: %s -> %s (old key valid until %d; its private key %s)",
             old.key_id, new.key_id, not_after,
             "kept encrypted" if retired else "destroyed")
    return Rotation(old.key_id, new.key_id, at, not_after, retired,
                    tuple(plaintext_retired_signing_keys(keys_dir / RETIRED)))


def rotate_hmac_key(keys_dir: Path) -> tuple[str, str]:
    """Replace the pseudonymisation key; returns (old key id, new key id).

    Pseudonyms carry the key id, so values pseudonymised under the old key stay told
    apart; they no longer join with new ones (docs/redaction.md)."""
    path = keys_dir / HMAC_KEY
    old = read_private(path)
    at = _now_us()
    _retire(keys_dir, old, at)
    new = _secret_doc("h")
    write_private(path, new, replace=True)
    return str(old.get("key_id")), str(new["key_id"])


# -- signers and pseudonymizers that follow rotation ---------------------------------


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ino, st.st_size)


class ReloadingSigner:
    """A Signer for ``keys_dir/signing.key`` that follows rotation without a restart.

    At most once per ``check_interval`` seconds it looks at the file (mtime, inode,
    size) and loads a replaced key. The switch happens only when ``key_id`` is read and
    no earlier ``key_id`` read is still waiting for its ``sign``: callers read the key
    id into the statement and then sign it (core.chain.seal, checkpoints), so a record
    never names one key and carries another's signature. Not for use by several threads
    at once (the sealer and the archiver sign from one thread)."""

    def __init__(self, keys_dir: Path, *, check_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._path = keys_dir / SIGNING_KEY
        self._interval = check_interval
        self._clock = clock
        self._stamp = _stamp(self._path)
        self._signer = _signer_from(self._path)
        self._next_check = clock() + check_interval
        self._pending_sign = False
        self.reloads = 0

    @property
    def key_id(self) -> str:
        if not self._pending_sign:
            if self._clock() >= self._next_check:
                self._maybe_reload()
            self._pending_sign = True
        return self._signer.key_id

    @property
    def public_key(self) -> bytes:
        return self._signer.public_key

    def sign(self, message: bytes) -> bytes:
        self._pending_sign = False
        return self._signer.sign(message)

    def _maybe_reload(self) -> None:
        self._next_check = self._clock() + self._interval
        stamp = _stamp(self._path)
        if stamp is None or stamp == self._stamp:
            return
        try:
            signer = _signer_from(self._path)
        except (ConfigError, KeyMaterialError) as exc:
            log.warning("signing key changed but cannot be loaded, keeping %s: %s",
                        self._signer.key_id, exc)
            return
        self._stamp = stamp
        if signer.key_id != self._signer.key_id:
            log.info("signing key reloaded: %s -> %s", self._signer.key_id, signer.key_id)
            self._signer = signer
            self.reloads += 1

    def __repr__(self) -> str:
        return f"ReloadingSigner(key_id={self._signer.key_id!r}, path={str(self._path)!r})"


class ReloadingPseudonymizer:
    """An HMAC pseudonymizer for ``keys_dir/hmac.key`` that follows ``keys rotate-hmac``
    (checked at most once per ``check_interval`` seconds)."""

    def __init__(self, keys_dir: Path, *, check_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._keys_dir = keys_dir
        self._path = keys_dir / HMAC_KEY
        self._interval = check_interval
        self._clock = clock
        self._stamp = _stamp(self._path)
        secret, key_id = load_hmac_key(keys_dir)
        self._inner = HmacPseudonymizer(secret, key_id)
        self._next_check = clock() + check_interval

    @property
    def key_id(self) -> str:
        return self._inner.key_id

    def pseudonym(self, value: str) -> str:
        if self._clock() >= self._next_check:
            self._next_check = self._clock() + self._interval
            stamp = _stamp(self._path)
            if stamp is not None and stamp != self._stamp:
                try:
                    secret, key_id = load_hmac_key(self._keys_dir)
                except (ConfigError, KeyMaterialError) as exc:
                    log.warning("HMAC key changed but cannot be loaded: %s", exc)
                else:
                    self._stamp = stamp
                    self._inner = HmacPseudonymizer(secret, key_id)
                    log.info("HMAC key reloaded: %s", key_id)
        return self._inner.pseudonym(value)

    def __repr__(self) -> str:
        return f"ReloadingPseudonymizer(key_id={self._inner.key_id!r})"
