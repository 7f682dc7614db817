"""The signed archive index: written with each flush and heartbeat, and what plain verify
proves with it (a chain gone, behind the index or planted; a schema file changed; the index
series itself altered), and what it cannot (a legacy archive without one)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from helpers.archive_builder import (
    T0,
    Clock,
    build_archive,
    forge_checkpoint,
    keyring_of,
    reseal,
    segment_bytes,
    signer,
    write_object,
)
from helpers.compliance import CHAIN, CHAIN_B, KEYRING, SIGNER, ChainFeeder, writer

from sealtrail.archive import open_store
from sealtrail.consumers.segment_writer import SegmentWriter
from sealtrail.core import layout
from sealtrail.core.canonical import canonical_json
from sealtrail.core.chain import genesis_hash
from sealtrail.core.checkpoint import SignedCheckpoint
from sealtrail.core.index import SignedIndex
from sealtrail.verify import verify_archive


def _index(root: Path, seq: int) -> SignedIndex:
    return SignedIndex.from_bytes((root / layout.index_key(seq)).read_bytes())


def _kinds(report: object) -> list[tuple[str, str]]:
    out = [(f.kind.value, f.chain_id) for c in report.chains for f in c.findings]  # type: ignore[attr-defined]
    return out + [(f.kind.value, f.chain_id) for f in report.findings]  # type: ignore[attr-defined]


def test_each_flush_and_heartbeat_writes_the_next_signed_index(tmp_path: Path) -> None:
    """Index n lists every chain at its newest checkpoint, links to index n-1 and carries
    the compact range of the indexes before it; a heartbeat writes one too."""
    store = open_store(tmp_path / "a")
    w = writer(store)
    a, b = ChainFeeder(w), ChainFeeder(w, CHAIN_B, partition=1)
    a.segment(["auth.login"])
    b.segment(["auth.login", "auth.login"])
    assert [k for k in store.list(layout.INDEX)] == [layout.index_key(i) for i in range(2)]
    newest = _index(tmp_path / "a", 1)
    assert newest.problem(KEYRING) is None
    assert newest.statement.prev_index_hash == _index(tmp_path / "a", 0).index_hash
    heads = {c.chain_id: c for c in newest.chains}
    assert sorted(heads) == [CHAIN, CHAIN_B]
    assert (heads[CHAIN_B].checkpoint_index, heads[CHAIN_B].tree_size) == (0, 2)
    assert (heads[CHAIN_B].topic, heads[CHAIN_B].partition) == ("audit.raw", 1)
    cp = SignedCheckpoint.from_bytes(store.get(layout.checkpoint_key(CHAIN_B, 0)))
    assert heads[CHAIN_B].checkpoint_hash == cp.checkpoint_hash
    assert w.heartbeat(0.0) == 2
    after = _index(tmp_path / "a", 2)
    assert {c.chain_id: c.checkpoint_index for c in after.chains} == {CHAIN: 1, CHAIN_B: 1}
    assert after.statement.log().size == 2 and after.log_root() != newest.log_root()
    report = verify_archive(store, KEYRING)
    assert report.ok and report.index_seq == 2 and report.index_chains == 2


def test_a_whole_chain_deleted_fails_plain_verify(tmp_path: Path) -> None:
    """rm -rf chains/<id>: the newest index still lists it; verify names it, missing."""
    built = build_archive(tmp_path)
    import shutil

    shutil.rmtree(built.root / "chains" / built.chain_ids[1])
    report = verify_archive(built.store, built.keyring)
    assert not report.ok
    assert _kinds(report) == [("missing", built.chain_ids[1])]
    [gone] = [c for c in report.chains if c.chain_id == built.chain_ids[1]]
    assert "the signed archive index 2 lists it at checkpoint 2 (seq 11)" in \
        gone.findings[0].message


def test_a_planted_chain_signed_by_a_trusted_key_is_unindexed(tmp_path: Path) -> None:
    """A complete chain written with a key the verifier trusts (a stolen retired key, or
    any key in the keyring) but dated before the newest index (by more than the five
    minutes an archiver may take to list a new chain) is in no index: unindexed. One dated
    after the newest index is only reported as not indexed yet."""
    built = build_archive(tmp_path)
    key = built.sealers[0]
    for planted, created in (("audit.raw.9.00000000000000ff", T0 - 3600 * 10**6),
                             ("audit.raw.8.00000000000000ee", T0 + 10**12)):
        records = built.read_records(0, 0)
        for r in records:
            r["chain_id"] = planted
        records[0]["prev_hash"] = genesis_hash(planted)
        reseal(records, 0, key)
        data = segment_bytes(planted, records)
        cp = dataclasses.replace(built.read_checkpoint(0, 0).checkpoint, chain_id=planted,
                                 segment_key=layout.segment_key(planted, 0),
                                 created_at=created)
        forged = forge_checkpoint(SignedCheckpoint(cp, b"", b""), key, records=records,
                                  segment=data)
        write_object(built.path(layout.segment_key(planted, 0)), data)
        write_object(built.path(layout.checkpoint_key(planted, 0)), forged)
    report = verify_archive(built.store, built.keyring)
    assert _kinds(report) == [("unindexed", "audit.raw.9.00000000000000ff")]
    assert any("began after the newest index" in n for n in report.notes)


def test_the_index_series_itself_cannot_be_altered_unseen(tmp_path: Path) -> None:
    """A byte changed, an index re-signed by an unknown key, a middle index deleted, an
    index moved, or every index deleted: each is an archive finding naming the object."""
    cases = {}
    for name in ("flip", "resign", "middle", "moved", "all"):
        built = build_archive(tmp_path / name)
        path = built.path(layout.index_key(2))
        if name == "flip":
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 1
            write_object(path, bytes(data))
        elif name == "resign":
            doc = json.loads(path.read_bytes())
            idx = SignedIndex.from_bytes(path.read_bytes())
            st = dataclasses.replace(idx.statement, key_id=signer("attacker").key_id)
            doc["index"] = st.to_json()
            doc["index_hash"] = st.digest().hex()
            from sealtrail.core.hashing import SIG_INDEX_DOMAIN

            doc["signature"] = signer("attacker").sign(SIG_INDEX_DOMAIN + st.digest()).hex()
            write_object(path, canonical_json(doc))
        elif name == "middle":
            built.path(layout.index_key(1)).unlink()
        elif name == "moved":
            write_object(built.path(layout.index_key(3)), path.read_bytes())
        else:
            for i in range(3):
                built.path(layout.index_key(i)).unlink()
        report = verify_archive(built.store, built.keyring)
        assert not report.ok, name
        cases[name] = [(f.kind.value, f.segment) for f in report.findings]
    assert cases["flip"][0][1] == layout.index_key(2)
    assert cases["flip"][0][0] in ("malformed", "signature")
    assert cases["resign"] == [("unknown-key", layout.index_key(2))]
    assert cases["middle"] == [("missing", layout.index_key(1))]
    assert ("reordered", layout.index_key(3)) in cases["moved"]
    assert cases["all"] == [("missing", layout.INDEX)]


def test_schema_files_are_covered_by_the_index(tmp_path: Path) -> None:
    """A schema file the index lists must keep its bytes; one it does not list is named as
    unsigned context."""
    store = open_store(tmp_path / "a")
    w = writer(store)
    from datetime import UTC, datetime, timedelta

    from sealtrail.archive import Retention

    keep = Retention("COMPLIANCE", datetime.now(UTC) + timedelta(days=1))
    body = canonical_json({"format": "sealtrail-schema/v1", "schema_id": 1, "versions": [],
                           "schema": {"type": "record", "name": "X", "fields": []}})
    store.put(layout.schema_key(1), body, retention=keep)
    w.note_schema(layout.schema_key(1), hashlib.sha256(body).digest())
    ChainFeeder(w).segment(["auth.login"])
    store.put(layout.schema_key(2), body, retention=keep)
    report = verify_archive(store, KEYRING)
    assert report.ok and report.schemas_checked == 1
    assert any("not covered by the signed archive index" in n and "0000000002" in n
               for n in report.notes)
    write_object(tmp_path / "a" / layout.schema_key(1), body.replace(b'"X"', b'"Y"'))
    report = verify_archive(store, KEYRING)
    assert [(f.kind.value, f.segment) for f in report.findings] == [
        ("modified", layout.schema_key(1))]


def test_a_legacy_archive_without_index_verifies_and_says_what_it_cannot_prove(
        tmp_path: Path) -> None:
    """An archive written before the index existed (checkpoints of format v1, no index)
    still verifies; the report says a deleted chain or a removed tail cannot be detected."""
    store = open_store(tmp_path / "a")
    legacy = SegmentWriter(store, SIGNER, clock=Clock(), index=False)
    feed = ChainFeeder(legacy)
    feed.segment(["auth.login", "auth.login"])
    feed.segment(["auth.login"])
    prev = None
    for i in range(2):  # the same chain as format v1 would have written it
        path = tmp_path / "a" / layout.checkpoint_key(CHAIN, i)
        cp = SignedCheckpoint.from_bytes(path.read_bytes()).checkpoint
        v1 = dataclasses.replace(cp, retention_mode=None, retention_class=None,
                                 retain_until=None, tree_size=None, tree_root=None,
                                 tree_frontier=None,
                                 prev_checkpoint_hash=prev or cp.prev_checkpoint_hash)
        signed = v1.sign(SIGNER)
        write_object(path, signed.to_bytes())
        prev = signed.checkpoint_hash
    report = verify_archive(store, KEYRING)
    assert report.ok and report.index_seq is None
    assert report.chains[0].unsigned_retention == 2
    assert any("no signed archive index" in n for n in report.notes)


def test_two_archivers_share_one_index_series(tmp_path: Path) -> None:
    """Two writers on the same archive (each with its own chain): every index links to the
    one before, and the newest lists both chains."""
    store = open_store(tmp_path / "a")
    clock = Clock()
    one = SegmentWriter(store, SIGNER, clock=clock, keyring=keyring_of(SIGNER))
    two = SegmentWriter(store, SIGNER, clock=clock, keyring=keyring_of(SIGNER))
    a, b = ChainFeeder(one, clock=clock), ChainFeeder(two, CHAIN_B, partition=1, clock=clock)
    for _ in range(3):
        a.segment(["auth.login"])
        b.segment(["auth.login"])
    keys = store.list(layout.INDEX)
    assert keys == [layout.index_key(i) for i in range(6)]
    newest = _index(tmp_path / "a", 5)
    assert {c.chain_id: c.checkpoint_index for c in newest.chains} == {CHAIN: 2, CHAIN_B: 2}
    report = verify_archive(store, KEYRING)
    assert report.ok, report.to_json()


def test_a_stale_index_fails_max_age(tmp_path: Path) -> None:
    """With --max-age, an archive whose newest index is older than the bound is stale."""
    store = open_store(tmp_path / "a")
    ChainFeeder(writer(store)).segment(["auth.login"])
    report = verify_archive(store, KEYRING, now_us=T0 + 7200 * 10**6, max_age_seconds=3600)
    assert ("stale", "-") in _kinds(report)
    assert any("newest signed archive index (0)" in f.message for f in report.findings)
