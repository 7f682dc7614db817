"""RFC 6962 Merkle tree hashing and inclusion proofs, against a naive reference written here."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.core import merkle
from sealtrail.errors import IntegrityError

# -- a deliberately naive RFC 6962 implementation (section 2.1), written from the RFC --


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _split_point(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_mth(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) by the recursive definition."""
    n = len(leaves)
    if n == 0:
        return _h(b"")
    if n == 1:
        return _h(b"\x00" + leaves[0])
    k = _split_point(n)
    return _h(b"\x01" + naive_mth(leaves[:k]) + naive_mth(leaves[k:]))


def naive_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) by the recursive definition (RFC 6962 2.1.1)."""
    n = len(leaves)
    if n == 1:
        return []
    k = _split_point(n)
    if m < k:
        return [*naive_path(m, leaves[:k]), naive_mth(leaves[k:])]
    return [*naive_path(m - k, leaves[k:]), naive_mth(leaves[:k])]


def computed_root_or_error(index: int, size: int, leaf_hash: bytes,
                           proof: Sequence[bytes]) -> bytes | None:
    """The root a proof implies, or None when the verifier refuses it as malformed."""
    try:
        return merkle.root_from_inclusion_proof(index, size, leaf_hash, proof)
    except IntegrityError:
        return None


# Distinct leaves: with two equal leaves a "wrong" index can legitimately verify.
trees = st.lists(st.binary(max_size=16), min_size=1, max_size=70, unique=True)


def test_naive_reference_matches_known_root() -> None:
    """The reference implementation itself reproduces a published RFC 6962 root (size 8)."""
    leaves = [bytes.fromhex(h) for h in (
        "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )]
    assert naive_mth(leaves).hex() == (
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    )


def test_hash_domains_are_separated() -> None:
    """Leaf and node hashes use the 0x00/0x01 prefixes, so a leaf can never pass for a node."""
    a, b = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert a == _h(b"\x00a")
    assert merkle.node_hash(a, b) == _h(b"\x01" + a + b)
    assert merkle.leaf_hash(a + b) != merkle.node_hash(a, b)
    assert merkle.root([a + b]) != merkle.root([b"a", b"b"])


def test_empty_tree_root() -> None:
    """The empty tree's root is SHA-256 of the empty string."""
    assert merkle.root([]) == _h(b"")


@pytest.mark.parametrize("size", range(0, 71))
def test_root_matches_naive_for_every_size(size: int) -> None:
    """root() equals the recursive RFC 6962 MTH for every size 0..70."""
    leaves = [b"leaf-%d" % i for i in range(size)]
    assert merkle.root(leaves) == naive_mth(leaves)


@settings(max_examples=150, deadline=None)
@given(leaves=st.lists(st.binary(max_size=24), max_size=70))
def test_root_matches_naive(leaves: list[bytes]) -> None:
    """root() of random leaves (duplicates allowed) equals the recursive MTH."""
    assert merkle.root(leaves) == naive_mth(leaves)


@settings(max_examples=40, deadline=None)
@given(leaves=trees)
def test_every_inclusion_proof_verifies(leaves: list[bytes]) -> None:
    """For every leaf, the proof equals RFC 6962 PATH and implies the tree's root."""
    expected_root = naive_mth(leaves)
    for index, leaf in enumerate(leaves):
        proof = merkle.inclusion_proof(leaves, index)
        assert proof == naive_path(index, leaves)
        computed = merkle.root_from_inclusion_proof(
            index, len(leaves), merkle.leaf_hash(leaf), proof
        )
        assert computed == expected_root


@settings(max_examples=60, deadline=None)
@given(leaves=trees, data=st.data())
def test_corrupted_inclusion_proofs_fail(leaves: list[bytes], data: st.DataObject) -> None:
    """A wrong index or leaf, an extra, missing or altered element never yields the tree's
    root."""
    n = len(leaves)
    expected_root = merkle.root(leaves)
    index = data.draw(st.integers(0, n - 1), label="index")
    leaf_hash = merkle.leaf_hash(leaves[index])
    proof = merkle.inclusion_proof(leaves, index)

    def verdict(i: int = index, size: int = n, lh: bytes = leaf_hash,
                p: Sequence[bytes] = proof) -> bytes | None:
        return computed_root_or_error(i, size, lh, p)

    assert verdict() == expected_root
    for other in range(n + 2):
        if other != index:
            assert verdict(i=other) != expected_root, f"index {other} verified as {index}"
    # (A wrong tree size is not in this list: where the audit path has the same shape,
    # e.g. leaf 0 of sizes 3 and 4, RFC 9162 verification cannot tell; the signed tree
    # size is what binds it.)
    for other_leaf in (*leaves[:index], *leaves[index + 1 :], leaves[index] + b"\x00"):
        assert verdict(lh=merkle.leaf_hash(other_leaf)) != expected_root
    assert verdict(lh=leaves[index] if len(leaves[index]) == 32 else b"") != expected_root
    extra = data.draw(st.binary(min_size=32, max_size=32), label="extra")
    position = data.draw(st.integers(0, len(proof)), label="position")
    assert verdict(p=[*proof[:position], extra, *proof[position:]]) != expected_root
    assert verdict(p=[*proof, expected_root]) != expected_root
    if proof:
        drop = data.draw(st.integers(0, len(proof) - 1), label="drop")
        assert verdict(p=proof[:drop] + proof[drop + 1 :]) != expected_root
        bit = data.draw(st.integers(0, 255), label="bit")
        altered = bytearray(proof[drop])
        altered[bit // 8] ^= 1 << (bit % 8)
        assert verdict(p=[*proof[:drop], bytes(altered), *proof[drop + 1 :]]) != expected_root


def test_all_proofs_of_all_small_trees() -> None:
    """Exhaustively: every proof of every tree of size 1..70 matches PATH and verifies."""
    leaves = [b"L%d" % i for i in range(70)]
    for size in range(1, 71):
        tree = leaves[:size]
        expected_root = naive_mth(tree)
        for index in range(size):
            proof = merkle.inclusion_proof(tree, index)
            assert proof == naive_path(index, tree)
            assert merkle.root_from_inclusion_proof(
                index, size, merkle.leaf_hash(tree[index]), proof
            ) == expected_root


@pytest.mark.parametrize(("index", "size"), [(-1, 3), (3, 3), (0, 0), (7, 2)])
def test_inclusion_proof_refuses_index_outside_tree(index: int, size: int) -> None:
    """Asking for the proof of a leaf that is not in the tree raises ValueError."""
    with pytest.raises(ValueError, match="out of range"):
        merkle.inclusion_proof([b"x"] * size, index)


@pytest.mark.parametrize(
    ("index", "size", "leaf_hash", "proof", "message"),
    [
        (0, 0, bytes(32), [], "not inside a tree of size 0"),
        (2, 2, bytes(32), [bytes(32)], "not inside"),
        (-1, 2, bytes(32), [bytes(32)], "not inside"),
        (0, 2, bytes(31), [bytes(32)], "leaf hash has 31 bytes"),
        (0, 2, bytes(32), [bytes(33)], "proof element has 33 bytes"),
        (0, 2, bytes(32), [bytes(32), bytes(32)], "longer than the tree allows"),
        (0, 2, bytes(32), [], "shorter than the tree requires"),
        (0, 1, bytes(32), [bytes(32)], "longer than the tree allows"),
        (5, 8, bytes(32), [bytes(32), bytes(32)], "shorter than the tree requires"),
    ],
)
def test_malformed_inclusion_proofs_raise(
    index: int, size: int, leaf_hash: bytes, proof: list[bytes], message: str
) -> None:
    """Proofs that cannot belong to the stated tree raise IntegrityError saying why."""
    with pytest.raises(IntegrityError, match=message):
        merkle.root_from_inclusion_proof(index, size, leaf_hash, proof)


def test_single_leaf_tree() -> None:
    """A one-leaf tree's root is its leaf hash and its proof is empty."""
    assert merkle.root([b"only"]) == merkle.leaf_hash(b"only")
    assert merkle.inclusion_proof([b"only"], 0) == []
    assert merkle.root_from_inclusion_proof(0, 1, merkle.leaf_hash(b"only"), []) == (
        merkle.leaf_hash(b"only")
    )
