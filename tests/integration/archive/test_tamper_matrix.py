"""The tamper matrix: every kind of tampering an attacker who can write
and delete anything in the archive (but holds no current signing key) can do, on a local
directory and on S3 (moto, Object Lock), checked by plain verify and by verify with a
witness's record. docs/format.md ("Tamper kinds and where they are caught") is this table.

Each case says what plain verify must find (a finding kind, or None: the documented limit
plain verify cannot see) and what verify with a witness must find. On S3 the attacker works
as S3 lets one: a new object version over a key, a delete marker (no version id), and for
"backdated" retention the shortened COMPLIANCE date moto accepts (AWS does not) followed by
deleting the version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.archive_builder import (
    T0,
    BuiltArchive,
    build_archive,
    forge_checkpoint,
    keyring_of,
    reseal,
    segment_bytes,
    signer,
    write_object,
)
from helpers.moto_server import make_locked_bucket, moto_s3_server, raw_client
from helpers.paths import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealtrail.archive import ArchiveStore, Retention, open_store
from sealtrail.archive._s3 import S3Store
from sealtrail.archive.segments import read_segment
from sealtrail.consumers.archive_index import IndexWriter
from sealtrail.core import layout
from sealtrail.core.canonical import canonical_json
from sealtrail.core.chain import genesis_hash
from sealtrail.core.checkpoint import SignedCheckpoint
from sealtrail.core.index import IndexedSchema
from sealtrail.governance.retention import RetentionPolicy
from sealtrail.witness import load_record, run_witness, verify_with_witnesses

LATER = T0 + 10**9  # the witness's clock: after everything the builder wrote
SCHEMA = layout.schema_key(1)
RETIRED_CHAIN = "audit.raw.9.000000000000beef"


# -- the attacker, on either store ---------------------------------------------------------


class Attacker:
    """Writes and deletes objects behind sealtrail's back."""

    store: ArchiveStore

    def read(self, key: str) -> bytes:
        return self.store.get(key)

    def keys(self, prefix: str) -> list[str]:
        return self.store.list(prefix)

    def write(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def expire_retention(self, key: str) -> None:
        """Make the archive's own retention record say ``key`` expired in 2020."""
        raise NotImplementedError


class LocalAttacker(Attacker):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = open_store(root)

    def write(self, key: str, data: bytes) -> None:
        write_object(self.root.joinpath(*key.split("/")), data)

    def delete(self, key: str) -> None:
        self.root.joinpath(*key.split("/")).unlink()

    def expire_retention(self, key: str) -> None:
        import json

        path = self.root.joinpath("_retention", *f"{key}.json".split("/"))
        doc = json.loads(path.read_text())
        doc["retain_until"] = "2020-01-01T00:00:00Z"
        path.write_text(json.dumps(doc))


class S3Attacker(Attacker):
    def __init__(self, endpoint: str, bucket: str, prefix: str) -> None:
        self.client = raw_client(endpoint)
        self.bucket, self.prefix = bucket, prefix
        self.store = S3Store(bucket, prefix, endpoint_url=endpoint, client=self.client)

    def write(self, key: str, data: bytes) -> None:  # a new current version
        self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}", Body=data)

    def delete(self, key: str) -> None:  # a delete marker: the locked version stays
        self.client.delete_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")

    def expire_retention(self, key: str) -> None:  # what moto accepts and AWS refuses
        full = f"{self.prefix}/{key}"
        self.client.put_object_retention(
            Bucket=self.bucket, Key=full, BypassGovernanceRetention=True,
            Retention={"Mode": "COMPLIANCE",
                       "RetainUntilDate": datetime(2020, 1, 1, tzinfo=UTC)})


# -- building the archive under attack ----------------------------------------------------


def _build(base: Path, batch: int | None = None) -> BuiltArchive:
    """Two chains x three segments, a key rotation at segment 2, a schema file the index
    lists (index 3); with ``batch``, batch-sealed (record format 2)."""
    built = build_archive(base, chains=2, segments=3, records=4, rotate_at=2, batch=batch)
    body = canonical_json({"format": "sealtrail-schema/v1", "schema_id": 1, "versions": [],
                           "schema": {"type": "record", "name": "E", "fields": []}})
    store = built.store
    store.put(SCHEMA, body, retention=Retention("COMPLIANCE",
                                                datetime.now(UTC) + timedelta(days=1)))
    writer = IndexWriter(store, built.archivers[-1], built.keyring,
                         RetentionPolicy.simple(1), clock=lambda: T0 + 10**7)
    writer.write({}, {SCHEMA: IndexedSchema(SCHEMA, hashlib.sha256(body).digest())})
    return built


def _mirror(built: BuiltArchive, endpoint: str, bucket: str, prefix: str) -> S3Store:
    """The same archive in S3 with Object Lock: every object, its bytes and retention."""
    target = S3Store(bucket, prefix, endpoint_url=endpoint, client=raw_client(endpoint))
    local = built.store
    for key in local.list(""):
        target.put(key, local.get(key), retention=local.retention(key))
    return target


# -- the cases ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    attack: Callable[[Attacker, BuiltArchive], None]
    plain: str | None  # the finding kind plain verify reports; None: it cannot see it
    witness: str  # the finding kind verify with a witness's record reports
    chain: int | None  # the chain the finding names (None: the archive: index, schemas)


def _seg(b: BuiltArchive, chain: int, index: int) -> str:
    return layout.segment_key(b.chain_ids[chain], index)


def _cp(b: BuiltArchive, chain: int, index: int) -> str:
    return layout.checkpoint_key(b.chain_ids[chain], index)


def _flip(at: Callable[[int], int]) -> Callable[[Attacker, BuiltArchive], None]:
    def attack(a: Attacker, b: BuiltArchive) -> None:
        data = bytearray(a.read(_seg(b, 0, 1)))
        data[at(len(data))] ^= 0x01
        a.write(_seg(b, 0, 1), bytes(data))
    return attack


def truncate(a: Attacker, b: BuiltArchive) -> None:
    data = a.read(_seg(b, 1, 1))
    a.write(_seg(b, 1, 1), data[: len(data) // 2])


def delete_middle_segment(a: Attacker, b: BuiltArchive) -> None:
    a.delete(_seg(b, 1, 1))


def delete_newest_segment_and_checkpoint(a: Attacker, b: BuiltArchive) -> None:
    a.delete(_seg(b, 0, 2))
    a.delete(_cp(b, 0, 2))


def delete_tail_and_newest_indexes(a: Attacker, b: BuiltArchive) -> None:
    """The rollback an archive cannot show about itself: the newest checkpoint of a chain
    and every index written since it, so that the newest index left is an older one."""
    delete_newest_segment_and_checkpoint(a, b)
    for seq in (2, 3):
        a.delete(layout.index_key(seq))


def delete_whole_chain(a: Attacker, b: BuiltArchive) -> None:
    for key in a.keys(f"{layout.CHAINS}{b.chain_ids[1]}/"):
        a.delete(key)


def reorder_segments(a: Attacker, b: BuiltArchive) -> None:
    one, two = a.read(_seg(b, 0, 1)), a.read(_seg(b, 0, 2))
    a.write(_seg(b, 0, 1), two)
    a.write(_seg(b, 0, 2), one)


def duplicate_checkpoint_and_segment(a: Attacker, b: BuiltArchive) -> None:
    a.write(_seg(b, 0, 3), a.read(_seg(b, 0, 2)))
    a.write(_cp(b, 0, 3), a.read(_cp(b, 0, 2)))


def older_checkpoint(a: Attacker, b: BuiltArchive) -> None:
    a.write(_cp(b, 1, 2), a.read(_cp(b, 1, 1)))


def other_chains_checkpoint(a: Attacker, b: BuiltArchive) -> None:
    a.write(_cp(b, 1, 1), a.read(_cp(b, 0, 1)))


def forged_under_a_new_key(a: Attacker, b: BuiltArchive) -> None:
    """Entries altered, re-sealed and the checkpoint restated, all under the attacker's key."""
    attacker = signer("attacker")
    records = read_segment(a.read(_seg(b, 0, 1)))
    records[1]["event"]["actor"]["id"] = "mallory"
    reseal(records, 1, attacker)
    data = segment_bytes(b.chain_ids[0], records)
    a.write(_seg(b, 0, 1), data)
    original = SignedCheckpoint.from_bytes(a.read(_cp(b, 0, 1)))
    before = SignedCheckpoint.from_bytes(a.read(_cp(b, 0, 0))).checkpoint.frontier
    a.write(_cp(b, 0, 1), forge_checkpoint(original, attacker, records=records, segment=data,
                                           before=before))


def backdated_retention(a: Attacker, b: BuiltArchive) -> None:
    """Every retention record outside the chains' signatures says 2020, then a middle
    segment goes ("purged")."""
    for key in a.keys(layout.CHAINS):
        a.expire_retention(key)
    if isinstance(a, S3Attacker):  # retention shortened: the version itself can be deleted
        full = f"{a.prefix}/{_seg(b, 1, 1)}"
        for v in a.client.list_object_versions(Bucket=a.bucket, Prefix=full)["Versions"]:
            a.client.delete_object(Bucket=a.bucket, Key=full, VersionId=v["VersionId"])
    else:
        a.delete(_seg(b, 1, 1))


def retired_key_chain(a: Attacker, b: BuiltArchive) -> None:
    """With the retired (pre-rotation) keys, a whole new chain, dated inside their window
    (an hour before the archive began), every signature valid."""
    old = b.sealers[0]
    records = read_segment(a.read(_seg(b, 0, 0)))
    for r in records:
        r["chain_id"] = RETIRED_CHAIN
    records[0]["prev_hash"] = genesis_hash(RETIRED_CHAIN)
    reseal(records, 0, old)
    data = segment_bytes(RETIRED_CHAIN, records)
    cp = dataclasses.replace(
        SignedCheckpoint.from_bytes(a.read(_cp(b, 0, 0))).checkpoint, chain_id=RETIRED_CHAIN,
        segment_key=layout.segment_key(RETIRED_CHAIN, 0), created_at=T0 - 3600 * 10**6)
    a.write(layout.segment_key(RETIRED_CHAIN, 0), data)
    a.write(layout.checkpoint_key(RETIRED_CHAIN, 0), forge_checkpoint(
        SignedCheckpoint(cp, b"", b""), old, records=records, segment=data))


def planted_chain(a: Attacker, b: BuiltArchive) -> None:
    """A chain under the attacker's own key, with a keyring planted next to it."""
    retired_key_chain(a, b)
    attacker = signer("attacker")
    records = read_segment(a.read(layout.segment_key(RETIRED_CHAIN, 0)))
    reseal(records, 0, attacker)
    data = segment_bytes(RETIRED_CHAIN, records)
    a.write(layout.segment_key(RETIRED_CHAIN, 0), data)
    original = SignedCheckpoint.from_bytes(a.read(layout.checkpoint_key(RETIRED_CHAIN, 0)))
    a.write(layout.checkpoint_key(RETIRED_CHAIN, 0), forge_checkpoint(
        original, attacker, records=records, segment=data))
    import json

    a.write(f"chains/{RETIRED_CHAIN}/public.json",
            json.dumps(keyring_of(attacker).to_json()).encode())


def schema_file(a: Attacker, b: BuiltArchive) -> None:
    a.write(SCHEMA, a.read(SCHEMA).replace(b'"E"', b'"F"'))


MATRIX: dict[str, Case] = {
    "flip_start": Case(_flip(lambda n: 0), "modified", "modified", 0),
    "flip_middle": Case(_flip(lambda n: n // 2), "modified", "modified", 0),
    "flip_end": Case(_flip(lambda n: n - 1), "modified", "modified", 0),
    "truncate": Case(truncate, "truncated", "truncated", 1),
    "delete_middle_segment": Case(delete_middle_segment, "missing", "missing", 1),
    "delete_newest_segment_and_checkpoint": Case(delete_newest_segment_and_checkpoint,
                                                 "rollback", "rollback", 0),
    "delete_tail_and_newest_indexes": Case(delete_tail_and_newest_indexes, None, "rollback",
                                           0),
    "delete_whole_chain": Case(delete_whole_chain, "missing", "missing", 1),
    "reorder_segments": Case(reorder_segments, "reordered", "reordered", 0),
    "duplicate_checkpoint_and_segment": Case(duplicate_checkpoint_and_segment, "reordered",
                                             "reordered", 0),
    "older_checkpoint": Case(older_checkpoint, "reordered", "reordered", 1),
    "other_chains_checkpoint": Case(other_chains_checkpoint, "reordered", "reordered", 1),
    "forged_under_a_new_key": Case(forged_under_a_new_key, "unknown-key", "unknown-key", 0),
    "backdated_retention": Case(backdated_retention, "missing", "missing", 1),
    "retired_key_chain": Case(retired_key_chain, "unindexed", "unindexed", 2),
    "planted_chain": Case(planted_chain, "unknown-key", "unknown-key", 2),
    "schema_file": Case(schema_file, "modified", "modified", None),
}


# -- running a case -------------------------------------------------------------------------


def _kinds(report: Any, built: BuiltArchive, case: Case) -> list[tuple[str, str]]:
    chain_ids = [*built.chain_ids, RETIRED_CHAIN]
    found = [(f.kind.value, f.chain_id) for c in report.chains for f in c.findings]
    found += [(f.kind.value, f.chain_id) for f in report.findings]
    return found if case.chain is None else [(k, c) for k, c in found
                                             if c in chain_ids]


def _expect(report: Any, built: BuiltArchive, case: Case, kind: str | None) -> None:
    chain_ids = [*built.chain_ids, RETIRED_CHAIN]
    where = "-" if case.chain is None else chain_ids[case.chain]
    if kind is None:
        assert report.ok, report.to_json()
        return
    assert not report.ok
    found = _kinds(report, built, case)
    assert (kind, where) in found, found
    assert {c for _, c in found} == {where}, f"only the attacked chain breaks: {found}"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BuiltArchive, Path]]:
    """The archive, and a witness's record of it (kept apart, as in production)."""
    base = tmp_path_factory.mktemp("pristine")
    built = _build(base)
    assert run_witness(built.store, built.keyring, base / "W", name="w1", now=LATER).ok
    yield built, base / "W"


@pytest.fixture(scope="module")
def pristine_batched(tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[tuple[BuiltArchive, Path]]:
    """The same, batch-sealed: seq 4i, 4i+1 unsigned, 4i+2 and 4i+3 batch seals."""
    base = tmp_path_factory.mktemp("pristine-batched")
    built = _build(base, batch=3)
    assert run_witness(built.store, built.keyring, base / "W", name="w1", now=LATER).ok
    yield built, base / "W"


def _rewrite(change: Callable[[list[dict]], None]) -> Callable[[Attacker, BuiltArchive], None]:
    """An attack without any key: segment 1 of chain 1 rewritten with its records changed."""
    def attack(a: Attacker, b: BuiltArchive) -> None:
        records = read_segment(a.read(_seg(b, 1, 1)))
        change(records)
        a.write(_seg(b, 1, 1), segment_bytes(b.chain_ids[1], records))
    return attack


def _strip_seal(records: list[dict]) -> None:
    records[2]["signature"] = b""


def _cut_after_unsigned(records: list[dict]) -> None:
    del records[2:]


#: Attacks on batch seals by an attacker who holds no key (helpers/tamper_batch.py and
#: test_verify_batch_seals.py: with the archiver's key).
BATCH_MATRIX: dict[str, Case] = {
    "strip_batch_seal": Case(_rewrite(_strip_seal), "modified", "modified", 1),
    "cut_after_unsigned": Case(_rewrite(_cut_after_unsigned), "truncated", "truncated", 1),
}


@pytest.mark.parametrize("name", sorted(MATRIX) + sorted(BATCH_MATRIX))
def test_local_directory_batch_sealed(pristine_batched: tuple[BuiltArchive, Path],
                                      tmp_path: Path, name: str) -> None:
    """Every case, and the attacks on batch seals, on a batch-sealed archive: plain verify
    and verify with the witness's record find the same kinds as on an entry-signed one."""
    case = MATRIX.get(name) or BATCH_MATRIX[name]
    built = _copy(pristine_batched, tmp_path)
    attacker = LocalAttacker(built.root)
    held = [load_record(pristine_batched[1], [])]
    assert verify_with_witnesses(attacker.store, built.keyring, held).ok
    case.attack(attacker, built)
    _expect(verify_with_witnesses(attacker.store, built.keyring, []), built, case,
            case.plain)
    _expect(verify_with_witnesses(attacker.store, built.keyring,
                                  [load_record(pristine_batched[1], [])]), built, case,
            case.witness)


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    with moto_s3_server() as url:
        make_locked_bucket(url, "matrix")
        yield url


def _copy(pristine: tuple[BuiltArchive, Path], base: Path) -> BuiltArchive:
    built, _ = pristine
    shutil.copytree(built.root, base / "archive")
    return dataclasses.replace(built, root=base / "archive")


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_local_directory(pristine: tuple[BuiltArchive, Path], tmp_path: Path,
                         name: str) -> None:
    """On a local directory: plain verify and verify with the witness's record."""
    case = MATRIX[name]
    built = _copy(pristine, tmp_path)
    attacker = LocalAttacker(built.root)
    assert verify_with_witnesses(attacker.store, built.keyring,
                                 [load_record(pristine[1], [])]).ok
    case.attack(attacker, built)
    plain = verify_with_witnesses(attacker.store, built.keyring, [])
    _expect(plain, built, case, case.plain)
    held = verify_with_witnesses(attacker.store, built.keyring, [load_record(pristine[1], [])])
    _expect(held, built, case, case.witness)


@pytest.mark.s3
@pytest.mark.parametrize("name", sorted(MATRIX))
def test_s3_object_lock(pristine: tuple[BuiltArchive, Path], s3: str, name: str) -> None:
    """The same on S3 (moto, Object Lock COMPLIANCE): the attacks go through new versions
    and delete markers; verify reads the current versions and finds the same."""
    case = MATRIX[name]
    built, record = pristine
    store = _mirror(built, s3, "matrix", name)
    attacker = S3Attacker(s3, "matrix", name)
    assert verify_with_witnesses(store, built.keyring, [load_record(record, [])]).ok
    case.attack(attacker, built)
    _expect(verify_with_witnesses(store, built.keyring, []), built, case, case.plain)
    _expect(verify_with_witnesses(store, built.keyring, [load_record(record, [])]), built,
            case, case.witness)


@pytest.mark.s3
def test_compliance_keeps_what_a_delete_marker_hides(pristine: tuple[BuiltArchive, Path],
                                                     s3: str) -> None:
    """What S3 COMPLIANCE adds: the attacker's delete is a marker; the locked version itself
    cannot be deleted (nor, on AWS, its retention shortened), so the evidence is recoverable."""
    built, _ = pristine
    _mirror(built, s3, "matrix", "keep")
    attacker = S3Attacker(s3, "matrix", "keep")
    delete_tail_and_newest_indexes(attacker, built)
    full = f"keep/{_seg(built, 0, 2)}"
    versions = attacker.client.list_object_versions(Bucket="matrix", Prefix=full)
    [kept] = versions["Versions"]
    assert versions["DeleteMarkers"]
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        attacker.client.delete_object(Bucket="matrix", Key=full, VersionId=kept["VersionId"])
    got = attacker.client.get_object(Bucket="matrix", Key=full, VersionId=kept["VersionId"])
    assert got["Body"].read() == built.store.get(_seg(built, 0, 2))


#: The cases that touch what the witness recorded or what came after it. A witness run
#: checks the archive from its recorded heads on (not the whole archive every few
#: minutes: that is verify's job, which catches the other cases by signatures).
WITNESS_REFUSES = ("delete_newest_segment_and_checkpoint", "delete_tail_and_newest_indexes",
                   "delete_whole_chain", "duplicate_checkpoint_and_segment", "older_checkpoint",
                   "retired_key_chain", "planted_chain")


def test_the_witness_refuses_what_touches_its_record(pristine: tuple[BuiltArchive, Path],
                                                     tmp_path: Path) -> None:
    """`sealtrail witness` itself, run on a tampered copy with a copy of its record, refuses
    (and records nothing) when its recorded heads were removed, rewritten or followed by a
    forgery, a chain it saw is gone, or a chain appears behind its back."""
    for name in WITNESS_REFUSES:
        case = MATRIX[name]
        base = tmp_path / name
        built = _copy(pristine, base)
        shutil.copytree(pristine[1], base / "W")
        case.attack(LocalAttacker(built.root), built)
        result = run_witness(open_store(built.root), built.keyring, base / "W", name="w1",
                             now=LATER + 1)
        assert not result.ok and result.state is None, name


@pytest.fixture(scope="module")
def objects(pristine: tuple[BuiltArchive, Path]) -> list[str]:
    built, _ = pristine
    return [k for k in built.store.list("") if k.startswith((layout.CHAINS, layout.INDEX))]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_deleting_any_objects_fails_verify_with_a_witness(
        pristine: tuple[BuiltArchive, Path], objects: list[str],
        tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    """Delete any non-empty subset of the archive's chain and index objects: verify held to
    the witness's record fails, every time."""
    gone = data.draw(st.lists(st.sampled_from(objects), min_size=1, unique=True), label="gone")
    base = tmp_path_factory.mktemp("subset")
    built = _copy(pristine, base)
    for key in gone:
        built.path(key).unlink()
    report = verify_with_witnesses(open_store(built.root), built.keyring,
                                   [load_record(pristine[1], [])])
    assert not report.ok, gone
    shutil.rmtree(base)


def test_the_format_table_is_this_matrix() -> None:
    """docs/format.md's table names exactly the cases of this file."""
    import re

    doc = (REPO / "docs" / "format.md").read_text()
    section = doc[doc.index("## Tamper kinds and where they are caught"):
                  doc.index("## Versioning")]
    named = {name for row in section.splitlines() if row.startswith("| ")
             for name in re.findall(r"`([a-z_]+)`", row.rsplit("|", 2)[-2])}
    assert set(MATRIX) <= named, set(MATRIX) - named
