"""RFC 6962 Merkle tree hashing and inclusion proofs (SHA-256).

Leaf hash = SHA-256(0x00 || leaf); node hash = SHA-256(0x01 || left || right);
the empty tree hashes to SHA-256(""). Indices are 0-based.
"""

from __future__ import annotations

from collections.abc import Sequence

from sealtrail.core.hashing import (
    HASH_SIZE,
    MERKLE_LEAF_PREFIX,
    MERKLE_NODE_PREFIX,
    hasher,
    sha256,
)
from sealtrail.errors import IntegrityError

__all__ = ["inclusion_proof", "leaf_hash", "node_hash", "root", "root_from_inclusion_proof"]


_LEAF = hasher(MERKLE_LEAF_PREFIX)
_NODE = hasher(MERKLE_NODE_PREFIX)


def leaf_hash(leaf: bytes) -> bytes:
    h = _LEAF.copy()
    h.update(leaf)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    h = _NODE.copy()
    h.update(left + right)
    return h.digest()


def _split(n: int) -> int:
    """The largest power of two strictly less than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _root_of_hashes(hashes: Sequence[bytes]) -> bytes:
    # Iterative, level by level: RFC 6962's tree is the same as pairing left to
    # right and carrying an odd last node up unchanged.
    level = list(hashes)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of the raw leaf inputs."""
    if not leaves:
        return sha256(b"")
    return _root_of_hashes([leaf_hash(x) for x in leaves])


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]): the audit path of leaf ``index``, from the leaf level up."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf index {index} out of range for a tree of {len(leaves)}")
    hashes = [leaf_hash(x) for x in leaves]

    def path(m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*path(m, lo, lo + k), _root_of_hashes(hashes[lo + k : hi])]
        return [*path(m - k, lo + k, hi), _root_of_hashes(hashes[lo : lo + k])]

    return path(index, 0, len(hashes))


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash_: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 2.1.3.2); raises on malformed proofs."""
    if not 0 <= index < size:
        raise IntegrityError(f"leaf index {index} is not inside a tree of size {size}")
    if len(leaf_hash_) != HASH_SIZE:
        raise IntegrityError(f"leaf hash has {len(leaf_hash_)} bytes, expected {HASH_SIZE}")
    fn, sn = index, size - 1
    r = leaf_hash_
    for p in proof:
        if len(p) != HASH_SIZE:
            raise IntegrityError(f"proof element has {len(p)} bytes, expected {HASH_SIZE}")
        if sn == 0:
            raise IntegrityError("inclusion proof is longer than the tree allows")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise IntegrityError("inclusion proof is shorter than the tree requires")
    return r
