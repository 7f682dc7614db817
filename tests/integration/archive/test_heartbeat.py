"""Heartbeat checkpoints and what verify checks beyond the chain: staleness of the newest
checkpoint, and on S3 each object's lock (mode, retain-until per class, legal holds)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.archive_builder import T0, forge_checkpoint, write_object
from helpers.compliance import CHAIN, KEYRING, SIGNER, ChainFeeder, policy, writer
from helpers.moto_server import make_locked_bucket, moto_s3_server, raw_client

from sealtrail.archive import open_store
from sealtrail.archive._s3 import S3Store
from sealtrail.config import Settings
from sealtrail.core import layout
from sealtrail.core.checkpoint import SignedCheckpoint
from sealtrail.governance.holds import HoldSelector, apply_hold
from sealtrail.verify import verify_archive

NOW_US = int(datetime.now(UTC).timestamp() * 1e6)


def _kinds(report: object) -> list[str]:
    chains = report.chains
    return [f.kind for c in chains for f in c.findings] + [
        f.kind for f in report.findings]


def test_heartbeat_checkpoint_is_written_and_verifies(tmp_path: Path) -> None:
    """An idle chain gets an empty signed checkpoint (first_seq = last_seq + 1, no segment)
    that verify accepts; segments after it still verify."""
    store = open_store(tmp_path / "a")
    w = writer(store)
    feed = ChainFeeder(w)
    feed.segment(["auth.login", "auth.login"])
    assert w.heartbeat(0.0) == 1
    hb = SignedCheckpoint.from_bytes(store.get(layout.checkpoint_key(CHAIN, 1))).checkpoint
    assert (hb.first_seq, hb.last_seq, hb.size, hb.segment_key) == (2, 1, 0, "")
    assert hb.head_hash == feed.records[-1]["entry_hash"]
    assert not store.exists(layout.segment_key(CHAIN, 1))
    assert w.heartbeat(3600.0) == 0  # not idle long enough
    feed.segment(["auth.login"])
    report = verify_archive(store, KEYRING)
    assert report.ok, report.to_json()
    chain = report.chains[0]
    assert (chain.segments, chain.heartbeats, chain.entries, chain.head_seq) == (2, 1, 3, 2)
    assert store.exists(layout.segment_key(CHAIN, 2))


def test_a_restarted_writer_continues_after_a_heartbeat(tmp_path: Path) -> None:
    """A new SegmentWriter picks up the chain after a trailing heartbeat (head restated)."""
    store = open_store(tmp_path / "a")
    feed = ChainFeeder(writer(store))
    feed.segment(["auth.login"])
    feed.writer.heartbeat(0.0)
    feed.writer = writer(store)
    feed.segment(["auth.login"])
    assert verify_archive(store, KEYRING).ok


def test_forged_heartbeat_that_moves_the_head_is_flagged(tmp_path: Path) -> None:
    """A validly signed heartbeat that restates another head is reported as modified."""
    store = open_store(tmp_path / "a")
    w = writer(store)
    ChainFeeder(w).segment(["auth.login"])
    w.heartbeat(0.0)
    path = tmp_path / "a" / layout.checkpoint_key(CHAIN, 1)
    original = SignedCheckpoint.from_bytes(path.read_bytes())
    forged = dataclasses.replace(original.checkpoint, head_hash=b"\x07" * 32)
    write_object(path, forge_checkpoint(SignedCheckpoint(forged, b"", b""), SIGNER))
    report = verify_archive(store, KEYRING)
    assert _kinds(report) == ["modified"]
    assert "heartbeat" in report.chains[0].findings[0].message


def test_segment_at_a_heartbeat_index_is_unreferenced(tmp_path: Path) -> None:
    """A segment file slipped in at a heartbeat's index is covered by no checkpoint."""
    root = tmp_path / "a"
    store = open_store(root)
    w = writer(store)
    ChainFeeder(w).segment(["auth.login"])
    w.heartbeat(0.0)
    write_object(root / layout.segment_key(CHAIN, 1),
                 (root / layout.segment_key(CHAIN, 0)).read_bytes())
    assert _kinds(verify_archive(store, KEYRING)) == ["unreferenced"]


def test_verify_reports_staleness_and_max_age_fails(tmp_path: Path) -> None:
    """verify reports how old the newest checkpoint is; older than max_age is *stale*."""
    store = open_store(tmp_path / "a")
    ChainFeeder(writer(store)).segment(["auth.login"])  # created_at near T0 (2024)
    fresh = verify_archive(store, KEYRING, now_us=T0 + 60_000_000, max_age_seconds=3600)
    assert fresh.ok and fresh.chains[0].age_seconds is not None
    assert 55 < fresh.chains[0].age_seconds < 65
    stale = verify_archive(store, KEYRING, now_us=T0 + 7200 * 1_000_000,
                           max_age_seconds=3600)
    assert _kinds(stale) == ["stale", "stale"]  # the chain's newest checkpoint, the index
    assert "7200 s old" in stale.chains[0].findings[0].message
    assert "index (0) is 7200 s old" in stale.findings[0].message


def test_archiver_writes_heartbeats_for_idle_owned_chains(settings: Settings,
                                                           tmp_path: Path) -> None:
    """The Kafka archiver, with no records arriving, writes a heartbeat for a chain of a
    partition it owns, at the configured interval."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from sealtrail.consumers.archiver import Archiver

    s = dataclasses.replace(settings, heartbeat_seconds=1.0)
    store = open_store(s.archive)
    chain = f"{s.raw_topic}.0.00000000000000cc"
    ChainFeeder(writer(store), chain).segment(["auth.login"])
    archiver = Archiver(s, store=store, signer=SIGNER,
                        registry=SchemaRegistryClient({"url": s.registry_url}))
    thread = threading.Thread(target=archiver.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            if len(store.list(f"{layout.CHAINS}{chain}/checkpoints/")) >= 2:
                break
            time.sleep(0.2)
    finally:
        archiver.stop()
        thread.join(20)
    report = verify_archive(store, KEYRING)
    assert report.ok, report.to_json()
    assert report.chains[0].heartbeats >= 1


# -- lock checks on S3 (moto) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    with moto_s3_server() as url:
        make_locked_bucket(url, "locks")
        yield url


def _store(endpoint: str, prefix: str) -> S3Store:
    return S3Store("locks", prefix, endpoint_url=endpoint, client=raw_client(endpoint))


@pytest.mark.s3
def test_verify_checks_locks_and_accepts_a_well_protected_archive(s3: str,
                                                                  tmp_path: Path) -> None:
    """An archive written by sealtrail, with a hold applied, passes the lock checks."""
    store = _store(s3, "good")
    w = writer(store)
    feed = ChainFeeder(w)
    feed.segment(["phi.read"])
    feed.segment(["payment.x"])
    w.heartbeat(0.0)
    t = feed.records[0]["event"]["occurred_at"]
    apply_hold(store, "CASE", HoldSelector(t, t), policy=policy(),
               progress_dir=tmp_path / "p", operator="t")
    report = verify_archive(store, KEYRING, locks=policy())
    assert report.ok, report.to_json()
    assert report.locks_checked == 5


@pytest.mark.s3
def test_verify_flags_an_object_written_without_a_lock(s3: str) -> None:
    """A segment whose current version carries no Object Lock (same bytes, written around
    sealtrail) fails the lock check by name. moto answers GetObjectRetention for such a
    version with an HTTP 500 (AWS answers NoSuchObjectLockConfiguration), and verify says
    that the lock could not be read and why, rather than claiming "no retention"."""
    store = _store(s3, "nolock")
    ChainFeeder(writer(store)).segment(["auth.login"])
    key = layout.segment_key(CHAIN, 0)
    raw_client(s3).put_object(Bucket="locks", Key=f"nolock/{key}", Body=store.get(key))
    report = verify_archive(store, KEYRING, locks=policy())
    findings = report.chains[0].findings
    assert [(f.kind, f.segment) for f in findings] == [("lock-unreadable", key)]
    assert "could not be read" in findings[0].message and "500" in findings[0].message


def test_lock_findings_tell_no_retention_from_a_read_error(tmp_path: Path) -> None:
    """An object with no retention record is *unlocked*; one whose retention cannot be read
    (a server or permission error) is *lock-unreadable*, with the error, never "unlocked"."""
    from sealtrail.archive import ArchiveError

    root = tmp_path / "a"
    store = open_store(root)
    ChainFeeder(writer(store)).segment(["auth.login"])
    seg, cp = layout.segment_key(CHAIN, 0), layout.checkpoint_key(CHAIN, 0)
    (root / "_retention" / f"{seg}.json").unlink()
    report = verify_archive(store, KEYRING, locks=policy())
    assert [(f.kind, f.segment) for f in report.chains[0].findings] == [("unlocked", seg)]
    real = store.retention

    def flaky(key: str):  # type: ignore[no-untyped-def]
        if key == cp:
            raise ArchiveError("S3 could not read the Object Lock state: 503 SlowDown")
        return real(key)

    store.retention = flaky  # type: ignore[method-assign]
    report = verify_archive(store, KEYRING, locks=policy())
    kinds = {f.segment: (f.kind, f.message) for f in report.chains[0].findings}
    assert kinds[seg][0] == "unlocked"
    assert kinds[cp][0] == "lock-unreadable" and "503 SlowDown" in kinds[cp][1]


@pytest.mark.s3
def test_verify_flags_under_retained_and_weaker_mode(s3: str) -> None:
    """Objects retained shorter than their class requires, or in GOVERNANCE mode when
    COMPLIANCE is configured, are reported as under-retained by name."""
    store = _store(s3, "short")
    ChainFeeder(writer(store, policy("GOVERNANCE"))).segment(["ledger.post"])  # sox, 7 years
    weak = verify_archive(store, KEYRING, locks=policy())
    assert {f.kind for f in weak.chains[0].findings} == {"under-retained"}
    assert "GOVERNANCE" in weak.chains[0].findings[0].message
    short = _store(s3, "short2")
    one_day = dataclasses.replace(policy(), rules=())  # everything in the 30-day default
    ChainFeeder(writer(short, one_day)).segment(["ledger.post"])
    report = verify_archive(short, KEYRING, locks=policy())
    findings = report.chains[0].findings
    assert [f.kind for f in findings] == ["under-retained", "under-retained"]
    assert {f.segment for f in findings} == {layout.segment_key(CHAIN, 0),
                                             layout.checkpoint_key(CHAIN, 0)}
    assert "class sox requires" in findings[0].message


@pytest.mark.s3
def test_verify_flags_a_missing_legal_hold(s3: str, tmp_path: Path) -> None:
    """When a case manifest lists an object whose legal hold was switched off at the server,
    verify reports hold-missing for it."""
    store = _store(s3, "hold")
    feed = ChainFeeder(writer(store))
    feed.segment(["auth.login"])
    t = feed.records[0]["event"]["occurred_at"]
    apply_hold(store, "CASE-9", HoldSelector(t, t), policy=policy(),
               progress_dir=tmp_path / "p", operator="t")
    key = layout.segment_key(CHAIN, 0)
    raw_client(s3).put_object_legal_hold(Bucket="locks", Key=f"hold/{key}",
                                         LegalHold={"Status": "OFF"})
    report = verify_archive(store, KEYRING, locks=policy())
    assert [(f.kind, f.segment) for f in report.findings] == [("hold-missing", key)]
    assert not report.ok


@pytest.mark.s3
def test_verify_cli_on_s3_checks_locks_by_default(s3: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`sealtrail verify s3://...` checks locks without being asked and exits 1 on an
    object whose lock does not check out, naming it (moto answers 500 for an unlocked
    version: see test_verify_flags_an_object_written_without_a_lock)."""
    from helpers.archive_builder import write_keyring

    from sealtrail.cli.main import main

    store = _store(s3, "cli")
    ChainFeeder(writer(store)).segment(["auth.login"])
    key = layout.checkpoint_key(CHAIN, 0)
    raw_client(s3).put_object(Bucket="locks", Key=f"cli/{key}", Body=store.get(key))
    for name, value in {"SEALTRAIL_S3_ENDPOINT_URL": s3, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing",
                        "SEALTRAIL_HOME": str(tmp_path / "home"),
                        "SEALTRAIL_RETENTION_DAYS": "30"}.items():
        monkeypatch.setenv(name, value)
    keys = write_keyring(tmp_path / "public.json", KEYRING)
    assert main(["verify", "s3://locks/cli", "--keys", str(keys)]) == 1
    out = capsys.readouterr().out
    assert "lock-unreadable" in out and key in out and "500" in out
    assert main(["verify", "s3://locks/cli", "--keys", str(keys), "--no-locks"]) == 0
