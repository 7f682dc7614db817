"""Hash domains, named once. Every hash sealtrail computes is SHA-256 over
``domain || data``, so that a value of one kind can never pass for another.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "CHECKPOINT_DOMAIN",
    "CHECKPOINT_V2_DOMAIN",
    "ENTRY_DOMAIN",
    "GENESIS_DOMAIN",
    "HASH_SIZE",
    "INDEX_DOMAIN",
    "MERKLE_LEAF_PREFIX",
    "MERKLE_NODE_PREFIX",
    "SIG_BATCH_DOMAIN",
    "SIG_CHECKPOINT_DOMAIN",
    "SIG_ENTRY_DOMAIN",
    "SIG_INDEX_DOMAIN",
    "ZERO_HASH",
    "hasher",
    "sha256",
]

HASH_SIZE = 32
ZERO_HASH = bytes(HASH_SIZE)

ENTRY_DOMAIN = b"sealtrail:entry:v1\x00"
GENESIS_DOMAIN = b"sealtrail:genesis:v1\x00"
CHECKPOINT_DOMAIN = b"sealtrail:checkpoint:v1\x00"
CHECKPOINT_V2_DOMAIN = b"sealtrail:checkpoint:v2\x00"
INDEX_DOMAIN = b"sealtrail:index:v1\x00"
SIG_ENTRY_DOMAIN = b"sealtrail:sig:entry:v1\x00"
SIG_BATCH_DOMAIN = b"sealtrail:sig:batch:v1\x00"
SIG_CHECKPOINT_DOMAIN = b"sealtrail:sig:checkpoint:v1\x00"
SIG_INDEX_DOMAIN = b"sealtrail:sig:index:v1\x00"
# RFC 6962 section 2.1: leaves and interior nodes use different one-byte prefixes.
MERKLE_LEAF_PREFIX = b"\x00"
MERKLE_NODE_PREFIX = b"\x01"


def hasher(prefix: bytes = b"") -> hashlib._Hash:
    """A SHA-256 state that has absorbed ``prefix``. Hot loops ``copy()`` it for each hash:
    with OpenSSL 3, Python 3.11 looks the algorithm up on every ``hashlib.sha256()``, which
    costs about as much as hashing a kilobyte; a copy does not."""
    return hashlib.sha256(prefix)


_EMPTY = hasher()


def sha256(*parts: bytes) -> bytes:
    """SHA-256 of the concatenation of ``parts``."""
    h = _EMPTY.copy()
    h.update(b"".join(parts))
    return h.digest()
