"""RFC 6962 Merkle tree hashing, inclusion and consistency proofs (SHA-256), and the
compact range (frontier) that lets a log grow without keeping its leaves.

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

__all__ = [
    "EMPTY_ROOT",
    "Frontier",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "leaf_hashes",
    "node_hash",
    "root",
    "root_from_inclusion_proof",
    "root_of_leaf_hashes",
    "verify_consistency",
]


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
    node = _NODE
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            h = node.copy()
            h.update(level[i])
            h.update(level[i + 1])
            nxt.append(h.digest())
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def leaf_hashes(leaves: Sequence[bytes]) -> list[bytes]:
    """The leaf hash of each of ``leaves`` (one loop, for the hot paths)."""
    leaf = _LEAF
    out = []
    for x in leaves:
        h = leaf.copy()
        h.update(x)
        out.append(h.digest())
    return out


EMPTY_ROOT = sha256(b"")


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of the raw leaf inputs."""
    if not leaves:
        return EMPTY_ROOT
    return _root_of_hashes([leaf_hash(x) for x in leaves])


def root_of_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH of a tree given the hashes of its leaves (already leaf-hashed)."""
    return _root_of_hashes(hashes) if hashes else EMPTY_ROOT


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


# -- compact range: a growing log without its leaves ---------------------------------------


class Frontier:
    """The compact range of leaves [0, size): the roots of the perfect subtrees that the
    binary form of ``size`` splits the tree into, left (largest) to right. Enough to add
    leaves, compute the root, and prove consistency with any later size (RFC 9162 2.1.4)
    given the leaves added since."""

    __slots__ = ("nodes", "size")

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(nodes) != bin(size).count("1"):
            raise IntegrityError(f"a compact range of size {size} holds {bin(size).count('1')} "
                                 f"hashes, not {len(nodes)}")
        if any(len(n) != HASH_SIZE for n in nodes):
            raise IntegrityError("a compact range holds 32-byte hashes")
        self.size = size
        self.nodes = list(nodes)

    def copy(self) -> Frontier:
        return Frontier(self.size, self.nodes)

    def append(self, leaf_hash_: bytes) -> None:
        """Add one leaf, given its leaf hash."""
        node, size, nodes = leaf_hash_, self.size, self.nodes
        while size & 1:
            h = _NODE.copy()
            h.update(nodes.pop() + node)
            node = h.digest()
            size >>= 1
        nodes.append(node)
        self.size += 1

    def extend(self, leaf_hashes: Sequence[bytes]) -> None:
        """Add leaves, given their leaf hashes (:meth:`append` in one loop)."""
        nodes, size, node = self.nodes, self.size, _NODE
        for leaf in leaf_hashes:
            s = size
            while s & 1:
                h = node.copy()
                h.update(nodes.pop())
                h.update(leaf)
                leaf = h.digest()
                s >>= 1
            nodes.append(leaf)
            size += 1
        self.size = size

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        result = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            result = node_hash(node, result)
        return result

    def ranges(self) -> list[tuple[int, int]]:
        """The [start, end) leaf range each node covers, left to right."""
        out, start = [], 0
        for bit in reversed(range(self.size.bit_length())):
            if self.size >> bit & 1:
                out.append((start, start + (1 << bit)))
                start += 1 << bit
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Frontier) and (self.size, self.nodes) == (other.size,
                                                                          other.nodes)

    def __repr__(self) -> str:
        return f"Frontier(size={self.size}, root={self.root().hex()[:16]}...)"


def consistency_proof(old: Frontier, new_leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) (RFC 6962 2.1.2) from the compact range of the first m = old.size
    leaves and the hashes of leaves m..n-1: every node it needs lies inside [0, m), where
    it is a node of the compact range or a fold of its right-hand nodes, or inside [m, n)."""
    m, n = old.size, old.size + len(new_leaf_hashes)
    if not 0 < m <= n:
        raise ValueError(f"a consistency proof needs 0 < m <= n, got m={m}, n={n}")
    spans = old.ranges()

    def mth(lo: int, hi: int) -> bytes:
        if lo >= m:
            return _root_of_hashes(new_leaf_hashes[lo - m:hi - m])
        first = next((i for i, (a, _) in enumerate(spans) if a == lo), None)
        if hi > m or first is None or not any(b == hi for _, b in spans[first:]):
            raise AssertionError(f"range {lo}..{hi} is not served by the compact range")
        last = next(i for i, (_, b) in enumerate(spans) if b == hi)
        result = old.nodes[last]
        for node in reversed(old.nodes[first:last]):
            result = node_hash(node, result)
        return result

    def subproof(m_: int, lo: int, hi: int, whole: bool) -> list[bytes]:
        size = hi - lo
        if m_ == size:
            return [] if whole else [mth(lo, hi)]
        k = _split(size)
        if m_ <= k:
            return [*subproof(m_, lo, lo + k, whole), mth(lo + k, hi)]
        return [*subproof(m_ - k, lo + k, hi, False), mth(lo, lo + k)]

    return subproof(m, 0, n, True)


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes,
                       proof: Sequence[bytes]) -> None:
    """RFC 9162 2.1.4.2: check that the tree of ``size2`` leaves with ``root2`` extends the
    tree of ``size1`` leaves with ``root1``. Raises IntegrityError with what differs.
    ``size1`` must be positive (a tree of no leaves is consistent with anything, and a
    proof from it means nothing)."""
    if not 0 < size1 <= size2:
        raise IntegrityError(f"a consistency proof needs 0 < size1 <= size2, got {size1}, "
                             f"{size2}")
    if any(len(p) != HASH_SIZE for p in proof):
        raise IntegrityError("consistency proof elements must be 32-byte hashes")
    if size1 == size2:
        if proof:
            raise IntegrityError("a consistency proof between equal sizes must be empty")
        if root1 != root2:
            raise IntegrityError(f"same size {size1}, different roots: {root1.hex()} and "
                                 f"{root2.hex()} (a fork)")
        return
    if not proof:
        raise IntegrityError("consistency proof is empty")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise IntegrityError("consistency proof is longer than the trees allow")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise IntegrityError("consistency proof is shorter than the trees require")
    if fr != root1:
        raise IntegrityError(f"consistency proof leads to old root {fr.hex()}, expected "
                             f"{root1.hex()}")
    if sr != root2:
        raise IntegrityError(f"consistency proof leads to new root {sr.hex()}, expected "
                             f"{root2.hex()}")
