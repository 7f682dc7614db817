"""`sealtrail verify` as an auditor runs it: a subprocess of the installed command.

Exit codes: 0 intact, 1 the evidence does not check out, 2 usage or I/O error. Every
attack of test_verify_tamper.ATTACKS must exit 1 and name the chain, segment and seq.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.archive_builder import build_archive, keyring_of, signer, write_keyring
from helpers.cli import sealtrail_bare as sealtrail
from helpers.tamper import ATTACKS, check_finding, run_attack

from sealtrail.core import layout


def test_intact_archive_exits_0(tmp_path: Path) -> None:
    """An intact archive exits 0 and says VERIFIED with the chain and entry counts."""
    built = build_archive(tmp_path)
    proc = sealtrail(tmp_path, "verify", built.root, "--keys", built.keyring_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for chain_id in built.chain_ids:
        assert (f"OK     chain {chain_id}: 12 entries (10 events, 2 rejections) in 3 segments; "
                f"head seq 11") in proc.stdout
    assert "VERIFIED: 2 chains, 24 entries, 0 broken" in proc.stdout


def test_intact_archive_json(tmp_path: Path) -> None:
    """`--json` on an intact archive parses, with ok=true and per-chain counts."""
    built = build_archive(tmp_path)
    proc = sealtrail(tmp_path, "verify", "--json", built.root.as_uri(), "--keys",
                     built.keyring_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True
    assert doc["archive"] == built.root.as_uri()
    assert [c["chain_id"] for c in doc["chains"]] == built.chain_ids
    for chain in doc["chains"]:
        assert chain["ok"] is True and chain["findings"] == []
        assert (chain["segments"], chain["entries"], chain["events"]) == (3, 12, 10)
        assert chain["rejections"] == {"UNKNOWN_SCHEMA": 2}
        assert chain["head_seq"] == 11
        assert chain["head_hash"] == built.records[chain["chain_id"]][-1]["entry_hash"].hex()


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_exits_1_naming_chain_segment_seq(tmp_path: Path, name: str) -> None:
    """Each attack exits 1; text and JSON output name the chain, segment, seq and kind."""
    built, expected = run_attack(name, tmp_path)
    proc = sealtrail(tmp_path, "verify", built.root, "--keys", built.keyring_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED: " in proc.stdout
    for want in expected:
        chain_id = built.chain_ids[want.chain]
        segment = layout.segment_key(chain_id, want.segment)
        assert f"BROKEN chain {chain_id}:" in proc.stdout
        lines = [line for line in proc.stdout.splitlines()
                 if f"chain {chain_id}, segment {segment}, seq " in line]
        assert len(lines) == 1, proc.stdout
        assert f": {want.kind}: " in lines[0]
        if want.seq is not None:
            assert f", seq {want.seq}: " in lines[0]

    proc = sealtrail(tmp_path, "verify", "--json", built.root, "--keys", built.keyring_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False
    chains = {c["chain_id"]: c for c in doc["chains"]}
    for want in expected:
        chain = chains[built.chain_ids[want.chain]]
        assert chain["ok"] is False and len(chain["findings"]) == 1
        check_finding(built, chain["findings"][0], want)
    untouched = set(chains) - {built.chain_ids[w.chain] for w in expected}
    assert all(chains[c]["ok"] for c in untouched)


def test_tail_truncation_exits_1_naming_the_index(tmp_path: Path) -> None:
    """Deleting the newest segment and checkpoint of a chain exits 1: the signed archive
    index lists the removed checkpoint (rollback). The output says what was checked."""
    built = build_archive(tmp_path)
    built.segment_path(1, 2).unlink()
    built.checkpoint_path(1, 2).unlink()
    proc = sealtrail(tmp_path, "verify", built.root, "--keys", built.keyring_path)
    assert proc.returncode == 1, proc.stdout
    assert f"chain {built.chain_ids[1]}, segment {built.checkpoint_key(1, 2)}, seq 8: " \
           "rollback: " in proc.stdout
    assert "signed archive index 2 recorded checkpoint 2" in proc.stdout
    assert "checked: 5 signed checkpoints and 5 segments" in proc.stdout
    assert "object locks: NOT checked (a local directory does not enforce" in proc.stdout


def test_missing_archive_exits_2(tmp_path: Path) -> None:
    """A path with no archive exits 2 and says so."""
    built = build_archive(tmp_path)
    missing = tmp_path / "no-such-archive"
    proc = sealtrail(tmp_path, "verify", missing, "--keys", built.keyring_path)
    assert proc.returncode == 2
    assert f"no archive at {missing}" in proc.stderr


def test_missing_keyring_exits_2(tmp_path: Path) -> None:
    """A keyring path that does not exist exits 2 naming it."""
    built = build_archive(tmp_path)
    proc = sealtrail(tmp_path, "verify", built.root, "--keys", tmp_path / "nope.json")
    assert proc.returncode == 2
    assert "cannot read keyring" in proc.stderr and "nope.json" in proc.stderr


MALFORMED_KEYRINGS = {
    "not-json": ("{not json", "not valid JSON"),
    "wrong-format": (json.dumps({"format": "pgp", "keys": []}), "not a sealtrail keyring"),
    "no-keys": (json.dumps({"format": "sealtrail-keyring/v1", "keys": []}), "holds no keys"),
    "bad-base64": (json.dumps({"format": "sealtrail-keyring/v1", "keys": [
        {"key_id": "k", "algorithm": "ed25519", "public_key": "@@@"}]}), "entry 0"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_KEYRINGS))
def test_malformed_keyring_fails_with_a_clear_message(tmp_path: Path, case: str) -> None:
    """A malformed keyring fails before anything is verified, with a one-line reason."""
    built = build_archive(tmp_path, chains=1, segments=1)
    text, reason = MALFORMED_KEYRINGS[case]
    built.keyring_path.write_text(text)
    proc = sealtrail(tmp_path, "verify", built.root, "--keys", built.keyring_path)
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert proc.stderr.startswith("sealtrail: ") and reason in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_malformed_keyring_exits_2(tmp_path: Path) -> None:
    """A malformed keyring is a usage error: exit 2, not 1 (1 means tampered evidence)."""
    built = build_archive(tmp_path, chains=1, segments=1)
    built.keyring_path.write_text("{not json")
    proc = sealtrail(tmp_path, "verify", built.root, "--keys", built.keyring_path)
    assert proc.returncode == 2


def test_empty_directory_exits_1_with_no_chains(tmp_path: Path) -> None:
    """An empty archive directory is not a verified archive: exit 1, "no chains"."""
    empty = tmp_path / "empty"
    empty.mkdir()
    keyring = write_keyring(tmp_path / "public.json", keyring_of(signer("sealer-1")))
    proc = sealtrail(tmp_path, "verify", empty, "--keys", keyring)
    assert proc.returncode == 1
    assert "no chains" in proc.stdout
    proc = sealtrail(tmp_path, "verify", "--json", empty, "--keys", keyring)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["ok"] is False and json.loads(proc.stdout)["chains"] == []


def test_keys_in_the_archive_are_not_trusted(tmp_path: Path) -> None:
    """A keyring copied into the archive changes nothing: only --keys is trusted (G4)."""
    built = build_archive(tmp_path)
    write_keyring(built.keyring_path, keyring_of(signer("someone-else")))
    planted = built.root / "keys" / "public.json"
    write_keyring(planted, built.keyring)
    shutil.copy(planted, built.root / "public.json")
    proc = sealtrail(tmp_path, "verify", built.root, "--keys", built.keyring_path)
    assert proc.returncode == 1
    assert proc.stdout.count(", seq 0: unknown-key: checkpoint 0: unknown key") == 2


def _prom(text: str) -> dict[str, float]:
    """Prometheus text format as {'name{labels}': value}, comments dropped."""
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def test_metrics_file_reports_a_pass_then_failures_by_kind(tmp_path: Path) -> None:
    """--metrics-file writes the verify result for the textfile collector: ok=1 for an
    intact archive, then ok=0 with the broken chain and the finding's kind after tampering."""
    built, expected = run_attack("flip_byte_middle", tmp_path / "bad")
    good = build_archive(tmp_path / "good")
    metrics = tmp_path / "textfile" / "sealtrail_verify.prom"
    assert sealtrail(tmp_path, "verify", good.root, "--keys", good.keyring_path,
                     "--metrics-file", metrics).returncode == 0
    ok = _prom(metrics.read_text())
    archive = f'archive="{good.root}"'
    assert ok[f"sealtrail_verify_ok{{{archive}}}"] == 1
    assert ok[f"sealtrail_verify_broken_chains{{{archive}}}"] == 0
    assert ok[f"sealtrail_verify_chains{{{archive}}}"] == len(good.chain_ids)
    assert not [k for k in ok if k.startswith("sealtrail_verify_failures")]
    assert sealtrail(tmp_path, "verify", built.root, "--keys", built.keyring_path,
                     "--metrics-file", metrics).returncode == 1
    bad = _prom(metrics.read_text())
    archive = f'archive="{built.root}"'
    assert bad[f"sealtrail_verify_ok{{{archive}}}"] == 0
    assert bad[f"sealtrail_verify_broken_chains{{{archive}}}"] == 1
    kind = expected[0].kind
    assert bad[f'sealtrail_verify_failures{{{archive},kind="{kind}"}}'] == 1
    assert not list(metrics.parent.glob(".sealtrail-verify-*"))  # written atomically


def test_workers_give_the_same_report_as_one_process(tmp_path: Path) -> None:
    """Chains verified in several processes: the same JSON report, in the same order, as
    one process, for an archive with a broken chain among intact ones."""
    built, _ = run_attack("flip_byte_middle", tmp_path)
    reports = []
    for workers in ("1", "3"):
        proc = sealtrail(tmp_path, "verify", "--json", "--workers", workers, built.root,
                         "--keys", built.keyring_path)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        report = json.loads(proc.stdout)
        for chain in report["chains"]:
            chain.pop("age_seconds")  # measured against the time of each run
        reports.append(report)
    assert reports[0] == reports[1]
    assert [c["ok"] for c in reports[0]["chains"]].count(False) == 1
    assert len(reports[0]["chains"]) > 1
