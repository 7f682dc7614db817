"""Export with proof: a bundle an outside auditor checks offline, and every way of
altering it that verify-export must catch."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from helpers.archive_builder import (
    build_archive,
    keyring_of,
    reseal,
    segment_bytes,
    signer,
    write_keyring,
)
from helpers.archive_builder import write_object as overwrite
from helpers.cli import sealtrail

from sealtrail.errors import IntegrityError, MalformedInputError
from sealtrail.export import build_export, verify_export
from sealtrail.reading import ArchiveSource
from sealtrail.search import open_index, parse_query
from sealtrail.search._rebuild import rebuild_index

QUERY = "actor:user-3 since:2023-12-31 until:2024-01-02"


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, Path, int]:
    """An archive, its index and an export of QUERY: (bundle, keyring, events matched)."""
    built = build_archive(tmp_path, chains=2, segments=3, records=7)
    idx = tmp_path / "idx.sqlite"
    assert sealtrail(tmp_path, "index", "rebuild", "--index", idx, "--archive", built.root,
                     "--keys", built.keyring_path).returncode == 0
    bundle = tmp_path / "bundle.zip"
    proc = sealtrail(tmp_path, "export", QUERY, "--out", bundle, "--index", idx, "--archive",
                     built.root, "--keys", built.keyring_path, "--operator", "auditor-7")
    assert proc.returncode == 0, proc.stderr
    expected = sum(1 for c in built.chain_ids for r in built.records[c]
                   if r["event"] and r["event"]["actor"]["id"] == "user-3")
    assert f"exported {expected} events" in proc.stderr
    assert "chain of custody NOT recorded (export by auditor-7" in proc.stderr
    return bundle, built.keyring_path, expected


def rewrite(bundle: Path, change: dict[str, bytes | None]) -> bytes:
    """The bundle with members replaced (bytes) or removed (None)."""
    src = zipfile.ZipFile(bundle)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            if name in change:
                if change[name] is not None:
                    dst.writestr(name, change[name])  # type: ignore[arg-type]
            else:
                dst.writestr(name, src.read(name))
    return out.getvalue()


def test_export_verifies_offline_and_states_query_and_range(
        exported: tuple[Path, Path, int], tmp_path: Path) -> None:
    """verify-export exits 0 with the count, the query and the time range asked."""
    bundle, keys, expected = exported
    proc = sealtrail(tmp_path, "verify-export", bundle, "--keys", keys)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"VERIFIED: {expected} of {expected} events" in proc.stdout
    assert QUERY in proc.stdout and "2023-12-31T00:00:00+00:00" in proc.stdout
    with zipfile.ZipFile(bundle) as z:
        manifest = json.loads(z.read("manifest.json"))
        readme = z.read("README.txt").decode()
        names = z.namelist()
    assert manifest["query"] == QUERY and manifest["operator"] == "auditor-7"
    assert manifest["count"] == expected and manifest["time_range_asked"]["since"] is not None
    assert "Do NOT trust keys/public.json" in readme and QUERY in readme
    assert "keys/public.json" in names and any(n.startswith("checkpoints/") for n in names)


def test_altered_bundles_fail_verification(exported: tuple[Path, Path, int],
                                           tmp_path: Path) -> None:
    """An altered event, a dropped proof or an untrusted keyring each fail, naming the file."""
    bundle, keys, _ = exported
    with zipfile.ZipFile(bundle) as z:
        proofs = sorted(n for n in z.namelist() if n.startswith("proofs/"))
        doc = json.loads(z.read(proofs[0]))
    from sealtrail.core.canonical import canonical_json
    from sealtrail.core.signing import Keyring

    keyring = Keyring.loads(keys.read_text())
    doc["entry"]["event"]["action"] = "nothing-to-see"
    altered = rewrite(bundle, {proofs[0]: canonical_json(doc)})
    result = verify_export(altered, keyring)
    assert not result.ok and any(p.startswith(proofs[0]) and "entry hash" in p
                                 for p in result.problems)
    dropped = verify_export(rewrite(bundle, {proofs[1]: None}), keyring)
    assert not dropped.ok and any("absent" in p for p in dropped.problems)
    stranger = write_keyring(tmp_path / "other.json", keyring_of(signer("someone-else")))
    proc = sealtrail(tmp_path, "verify-export", bundle, "--keys", stranger)
    assert proc.returncode == 1 and "unknown key" in proc.stdout
    with pytest.raises(MalformedInputError):  # not a bundle at all: exit 2, not 1
        verify_export(b"not a zip", keyring)


def test_export_refuses_to_prove_from_a_tampered_segment(tmp_path: Path) -> None:
    """When the archive was altered after indexing, export fails instead of proving."""
    built = build_archive(tmp_path, chains=1, segments=2, records=6, rejections=())
    index = open_index(str(tmp_path / "i.sqlite"))
    rebuild_index(ArchiveSource(built.store, built.keyring), index)
    records = built.read_records(0, 1)
    records[2]["event"]["actor"]["id"] = "user-3"
    reseal(records, 2)
    overwrite(built.segment_path(0, 1), segment_bytes(built.chain_ids[0], records))
    query = parse_query("actor:user-3")
    rows = index.search(query)
    with pytest.raises(IntegrityError, match="seq 8: modified: segment bytes do not match "
                       "checkpoint 1"):
        build_export(built.store, built.keyring, rows, query, coverage=index.coverage(),
                     operator="t")
    index.close()


def test_events_jsonl_must_be_exactly_the_proven_entries(exported: tuple[Path, Path, int],
                                                         tmp_path: Path) -> None:
    """events.jsonl naming another actor and action fails, even with the manifest's
    digests updated to match (the manifest is unsigned context, not evidence); a line
    added fails; dropping events.jsonl altogether leaves a bundle that proves its proofs."""
    import hashlib

    from sealtrail.core.signing import Keyring

    bundle, keys, expected = exported
    keyring = Keyring.loads(keys.read_text())
    with zipfile.ZipFile(bundle) as z:
        events = z.read("events.jsonl")
        manifest = json.loads(z.read("manifest.json"))
    lines = events.splitlines(keepends=True)
    doc = json.loads(lines[0])
    doc["event"]["actor"]["id"], doc["event"]["action"] = "someone-else", "approve"
    from sealtrail.core.canonical import canonical_json

    forged = canonical_json(doc) + b"\n" + b"".join(lines[1:])
    manifest["files"]["events.jsonl"] = hashlib.sha256(forged).hexdigest()
    altered = rewrite(bundle, {"events.jsonl": forged,
                               "manifest.json": json.dumps(manifest).encode()})
    result = verify_export(altered, keyring)
    assert not result.ok and result.count == expected
    assert result.problems == ["events.jsonl: line 1 is not the entry "
                               + sorted(n for n in zipfile.ZipFile(bundle).namelist()
                                        if n.startswith("proofs/"))[0] + " proves "
                               "(events.jsonl must hold exactly the proven entries)"]
    extra = events + lines[0]
    manifest["files"]["events.jsonl"] = hashlib.sha256(extra).hexdigest()
    added = verify_export(rewrite(bundle, {"events.jsonl": extra,
                                           "manifest.json": json.dumps(manifest).encode()}),
                          keyring)
    assert any("holds more than" in p for p in added.problems)
    del manifest["files"]["events.jsonl"]
    dropped = verify_export(rewrite(bundle, {"events.jsonl": None,
                                             "manifest.json": json.dumps(manifest).encode()}),
                            keyring)
    assert dropped.ok and not dropped.events_checked and dropped.count == expected
    proc = sealtrail(tmp_path, "verify-export", bundle, "--keys", keys)
    assert "events.jsonl is exactly the proven entries" in proc.stdout
    assert "unsigned context (the manifest; not evidence)" in proc.stdout


def test_a_bundle_with_no_proof_fails(exported: tuple[Path, Path, int], tmp_path: Path) -> None:
    """An empty bundle (every proof removed, the manifest made to agree) proves nothing and
    fails: exit 1."""
    bundle, keys, _ = exported
    with zipfile.ZipFile(bundle) as z:
        names = z.namelist()
        manifest = json.loads(z.read("manifest.json"))
    manifest["count"], manifest["files"] = 0, {}
    empty = rewrite(bundle, {**{n: None for n in names if n != "README.txt"},
                             "manifest.json": json.dumps(manifest).encode()})
    out = tmp_path / "empty.zip"
    out.write_bytes(empty)
    proc = sealtrail(tmp_path, "verify-export", out, "--keys", keys)
    assert proc.returncode == 1, proc.stdout
    assert "the bundle holds no proof: it proves nothing" in proc.stdout


def test_an_export_of_batch_sealed_entries_holds_v2_proofs(tmp_path: Path) -> None:
    """Record format 2 (entries signed by batch seals): every proof in the bundle is
    sealtrail-proof/v2 and the bundle verifies; altering a batch part fails it."""
    from sealtrail.core.canonical import canonical_json

    built = build_archive(tmp_path, chains=2, segments=2, records=7, batch=3)
    index = open_index(str(tmp_path / "i.sqlite"))
    rebuild_index(ArchiveSource(built.store, built.keyring), index)
    query = parse_query("actor:user-3")
    rows = index.search(query)
    data, result = build_export(built.store, built.keyring, rows, query,
                                coverage=index.coverage(), operator="t")
    index.close()
    expected = sum(1 for c in built.chain_ids for r in built.records[c]
                   if r["event"] and r["event"]["actor"]["id"] == "user-3")
    assert result.count == expected > 1
    checked = verify_export(data, built.keyring)
    assert checked.ok, checked.problems
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(data)
    with zipfile.ZipFile(bundle) as z:
        proofs = sorted(n for n in z.namelist() if n.startswith("proofs/"))
        docs = [json.loads(z.read(n)) for n in proofs]
    assert len(docs) == expected
    assert {d["format"] for d in docs} == {"sealtrail-proof/v2"}
    docs[0]["batch"]["seal"]["ingested_at"] += 1
    altered = verify_export(rewrite(bundle, {proofs[0]: canonical_json(docs[0])}),
                            built.keyring)
    assert not altered.ok and any(p.startswith(proofs[0]) and "batch seal" in p
                                  for p in altered.problems)
