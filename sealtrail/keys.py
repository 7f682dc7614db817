"""Key files: the signing key and HMAC key (mode 0600) and the public keyring.

Layout of a keys directory::

    signing.key   {"key_id", "algorithm": "ed25519", "seed": base64, "created_at"}  0600
    hmac.key      {"key_id", "secret": base64}                                     0600
    public.json   the public keyring (docs/format.md) to hand to verifiers
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import time
from pathlib import Path

from sealtrail.core.signing import Ed25519Signer, Keyring, PublicKey
from sealtrail.errors import ConfigError, KeyError_

__all__ = ["init_keys", "load_hmac_key", "load_keyring", "load_signer"]

SIGNING_KEY = "signing.key"
HMAC_KEY = "hmac.key"
PUBLIC_KEYRING = "public.json"


def _write_private(path: Path, doc: dict[str, object]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())


def _read_private(path: Path) -> dict[str, str]:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(
            f"no key file at {path}: create keys with `sealtrail keys init`"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyError_(f"{path} is readable by others (mode {oct(mode & 0o777)}); chmod 600 it")
    try:
        doc: dict[str, str] = json.loads(path.read_text())
        return doc
    except ValueError:
        raise KeyError_(f"{path} is not a sealtrail key file") from None


def init_keys(keys_dir: Path) -> tuple[Ed25519Signer, bool]:
    """Create the keys in ``keys_dir`` unless they exist. Returns (signer, created)."""
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    signing = keys_dir / SIGNING_KEY
    if signing.exists():
        return load_signer(keys_dir), False
    seed = secrets.token_bytes(32)
    signer = Ed25519Signer(seed)
    now_us = time.time_ns() // 1000
    _write_private(
        signing,
        {
            "key_id": signer.key_id,
            "algorithm": "ed25519",
            "seed": base64.b64encode(seed).decode(),
            "created_at": now_us,
        },
    )
    if not (keys_dir / HMAC_KEY).exists():
        _write_private(
            keys_dir / HMAC_KEY,
            {"key_id": "h" + secrets.token_hex(4), "secret": base64.b64encode(
                secrets.token_bytes(32)).decode()},
        )
    keyring_path = keys_dir / PUBLIC_KEYRING
    existing = list(load_keyring(keyring_path).keys.values()) if keyring_path.exists() else []
    keyring = Keyring.of([*existing, PublicKey(signer.key_id, signer.public_key, not_before=0)])
    keyring_path.write_text(json.dumps(keyring.to_json(), indent=2) + "\n")
    return signer, True


def load_signer(keys_dir: Path) -> Ed25519Signer:
    """The signer whose private key is in ``keys_dir/signing.key``."""
    doc = _read_private(keys_dir / SIGNING_KEY)
    try:
        return Ed25519Signer(base64.b64decode(doc["seed"]), doc["key_id"])
    except (KeyError, ValueError):
        raise KeyError_(f"{keys_dir / SIGNING_KEY} is malformed") from None


def load_hmac_key(keys_dir: Path) -> tuple[bytes, str]:
    """(secret, key id) of the pseudonymisation key."""
    doc = _read_private(keys_dir / HMAC_KEY)
    try:
        return base64.b64decode(doc["secret"]), doc["key_id"]
    except (KeyError, ValueError):
        raise KeyError_(f"{keys_dir / HMAC_KEY} is malformed") from None


def load_keyring(path: Path) -> Keyring:
    """The pinned public keyring at ``path`` (a file the verifier supplies)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read keyring {path}: {exc.strerror}") from None
    return Keyring.loads(text)
