"""The compact range (Frontier) and RFC 6962 / 9162 consistency proofs: golden vectors
from the shared conformance data, corrupted proofs, and property tests that build a tree,
prove and verify."""

from __future__ import annotations

import pytest
from helpers.paths import need_conformance
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.core import merkle
from sealtrail.errors import IntegrityError


def _frontier(leaf_hashes: list[bytes]) -> merkle.Frontier:
    f = merkle.Frontier()
    f.extend(leaf_hashes)
    return f


def test_frontier_roots_match_the_reference_tree() -> None:
    """The compact range of the first n leaves has the reference root of every size 0..8."""
    doc = need_conformance("merkle_vectors.json")
    tree = doc["reference_tree"]
    leaves = merkle.leaf_hashes([bytes.fromhex(x) for x in tree["leaf_inputs_hex"]])
    for size, root in tree["root_hashes_by_tree_size_hex"].items():
        assert _frontier(leaves[:int(size)]).root().hex() == root


def test_consistency_proofs_match_the_conformance_vectors() -> None:
    """Proofs built from a compact range and the new leaves equal the reference PROOF(m, D[n])
    (upstream vectors and every pair of sizes 1..8), and verify."""
    doc = need_conformance("merkle_vectors.json")
    leaves = merkle.leaf_hashes([bytes.fromhex(x)
                                 for x in doc["reference_tree"]["leaf_inputs_hex"]])
    cases = doc["consistency_proofs"] + doc["derived_all_proofs_for_reference_tree"]["consistency"]
    checked = 0
    for case in cases:
        m, n = case["size1"], case["size2"]
        if m == 0:
            continue  # no proof from an empty tree (RFC 9162 needs 0 < m)
        proof = merkle.consistency_proof(_frontier(leaves[:m]), leaves[m:n])
        assert [p.hex() for p in proof] == case["proof_hex"], (m, n)
        merkle.verify_consistency(m, n, bytes.fromhex(case["root1_hex"]),
                                  bytes.fromhex(case["root2_hex"]), proof)
        checked += 1
    assert checked >= 36


def test_consistency_probes_give_the_expected_verdicts() -> None:
    """Every upstream probe (a happy path, or one corruption of it) is accepted exactly when
    it should be."""
    doc = need_conformance("merkle_vectors.json")
    for probe in doc["consistency_probes"]:
        try:
            merkle.verify_consistency(probe["size1"], probe["size2"],
                                      bytes.fromhex(probe["root1_hex"]),
                                      bytes.fromhex(probe["root2_hex"]),
                                      [bytes.fromhex(p) for p in probe["proof_hex"]])
            accepted = True
        except IntegrityError:
            accepted = False
        assert accepted != probe["want_error"], probe["desc"]


@settings(max_examples=150, deadline=None)
@given(data=st.data(), n=st.integers(1, 70))
def test_frontier_and_proofs_agree_with_whole_trees(data: st.DataObject, n: int) -> None:
    """For any sizes 0 < m <= n: the compact range's root is the whole tree's root, the
    consistency proof from m to n verifies, and any changed element or other old root is
    refused. (The sizes themselves are bound by the signed checkpoints, not the proof.)"""
    raw = [bytes([i % 256, i // 256]) for i in range(n)]
    leaves = merkle.leaf_hashes(raw)
    m = data.draw(st.integers(1, n), label="m")
    old, new = _frontier(leaves[:m]), _frontier(leaves)
    assert old.root() == merkle.root(raw[:m]) and new.root() == merkle.root(raw)
    assert len(old.nodes) == bin(m).count("1") and old.ranges()[-1][1] == m
    proof = merkle.consistency_proof(old, leaves[m:])
    merkle.verify_consistency(m, n, old.root(), new.root(), proof)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="element")
        bad = [*proof]
        bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
        with pytest.raises(IntegrityError):
            merkle.verify_consistency(m, n, old.root(), new.root(), bad)
    other = merkle.root([b"x", *raw[1:m]])
    with pytest.raises(IntegrityError):
        merkle.verify_consistency(m, n, other, new.root(), proof)


def test_frontier_refuses_a_wrong_number_of_nodes() -> None:
    """A compact range of size 5 holds exactly two hashes (4 + 1)."""
    with pytest.raises(IntegrityError, match="holds 2 hashes"):
        merkle.Frontier(5, [bytes(32)])
    with pytest.raises(IntegrityError, match="32-byte"):
        merkle.Frontier(1, [b"short"])
