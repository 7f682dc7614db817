"""Attacks on batch seals (record format 2), tried against sealtrail's verifier and the
independent verifier written from the spec (helpers/independent_verifier.py): both must
pass the untouched archive and name the same first break (chain, kind, seq) after each
attack of helpers/tamper_batch.py. The attacks of helpers/tamper.py run on batch-sealed
archives in test_verify_tamper.py."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from helpers import independent_verifier as iv
from helpers.archive_builder import build_archive, segment_bytes, write_object
from helpers.tamper import Broken, check_finding, verify_built
from helpers.tamper_batch import BATCH_ATTACKS, restate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def iv_breaks(built) -> dict[str, tuple[str, str]]:
    """Chain id -> (kind, message) of the independent verifier's first problem with it."""
    found: dict[str, tuple[str, str]] = {}
    for problem in iv.verify_dir(built.root, built.keyring_path):
        assert problem.startswith("chain "), problem
        chain_id, kind, message = problem[len("chain "):].split(": ", 2)
        found.setdefault(chain_id, (kind, message))
    return found


@pytest.mark.parametrize("name", sorted(BATCH_ATTACKS))
def test_batch_seal_attack_is_detected_by_both_verifiers(tmp_path: Path, name: str) -> None:
    """The archive verifies before the attack; after it, both verifiers break exactly the
    attacked chains, at the same seq, for the same kind of reason."""
    attack = BATCH_ATTACKS[name]
    built = attack.build(tmp_path)
    assert verify_built(built).ok
    assert iv.verify_dir(built.root, built.keyring_path) == []
    found = attack.tamper(built)
    expected = found if isinstance(found, list) else [found]
    report = verify_built(built)
    broken = {built.chain_ids[w.chain]: w for w in expected}
    for chain in report.chains:
        if chain.chain_id not in broken:
            assert chain.ok, chain.findings
            continue
        assert len(chain.findings) == 1, chain.findings
        check_finding(built, chain.findings[0], broken[chain.chain_id])
        assert chain.head_seq < broken[chain.chain_id].seq  # nothing from the break counts
    independent = iv_breaks(built)
    assert {c: kind for c, (kind, _) in independent.items()} == {
        c: w.kind for c, w in broken.items()}
    for chain_id, (_, message) in independent.items():
        assert f" seq {broken[chain_id].seq}:" in message, message


FIELDS = ("prev_hash", "entry_hash", "signature", "event_id", "ingested_at")


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.integers(1, 6), records=st.integers(1, 7), data=st.data())
def test_any_byte_flipped_in_any_entry_of_a_batch_sealed_chain_is_detected(
        tmp_path_factory: pytest.TempPathFactory, batch: int, records: int,
        data: st.DataObject) -> None:
    """For any batch size, the untouched chain verifies with both verifiers; one byte of
    one entry flipped (its links, hash, seal or content), the segment rewritten and its
    checkpoint restated with the stolen archiver key: both verifiers fail the chain, at
    that segment."""
    base = tmp_path_factory.mktemp("flip")
    built = build_archive(base, chains=1, segments=2, records=records, batch=batch,
                          separate_archiver_key=True, rejections=())
    assert verify_built(built).ok
    assert iv.verify_dir(built.root, built.keyring_path) == []
    index = data.draw(st.integers(0, 1), label="segment")
    entries = built.read_records(0, index)
    original = copy.deepcopy(entries)
    at = data.draw(st.integers(0, len(entries) - 1), label="entry")
    entry = entries[at]
    field = data.draw(st.sampled_from(
        [f for f in FIELDS if f != "signature" or entry["signature"]]), label="field")
    mask = data.draw(st.integers(1, 255), label="mask")
    if field == "ingested_at":
        entry[field] ^= mask
    else:
        value = entry["event"][field] if field == "event_id" else entry[field]
        raw = bytearray(value.encode() if isinstance(value, str) else value)
        raw[data.draw(st.integers(0, len(raw) - 1), label="byte")] ^= mask & 0x7F or 1
        changed = raw.decode() if isinstance(value, str) else bytes(raw)
        if field == "event_id":
            entry["event"][field] = changed
        else:
            entry[field] = changed
    assert entries != original
    restate(built, entries, chain=0, index=index)
    report = verify_built(built)
    [finding] = report.chains[0].findings
    assert finding.segment == built.segment_key(0, index), finding
    first = index * records
    assert first <= finding.seq < first + records, finding
    assert list(iv_breaks(built)) == [built.chain_ids[0]]


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_segment_cut_short_without_a_key_is_truncated_for_both(tmp_path: Path, cut: int
                                                               ) -> None:
    """Without any key, a segment rewritten to end after unsigned seq 4 or 5 (cut 1, 2),
    or after the seal at seq 6 (cut 3), is truncated for both verifiers; sealtrail names
    the first entry that is not evidence (no seal covers 4..5), or the first one missing."""
    built = BATCH_ATTACKS["truncated_after_unsigned"].build(tmp_path)
    records = built.read_records(0, 1)[:cut]
    write_object(built.segment_path(0, 1), segment_bytes(built.chain_ids[0], records))
    [finding] = verify_built(built).chains[0].findings
    want = Broken(0, "truncated", 1, 4 if cut < 3 else 7,
                  "no batch seal after them" if cut < 3 else "it ends at seq 6")
    check_finding(built, finding, want)
    assert {c: kind for c, (kind, _) in iv_breaks(built).items()} == {
        built.chain_ids[0]: "truncated"}
