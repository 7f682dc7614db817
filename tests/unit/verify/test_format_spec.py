"""docs/format.md is complete and true: an independent verifier written from it alone
(tests/helpers/independent_verifier.py, no sealtrail imports) accepts archives sealtrail builds,
detects tampering the way sealtrail's own verifier does, and the values the spec states
(hash domains, escaping rules, the worked example) are the ones sealtrail computes."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from helpers import independent_verifier as iv
from helpers.archive_builder import (
    build_archive,
    forge_checkpoint,
    keyring_of,
    make_event,
    segment_bytes,
    write_keyring,
    write_object,
)
from helpers.paths import REPO, TESTS
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.archive import open_store
from sealtrail.consumers.archiver import SegmentWriter
from sealtrail.core import hashing, merkle
from sealtrail.core.canonical import canonical_json, entry_body
from sealtrail.core.chain import ChainHead, entry_hash, genesis_hash, seal
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.hashing import SIG_ENTRY_DOMAIN
from sealtrail.core.signing import Ed25519Signer, Keyring, PublicKey
from sealtrail.verify import verify_archive

SPEC = REPO / "docs" / "format.md"
VECTORS = TESTS / "vectors" / "entry_v1.json"


def spec_text() -> str:
    return SPEC.read_text(encoding="utf-8")


def kinds_independent(problems: list[str]) -> set[str]:
    """Finding kinds in the independent verifier's "chain <id>: <kind>: <message>"."""
    return {p.split(": ", 2)[1] for p in problems}


def kinds_sealtrail(root: Path, keyring: Keyring) -> set[str]:
    report = verify_archive(open_store(root), keyring)
    return {f.kind for c in report.chains for f in c.findings}


# -- intact archives ------------------------------------------------------------------------


@pytest.mark.parametrize("options", [
    {},
    {"separate_archiver_key": True, "rotate_at": 1},
    {"chains": 1, "segments": 1, "records": 1, "rejections": ()},
    {"chains": 3, "segments": 2, "records": 7, "rejections": (0, 5, 13)},
])
def test_independent_verifier_accepts_what_sealtrail_builds(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    built = build_archive(tmp_path, **options)
    assert iv.verify_dir(built.root, built.keyring_path) == []
    assert verify_archive(open_store(built.root), built.keyring).ok


def _tricky_event(n: int) -> dict[str, Any]:
    event = make_event(n, 0)
    event["attributes"] = {
        "\ue000": "private use",
        "\U0001f600": "emoji key sorts after U+E000 by code point",
        "ctl": "nul\x00 unit-sep\x1f del\x7f c1\x85 ls\u2028 ps\u2029",
        "quote": 'a "b" \\c/ \b\f\n\r\t',
        "Z": "é ß 中 𝄞",
        "": "empty key",
    }
    event["reason"] = "line1\nline2"
    return event


def test_tricky_strings_survive_sealing_archiving_and_independent_verification(
    tmp_path: Path,
) -> None:
    signer = Ed25519Signer(hashlib.sha256(b"format-spec").digest())
    store = open_store(tmp_path / "archive")
    chain_id = "audit.raw.0.00000000deadbeef"
    head = ChainHead.genesis(chain_id)
    writer = SegmentWriter(store, signer, retention_days=1, clock=lambda: 1_800_000_000_000_000)
    for n in range(6):
        unsealed = {
            "kind": "EVENT", "event": _tricky_event(n), "rejection": None,
            "redaction": {"policy_id": "p\u2028", "policy_version": 1, "fields": []},
            "ingested_at": 1_700_000_000_000_000 + n,
            "source": {"topic": "audit.raw", "partition": 0, "offset": 40 + n,
                       "schema_id": None},
        }
        record = seal(head, unsealed, signer)
        head = head.advance(record)
        writer.add(record)
        if n in (2, 5):
            writer.flush()
    keyring_path = write_keyring(tmp_path / "public.json", keyring_of(signer))
    assert iv.verify_dir(tmp_path / "archive", keyring_path) == []


# -- tampering: both verifiers must notice, for the same reason ---------------------------


def _flip_first_byte(text: str) -> str:
    return chr(ord(text[0]) ^ 0x01) + text[1:]


def test_flipped_byte_in_an_entry_is_detected_by_the_segment_digest(tmp_path: Path) -> None:
    built = build_archive(tmp_path)
    records = built.read_records(0, 1)
    records[1]["event"]["action"] = _flip_first_byte(records[1]["event"]["action"])
    write_object(built.segment_path(0, 1), segment_bytes(built.chain_ids[0], records))
    problems = iv.verify_dir(built.root, built.keyring_path)
    assert len(problems) == 1 and built.chain_ids[0] in problems[0]
    assert kinds_independent(problems) == {"modified"}
    assert kinds_sealtrail(built.root, built.keyring) == {"modified"}


def test_flipped_byte_in_an_entry_is_detected_by_its_hash_even_under_a_restated_checkpoint(
    tmp_path: Path,
) -> None:
    """The attacker also restates and re-signs the checkpoint (they hold the archiver's
    key, not the sealer's): the entry hash no longer matches the entry."""
    built = build_archive(tmp_path, separate_archiver_key=True)
    records = built.read_records(1, 2)
    records[0]["event"]["event_id"] = _flip_first_byte(records[0]["event"]["event_id"])
    data = segment_bytes(built.chain_ids[1], records)
    write_object(built.segment_path(1, 2), data)
    write_object(built.checkpoint_path(1, 2), forge_checkpoint(
        built.read_checkpoint(1, 2), built.archivers[0], records=records, segment=data,
        before=built.frontier_before(1, 2)))
    problems = iv.verify_dir(built.root, built.keyring_path)
    assert kinds_independent(problems) == {"hash"}
    assert "seq 8" in problems[0]
    assert kinds_sealtrail(built.root, built.keyring) == {"hash"}


def test_broken_link_is_detected(tmp_path: Path) -> None:
    """An entry re-sealed (by someone holding every key) with a prev_hash that is not the
    previous entry's hash: its own hash and signature are good, the link is not."""
    built = build_archive(tmp_path)
    sealer = built.sealers[0]
    records = built.read_records(0, 1)
    victim = records[1]
    victim["prev_hash"] = bytes([victim["prev_hash"][0] ^ 0x80]) + victim["prev_hash"][1:]
    victim["entry_hash"] = entry_hash(victim)
    victim["signature"] = sealer.sign(SIG_ENTRY_DOMAIN + victim["entry_hash"])
    for i in range(2, len(records)):  # the rest links to the victim, as an attacker would
        records[i]["prev_hash"] = records[i - 1]["entry_hash"]
        records[i]["entry_hash"] = entry_hash(records[i])
        records[i]["signature"] = sealer.sign(SIG_ENTRY_DOMAIN + records[i]["entry_hash"])
    data = segment_bytes(built.chain_ids[0], records)
    write_object(built.segment_path(0, 1), data)
    write_object(built.checkpoint_path(0, 1), forge_checkpoint(
        built.read_checkpoint(0, 1), sealer, records=records, segment=data,
        before=built.frontier_before(0, 1)))
    problems = iv.verify_dir(built.root, built.keyring_path)
    assert kinds_independent(problems) == {"link"}
    assert f"seq {victim['seq']}" in problems[0]
    assert kinds_sealtrail(built.root, built.keyring) == {"link"}


def test_dropped_entry_relinked_by_a_key_holder_is_caught_by_completeness(
    tmp_path: Path,
) -> None:
    built = build_archive(tmp_path)
    sealer = built.sealers[0]
    all_records = [r for i in range(built.segments) for r in built.read_records(0, i)]
    del all_records[5]
    for i in range(5, len(all_records)):
        r = all_records[i]
        r["seq"] = all_records[i - 1]["seq"] + 1
        r["prev_hash"] = all_records[i - 1]["entry_hash"]
        r["entry_hash"] = entry_hash(r)
        r["signature"] = sealer.sign(SIG_ENTRY_DOMAIN + r["entry_hash"])
    per = built.records_per_segment
    for index in range(1, built.segments):
        part = all_records[index * per:(index + 1) * per]
        data = segment_bytes(built.chain_ids[0], part)
        write_object(built.segment_path(0, index), data)
        # Chained again too: each restated checkpoint links to the restated one before.
        write_object(built.checkpoint_path(0, index), forge_checkpoint(
            built.read_checkpoint(0, index), sealer, records=part, segment=data,
            before=built.frontier_before(0, index)))
        if index + 1 < built.segments:
            nxt = built.read_checkpoint(0, index + 1)
            prev = built.read_checkpoint(0, index)
            relinked = replace(nxt.checkpoint, prev_checkpoint_hash=prev.checkpoint_hash)
            write_object(built.checkpoint_path(0, index + 1), relinked.sign(sealer).to_bytes())
    problems = iv.verify_dir(built.root, built.keyring_path)
    assert kinds_independent(problems) == {"completeness"}
    # sealtrail goes on past a hole in the raw offsets, and then finds the rewritten
    # checkpoints are not the ones the signed archive index lists.
    assert kinds_sealtrail(built.root, built.keyring) == {"completeness", "fork"}


def test_bad_checkpoint_signature_is_detected(tmp_path: Path) -> None:
    built = build_archive(tmp_path)
    path = built.checkpoint_path(1, 1)
    doc = json.loads(path.read_bytes())
    sig = doc["signature"]
    doc["signature"] = sig[:10] + format(int(sig[10], 16) ^ 1, "x") + sig[11:]
    write_object(path, canonical_json(doc))
    problems = iv.verify_dir(built.root, built.keyring_path)
    assert len(problems) == 1 and "checkpoint 1" in problems[0]
    assert kinds_independent(problems) == {"signature"}
    assert kinds_sealtrail(built.root, built.keyring) == {"signature"}


def test_checkpoint_statement_edit_is_detected_by_its_hash(tmp_path: Path) -> None:
    built = build_archive(tmp_path)
    path = built.checkpoint_path(0, 0)
    doc = json.loads(path.read_bytes())
    doc["checkpoint"]["created_at"] += 1
    write_object(path, canonical_json(doc))
    assert kinds_independent(iv.verify_dir(built.root, built.keyring_path)) == {"signature"}
    assert kinds_sealtrail(built.root, built.keyring) == {"signature"}


def test_missing_and_unreferenced_segments_are_detected(tmp_path: Path) -> None:
    built = build_archive(tmp_path)
    built.segment_path(0, 1).unlink()
    extra = built.read_records(1, 2)
    write_object(built.segment_path(1, 3), segment_bytes(built.chain_ids[1], extra))
    problems = iv.verify_dir(built.root, built.keyring_path)
    assert kinds_independent(problems) == {"missing", "unreferenced"}
    assert kinds_sealtrail(built.root, built.keyring) == {"missing", "unreferenced"}


def test_untrusted_and_expired_keys_are_detected(tmp_path: Path) -> None:
    built = build_archive(tmp_path, separate_archiver_key=True)
    sealer, archiver = built.sealers[0], built.archivers[0]
    untrusting = write_keyring(tmp_path / "only-archiver.json", keyring_of(archiver))
    assert kinds_independent(iv.verify_dir(built.root, untrusting)) == {"unknown-key"}
    # The sealer's window ends one microsecond before chain 0's seq 1 was ingested (chain 1's
    # seq 0 was ingested later still).
    second = built.read_records(0, 0)[1]["ingested_at"]
    expired = Keyring.of([PublicKey(sealer.key_id, sealer.public_key, 0, second - 1),
                          PublicKey(archiver.key_id, archiver.public_key)])
    path = write_keyring(tmp_path / "expired.json", expired)
    problems = iv.verify_dir(built.root, path)
    assert kinds_independent(problems) == {"signature"}
    assert [p for p in problems if built.chain_ids[0] in p and "seq 1:" in p]
    assert kinds_sealtrail(built.root, expired) == {"signature"}


def test_index_findings_agree_with_the_independent_verifier(tmp_path: Path) -> None:
    """Written from docs/format.md ("Archive index", verification steps 0 and 4), the
    independent verifier also catches a rolled-back chain, a deleted chain and an index
    edited without its key; sealtrail names the same kinds."""
    import shutil

    def all_kinds(root: Path, keyring: Keyring) -> set[str]:
        report = verify_archive(open_store(root), keyring)
        return {f.kind for c in report.chains for f in c.findings} | {
            f.kind for f in report.findings}

    rolled = build_archive(tmp_path / "r")
    rolled.segment_path(0, 2).unlink()
    rolled.checkpoint_path(0, 2).unlink()
    assert kinds_independent(iv.verify_dir(rolled.root, rolled.keyring_path)) == {"rollback"}
    assert all_kinds(rolled.root, rolled.keyring) == {"rollback"}
    gone = build_archive(tmp_path / "g")
    shutil.rmtree(gone.root / "chains" / gone.chain_ids[1])
    assert kinds_independent(iv.verify_dir(gone.root, gone.keyring_path)) == {"missing"}
    assert all_kinds(gone.root, gone.keyring) == {"missing"}
    edited = build_archive(tmp_path / "e")
    path = edited.root / "index" / "0000000002.json"
    write_object(path, path.read_bytes().replace(b'"tree_size":12', b'"tree_size":13', 1))
    assert kinds_independent(iv.verify_dir(edited.root, edited.keyring_path)) == {"malformed"}
    assert all_kinds(edited.root, edited.keyring) == {"signature"}


def test_empty_archive_is_not_intact(tmp_path: Path) -> None:
    keyring = write_keyring(tmp_path / "k.json", keyring_of(Ed25519Signer(bytes(32))))
    (tmp_path / "archive").mkdir()
    assert iv.verify_dir(tmp_path / "archive", keyring) != []


# -- the rules the spec states ------------------------------------------------------------


def spec_escape(text: str) -> str:
    """The string rule of docs/format.md, "Canonical JSON", restated independently."""
    short = {0x22: '\\"', 0x5C: "\\\\", 0x08: "\\b", 0x09: "\\t", 0x0A: "\\n",
             0x0C: "\\f", 0x0D: "\\r"}
    out = []
    for ch in text:
        cp = ord(ch)
        if cp in short:
            out.append(short[cp])
        elif cp <= 0x1F:
            out.append(f"\\u{cp:04x}")
        else:
            out.append(ch)  # everything else literally, as UTF-8
    return '"' + "".join(out) + '"'


TRICKY = [
    "", "plain", 'say "hi"', "back\\slash", "/slash/", "\x00", "\x01\x07\x0b\x0e\x1b\x1f",
    "\b\f\n\r\t", "\x7f", "\x80\x85\x9f", "é", "中文", "\U0001f600", "\U0001f468\u200d\U0001f469",
    "\u2028\u2029", "\ufeff", "\uffff", "\U0010ffff", "mix\x00é\"\\\u2028\U0001f600\x7f\n",
]


@pytest.mark.parametrize("text", TRICKY)
def test_string_escaping_matches_the_spec(text: str) -> None:
    expected = spec_escape(text).encode("utf-8")
    assert canonical_json(text) == expected
    assert iv.canonical_json(text) == expected
    assert canonical_json({text: text}) == b"{" + expected + b":" + expected + b"}"


def test_escapes_are_lowercase_and_nothing_else_is_escaped() -> None:
    assert canonical_json("\x1f\x1a\x0b") == b'"\\u001f\\u001a\\u000b"'
    for cp in range(0x20, 0x800):
        if cp in (0x22, 0x5C) or 0xD800 <= cp <= 0xDFFF:
            continue
        assert canonical_json(chr(cp)) == b'"' + chr(cp).encode("utf-8") + b'"', hex(cp)


def test_lone_surrogates_have_no_canonical_form() -> None:
    with pytest.raises(UnicodeEncodeError):
        canonical_json("\ud800")
    with pytest.raises(ValueError):
        iv.canonical_json("\udfff")


def test_key_order_is_code_point_order_not_utf16() -> None:
    value = {"\U0001f600": 1, "\ue000": 2, "b": 3, "B": 4, "a": 5, "ab": 6, "": 7}
    data = canonical_json(value)
    assert data == iv.canonical_json(value)
    keys = list(json.loads(data))
    assert keys == ["", "B", "a", "ab", "b", "\ue000", "\U0001f600"]
    assert keys == sorted(value, key=lambda k: k.encode("utf-8"))
    assert keys != sorted(value, key=lambda k: k.encode("utf-16-be"))


def test_spec_canonical_example() -> None:
    value = {"b": 1, "a": b"\x00\xff", "é": None, "c": ["tab\t\"q\"", -5]}
    expected = '{"a":"00ff","b":1,"c":["tab\\t\\"q\\"",-5],"é":null}'
    assert expected in spec_text()
    assert canonical_json(value) == expected.encode("utf-8") == iv.canonical_json(value)
    assert len(expected.encode("utf-8")) == 50


def test_integers_booleans_null_and_floats() -> None:
    value = [0, -1, 2**63 - 1, -(2**63), 10**30, True, False, None, [], {}]
    expected = (b'[0,-1,9223372036854775807,-9223372036854775808,'
                b'1000000000000000000000000000000,true,false,null,[],{}]')
    assert canonical_json(value) == iv.canonical_json(value) == expected
    with pytest.raises(TypeError):
        canonical_json(1.5)
    with pytest.raises(TypeError):
        iv.canonical_json({"a": [1.5]})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=10) | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=5),
                      children, max_size=4),
    max_leaves=16,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_independent_canonical_json_agrees_with_sealtrail(value: Any) -> None:
    assert iv.canonical_json(value) == canonical_json(value)


def test_merkle_root_agrees_with_sealtrail() -> None:
    leaves = [hashlib.sha256(bytes([i])).digest() for i in range(40)]
    for n in range(1, len(leaves) + 1):
        assert iv.merkle_root(leaves[:n]) == merkle.root(leaves[:n]), n
    assert merkle.root(leaves[:1]) == hashlib.sha256(b"\x00" + leaves[0]).digest()


def test_hash_domain_table_states_the_exact_bytes() -> None:
    text = spec_text()
    for name, domain in [("ENTRY", hashing.ENTRY_DOMAIN), ("GENESIS", hashing.GENESIS_DOMAIN),
                         ("CHECKPOINT", hashing.CHECKPOINT_DOMAIN),
                         ("SIG_ENTRY", hashing.SIG_ENTRY_DOMAIN),
                         ("SIG_CHECKPOINT", hashing.SIG_CHECKPOINT_DOMAIN)]:
        assert domain.endswith(b"\x00")
        shown = domain[:-1].decode("ascii") + "\\x00"
        row = re.search(rf"^\| `{name}` \| `([^`]*)` \| (\d+) \|", text, re.M)
        assert row, name
        assert row.group(1) == shown and int(row.group(2)) == len(domain), name
    assert hashing.ENTRY_DOMAIN.hex() in text
    assert (hashing.MERKLE_LEAF_PREFIX, hashing.MERKLE_NODE_PREFIX) == (b"\x00", b"\x01")
    assert (iv.ENTRY, iv.GENESIS, iv.CHECKPOINT, iv.SIG_ENTRY, iv.SIG_CHECKPOINT) == (
        hashing.ENTRY_DOMAIN, hashing.GENESIS_DOMAIN, hashing.CHECKPOINT_DOMAIN,
        hashing.SIG_ENTRY_DOMAIN, hashing.SIG_CHECKPOINT_DOMAIN)


def test_entry_fields_are_the_ones_the_spec_lists() -> None:
    from sealtrail.core.canonical import ENTRY_FIELDS

    assert set(iv.COVERED) == set(ENTRY_FIELDS)
    schema = json.loads((SPEC.parent.parent / "schemas/avro/SealedRecord.v1.avsc").read_text())
    names = [f["name"] for f in schema["fields"]]
    assert set(names) - set(ENTRY_FIELDS) == {"entry_hash", "signature"}


# -- the worked example -------------------------------------------------------------------


def _example() -> tuple[Ed25519Signer, dict[str, Any]]:
    signer = Ed25519Signer(bytes(range(32)))
    event = {
        "event_id": "7f1c0e52-5c1e-4f3a-9d1e-2b7a4c9e8f10", "event_type": "auth.login",
        "action": "login", "occurred_at": 1700000000000000,
        "actor": {"id": "u-42", "type": "user", "principal": None},
        "origin": {"service": "billing", "instance": "billing-1", "service_version": None,
                   "environment": "prod", "source_ip": "10.0.*.*", "user_agent": None,
                   "request_id": None, "trace_id": None},
        "resource": {"type": "session", "id": "s-1"}, "outcome": "SUCCESS", "reason": None,
        "authorization": None, "tenant": None, "classification": "INTERNAL",
        "attributes": {"note": 'café "quoted"\n'},
    }
    unsealed = {
        "kind": "EVENT", "event": event, "rejection": None,
        "redaction": {"policy_id": "default", "policy_version": 1,
                      "fields": ["origin.source_ip=mask"]},
        "ingested_at": 1700000000123456,
        "source": {"topic": "audit.raw", "partition": 0, "offset": 0, "schema_id": 1},
    }
    return signer, seal(ChainHead.genesis("audit.raw.0.0123456789abcdef"), unsealed, signer)


def test_worked_example_values_are_what_sealtrail_computes() -> None:
    text = re.sub(r"\n\s+", "", spec_text())  # join the hex values split for width
    signer, record = _example()
    chain_id = record["chain_id"]
    body = canonical_json(entry_body(record))
    assert iv.canonical_json({k: record[k] for k in iv.COVERED}) == body
    assert iv.entry_hash(record) == record["entry_hash"]
    assert iv.genesis_hash(chain_id) == genesis_hash(chain_id) == record["prev_hash"]
    leaf_root = merkle.root([record["entry_hash"]])
    cp = Checkpoint(chain_id, 0, 0, 0, record["entry_hash"], leaf_root, bytes(32),
                    f"chains/{chain_id}/segments/0000000000.avro", b"\x11" * 32, 1234,
                    1700000001000000, signer.key_id)
    signed = cp.sign(signer)
    for value in [
        signer.public_key.hex(), base64.b64encode(signer.public_key).decode(), signer.key_id,
        genesis_hash(chain_id).hex(), body.decode("utf-8"), record["entry_hash"].hex(),
        record["signature"].hex(), leaf_root.hex(), canonical_json(cp.to_json()).decode(),
        signed.checkpoint_hash.hex(), signed.signature.hex(),
    ]:
        assert value in text, value
    assert signer.key_id == "ed25519:" + hashlib.sha256(signer.public_key).hexdigest()[:16]


def test_worked_example_archive_verifies_independently(tmp_path: Path) -> None:
    signer, record = _example()
    writer = SegmentWriter(open_store(tmp_path / "a"), signer, retention_days=1,
                           clock=lambda: 1700000001000000)
    from sealtrail import schemas  # the worked example is a version 1 record

    writer.add(record, schemas.sealed_record(event_version=1, version=1))
    writer.flush()
    keyring = write_keyring(tmp_path / "public.json", keyring_of(signer))
    assert iv.verify_dir(tmp_path / "a", keyring) == []


@pytest.mark.skipif(not VECTORS.exists(), reason="tests/vectors/entry_v1.json not present yet")
def test_golden_vectors_file_is_referenced_by_the_spec() -> None:
    assert "tests/vectors/entry_v1.json" in spec_text()
    json.loads(VECTORS.read_text(encoding="utf-8"))


# -- SealedRecord versions --------------------------------------------------------------------


def test_a_chain_of_v1_then_v2_segments_verifies_everywhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chain sealed first with SealedRecord v1 and then, after an upgrade, with v2 (a
    schema id of 2^32 - 1, the new reasons LIMIT and INTERNAL): the independent verifier,
    the native path and the reference path of sealtrail's verifier all accept it, and the
    segments' header schemas are v1 and v2."""
    from sealtrail import schemas
    from sealtrail.archive import fast_segments
    from sealtrail.archive.segments import open_container

    signer = Ed25519Signer(bytes(range(32)))
    store = open_store(tmp_path / "a")
    writer = SegmentWriter(store, signer, retention_days=1, clock=lambda: 1700000001000000)
    head = ChainHead.genesis("audit.raw.0.0123456789abcdef")
    for i, (version, reason, schema_id) in enumerate([
            (1, "UNKNOWN_SCHEMA", 2**31 - 1), (1, "INVALID", None),
            (2, "UNKNOWN_SCHEMA", 2**32 - 1), (2, "LIMIT", 7), (2, "INTERNAL", None)]):
        record = seal(head, {
            "kind": "REJECTION", "event": None,
            "rejection": {"reason": reason, "detail": f"test {i}", "raw_sha256": bytes(32),
                          "raw_size": 0},
            "redaction": {"policy_id": "default", "policy_version": 1, "fields": []},
            "ingested_at": 1700000000000000 + i,
            "source": {"topic": "audit.raw", "partition": 0, "offset": i,
                       "schema_id": schema_id}}, signer)
        head = head.advance(record)
        writer.add(record, schemas.sealed_record(version=version))
    writer.flush()
    keyring = write_keyring(tmp_path / "public.json", keyring_of(signer))
    assert iv.verify_dir(tmp_path / "a", keyring) == []
    segments = sorted(k for k in store.list("chains/") if k.endswith(".avro"))
    assert len(segments) == 2
    docs = [open_container(store.get(k)).schema["doc"] for k in segments]
    assert "Version 1" in docs[0] and "Version 2" in docs[1]
    assert all(fast_segments.transcode_segment(store.get(k)) for k in segments)
    report = verify_archive(store, keyring_of(signer))
    assert report.ok and report.chains[0].rejections == {
        "UNKNOWN_SCHEMA": 2, "INVALID": 1, "LIMIT": 1, "INTERNAL": 1}
    monkeypatch.setattr(fast_segments, "native", None)  # the reference path
    assert verify_archive(store, keyring_of(signer)).to_json() == report.to_json()
