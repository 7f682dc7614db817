"""G3 tamper evidence and G4 pinned trust, tried against the verifier library.

Every attack in ATTACKS (helpers/tamper.py) changes an archive built by
helpers/archive_builder.py the way an
attacker with write access to the archive (and, where said, a stolen key) could, and says
where verify must report the first break: chain, finding kind, segment and seq.
test_verify_cli.py runs the same attacks through the `sealtrail verify` command.

Every attack runs on an entry-signed archive (record format 1) and on a batch-sealed one
(record format 2), and the independent verifier written from docs/format.md
(helpers/independent_verifier.py) must fail the same chains, for the same kind of reason
(IV_KINDS: where it names another kind, as it reads no further into a segment whose bytes
its checkpoint does not sign). test_verify_batch_seals.py attacks batch seals themselves.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import independent_verifier as iv
from helpers.archive_builder import (
    T0,
    BuiltArchive,
    write_object,
)
from helpers.tamper import (
    ATTACKS,
    BATCH,
    Broken,
    K,
    _gap,
    _rotated,
    _standard,
    _two_keys,
    check_finding,
    checkpoint_resigned_own_key_id,
    run_attack,
    verify_built,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealtrail.core import layout
from sealtrail.core.signing import Keyring
from sealtrail.keys import load_keyring
from sealtrail.verify import verify_archive

# -- the tests ---------------------------------------------------------------------------


def test_intact_archive_verifies(tmp_path: Path) -> None:
    """An untouched archive verifies, with every entry, event and rejection counted."""
    built = _standard(tmp_path)
    report = verify_built(built)
    assert report.ok
    assert [c.chain_id for c in report.chains] == built.chain_ids
    for chain in report.chains:
        assert (chain.segments, chain.entries, chain.events) == (3, 12, 10)
        assert chain.rejections == {"UNKNOWN_SCHEMA": 2}
        assert chain.head_seq == 11
        assert chain.head_hash == built.records[chain.chain_id][-1]["entry_hash"].hex()


@pytest.mark.parametrize("build", [_two_keys, _rotated, _gap], ids=["two-keys", "rotated",
                                                                     "gap"])
def test_variant_archives_verify_or_only_report_the_gap(tmp_path: Path, build) -> None:
    """Archives with separate archiver keys or a key rotation verify; a gap is the only
    finding of its archive (rotated keys keep old signatures verifiable, G4)."""
    report = verify_built(build(tmp_path))
    findings = [f for c in report.chains for f in c.findings]
    if build is _gap:
        assert [f.kind for f in findings] == ["completeness"]
    else:
        assert report.ok, findings


#: The attacks on which the independent verifier names another kind than sealtrail.
IV_KINDS = {"checkpoint_reserialised": "malformed", "drop_middle_entry": "truncated",
            "segment_from_other_chain": "truncated", "swap_segments": "modified",
            "unreferenced_tail_segment": "rollback"}
FORMATS = pytest.mark.parametrize("batch", [None, BATCH], ids=["entry-signed", "batch-sealed"])


def first_problems(built: BuiltArchive) -> dict[str, str]:
    """Chain id -> the kind of the independent verifier's first problem with it."""
    found: dict[str, str] = {}
    for problem in iv.verify_dir(built.root, built.keyring_path):
        if problem.startswith("chain "):
            chain_id, kind, _ = problem[len("chain "):].split(": ", 2)
            found.setdefault(chain_id, kind)
    return found


@FORMATS
def test_intact_archive_verifies_with_both_verifiers(tmp_path: Path, batch: int | None
                                                     ) -> None:
    """Entry-signed or batch-sealed, every archive variant verifies with both verifiers."""
    for build in (_standard, _two_keys, _rotated):
        built = build(tmp_path / build.__name__, batch=batch)
        assert {len(r["signature"]) for c in built.chain_ids for r in built.records[c]} == (
            {64} if batch is None else {0, 65})
        assert verify_built(built).ok
        assert iv.verify_dir(built.root, built.keyring_path) == []


@FORMATS
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_detected(tmp_path: Path, name: str, batch: int | None) -> None:
    """Each attack breaks exactly the chains it touched, at the named segment and seq, for
    both verifiers."""
    built, expected = run_attack(name, tmp_path, batch)
    report = verify_built(built)
    kinds = {built.chain_ids[w.chain]: IV_KINDS.get(name, w.kind) for w in expected}
    assert first_problems(built) == kinds
    assert not report.ok
    by_chain = {c.chain_id: c for c in report.chains}
    assert sorted(by_chain) == sorted(built.chain_ids)
    broken = {built.chain_ids[w.chain]: w for w in expected}
    for chain_id, chain in by_chain.items():
        if chain_id not in broken:
            assert chain.ok, chain.findings
            continue
        assert len(chain.findings) == 1, chain.findings
        check_finding(built, chain.findings[0], broken[chain_id])
        want = broken[chain_id]
        if want.kind not in ("unreferenced", "completeness") and want.seq is not None:
            # Nothing at or after the break is counted as verified. (A hole in the raw
            # offsets is not a break of the chain: verify checks on, to name every hole.)
            assert chain.head_seq < want.seq


def test_checks_skip_entry_signatures_but_not_checkpoints(tmp_path: Path) -> None:
    """With check_signatures=False, a re-signed checkpoint is still caught."""
    built, [want] = run_attack("checkpoint_resigned_own_key_id", tmp_path)
    report = verify_archive(built.store, built.keyring, check_signatures=False)
    check_finding(built, report.chains[want.chain].findings[0], want)


def test_tail_truncation_is_caught_by_the_signed_index(tmp_path: Path) -> None:
    """Deleting the newest segment and checkpoint of a chain leaves a valid-looking shorter
    chain, but the newest signed archive index lists the removed checkpoint: rollback."""
    built = _standard(tmp_path)
    built.segment_path(0, 2).unlink()
    built.checkpoint_path(0, 2).unlink()
    report = verify_built(built)
    assert not report.ok and report.index_seq == 2
    [finding] = report.chains[0].findings
    assert (finding.kind, finding.segment, finding.seq) == (
        "rollback", built.checkpoint_key(0, 2), 8)
    assert "signed archive index 2 recorded checkpoint 2" in finding.message
    assert report.chains[1].ok


def test_tail_truncation_with_the_newest_index_needs_a_witness(tmp_path: Path) -> None:
    """Known limit: removing the newest index too, so that the newest index left is one
    written before the removed checkpoint, leaves an archive that verifies (shorter).
    Only a record kept outside the archive (verify --witness) catches that; see
    test_witness.py."""
    built = _standard(tmp_path)
    built.segment_path(0, 2).unlink()
    built.checkpoint_path(0, 2).unlink()
    built.path(layout.index_key(2)).unlink()
    report = verify_built(built)
    assert report.ok and report.index_seq == 1
    heads = {c.chain_id: c.head_seq for c in report.chains}
    assert heads == {built.chain_ids[0]: 7, built.chain_ids[1]: 11}


def test_first_break_stops_the_chain_but_not_the_archive(tmp_path: Path) -> None:
    """Two chains broken in different ways are both reported, each at its own first break."""
    built = _standard(tmp_path)
    built.segment_path(0, 2).unlink()
    checkpoint_resigned_own_key_id(built)
    built.segment_path(1, 2).unlink()  # after chain 1's first break: not reported
    report = verify_built(built)
    first, second = report.chains
    check_finding(built, first.findings[0], Broken(0, "missing", 2, 8))
    check_finding(built, second.findings[0], Broken(1, "unknown-key", 1, 4))
    assert [len(first.findings), len(second.findings)] == [1, 1]


def test_junk_chain_directory_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    """A directory under chains/ that is not a usable chain id is reported as malformed."""
    built = _standard(tmp_path)
    write_object(built.root / "chains" / ".sealtrail-tmp-x" / "segments" / "a.avro", b"x")
    report = verify_built(built)
    junk = [c for c in report.chains if c.chain_id == ".sealtrail-tmp-x"]
    assert [f.kind for f in junk[0].findings] == ["malformed"]
    assert all(c.ok for c in report.chains if c is not junk[0])


def test_keyring_file_round_trips(tmp_path: Path) -> None:
    """The builder's keyring file is what sealtrail.keys loads, windows included."""
    built = _rotated(tmp_path)
    loaded = load_keyring(built.keyring_path)
    assert isinstance(loaded, Keyring)
    assert loaded == built.keyring
    old = loaded.keys[built.sealers[0].key_id]
    assert old.not_after is not None and old.not_after > T0


@pytest.fixture(scope="module", params=[None, BATCH], ids=["entry-signed", "batch-sealed"])
def pristine(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
             ) -> BuiltArchive:
    return _standard(tmp_path_factory.mktemp("pristine"), batch=request.param)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_flipped_bit_in_any_object_is_detected(
    pristine: BuiltArchive, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Flipping any bit of any segment or checkpoint file breaks that chain at that segment."""
    keys = sorted(k for c in pristine.chain_ids
                  for k in pristine.store.list(f"{layout.CHAINS}{c}/"))
    key = data.draw(st.sampled_from(keys), label="object")
    size = pristine.path(key).stat().st_size
    at = data.draw(st.integers(0, size - 1), label="byte")
    bit = data.draw(st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128]), label="bit")
    base = tmp_path_factory.mktemp("flip")
    shutil.copytree(pristine.root, base / "archive")
    built = replace(pristine, root=base / "archive")
    content = bytearray(built.path(key).read_bytes())
    content[at] ^= bit
    write_object(built.path(key), bytes(content))

    report = verify_archive(built.store, pristine.keyring)
    chain_id = key.split("/")[1]
    index = layout.parse_index(key)
    for chain in report.chains:
        if chain.chain_id != chain_id:
            assert chain.ok, chain.findings
            continue
        assert len(chain.findings) == 1, chain.findings
        finding = chain.findings[0]
        assert finding.segment == layout.segment_key(chain_id, index), finding
        assert index * K <= finding.seq < (index + 1) * K, finding
    shutil.rmtree(base)

