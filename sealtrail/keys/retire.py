"""What happens to a signing key once it is retired (docs/keys.md).

A retired private key that still exists can sign entries and checkpoints dated inside its
old window, which verify accepts on signatures alone; so by default ``keys rotate``
destroys it (:func:`destroy_file`), and keeping it takes an explicit choice and a
passphrase it is encrypted under (:func:`keep_encrypted`)."""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    load_pem_private_key,
)

from sealtrail.errors import ConfigError, KeyMaterialError
from sealtrail.runtime.durable import fsync_dir

__all__ = ["MIN_PASSPHRASE", "destroy_file", "keep_encrypted", "load_encrypted",
           "plaintext_retired_signing_keys"]

#: Shortest passphrase accepted for a kept retired key.
MIN_PASSPHRASE = 12


def destroy_file(path: Path) -> None:
    """Overwrite ``path`` in place with random bytes, flush it to disk, and remove it.

    Best effort, and said so in docs/keys.md: a copy-on-write or journaling file system,
    an SSD's wear levelling, backups and snapshots may keep the old blocks."""
    size = path.stat().st_size
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, secrets.token_bytes(max(size, 1)))
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    fsync_dir(path.parent)


def keep_encrypted(path: Path, seed: bytes, passphrase: bytes) -> Path:
    """Write the Ed25519 ``seed`` to ``path`` as a PKCS#8 PEM encrypted under
    ``passphrase`` (the best encryption the cryptography library offers), mode 0600."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise ConfigError(f"a passphrase for a kept retired key must have at least "
                          f"{MIN_PASSPHRASE} characters")
    pem = Ed25519PrivateKey.from_private_bytes(seed).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(passphrase))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(path.parent)
    return path


def load_encrypted(path: Path, passphrase: bytes) -> bytes:
    """The seed of a kept retired key (for an investigation); KeyMaterialError when the
    passphrase is wrong or the file is not one."""
    from cryptography.hazmat.primitives.serialization import NoEncryption

    try:
        key = load_pem_private_key(path.read_bytes(), passphrase)
    except (ValueError, TypeError):
        raise KeyMaterialError(f"{path}: wrong passphrase or not a kept retired key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyMaterialError(f"{path} does not hold an Ed25519 key")
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def plaintext_retired_signing_keys(retired_dir: Path) -> list[Path]:
    """Retired signing keys kept in clear by earlier versions (``retired/*.key`` holding an
    Ed25519 seed): each can still sign backdated evidence."""
    found = []
    for path in sorted(retired_dir.glob("*.key")) if retired_dir.is_dir() else []:
        try:
            doc = json.loads(path.read_text())
            seed = base64.b64decode(doc.get("seed", ""), validate=True)
        except (ValueError, OSError, AttributeError, TypeError):
            continue
        if doc.get("algorithm") == "ed25519" and len(seed) == 32:
            found.append(path)
    return found
