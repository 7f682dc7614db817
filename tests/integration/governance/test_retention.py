"""Retention classes (G5): dates per class, the report, purge, lifecycle rules, and that no
code path shortens retention even where the server (moto) would accept it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.compliance import CHAIN, KEYRING, ChainFeeder, age_sidecars, policy, writer
from helpers.moto_server import make_locked_bucket, moto_s3_server, raw_client
from helpers.paths import REPO

from sealtrail.archive import Retention, RetentionError, open_store
from sealtrail.archive._s3 import CLASS_TAG, S3Store
from sealtrail.cli.main import main
from sealtrail.config import Settings
from sealtrail.core import layout
from sealtrail.errors import ConfigError
from sealtrail.governance.holds import HoldSelector, apply_hold
from sealtrail.governance.retention import (
    RetentionClass,
    RetentionPolicy,
    add_years,
    lifecycle_configuration,
    purge,
    report,
)
from sealtrail.verify import verify_archive

NOW = datetime.now(UTC)


def _close(a: datetime, b: datetime, seconds: int = 120) -> bool:
    return abs((a - b).total_seconds()) <= seconds


def test_event_types_map_to_the_longest_matching_class() -> None:
    """An event type gets the longest class among matching patterns, unmapped ones and
    rejections the default class."""
    pol = policy()
    assert pol.class_for("payment.capture").name == "pci_dss"
    assert pol.class_for("phi.read").name == "hipaa"
    assert pol.class_for("ledger.card").name == "sox"  # matches sox and pci_dss: sox is longer
    assert pol.class_for("auth.login").name == "default"
    assert pol.class_for(None).name == "default"
    assert pol.class_for_records([{"event": {"event_type": "payment.x"}},
                                  {"event": {"event_type": "phi.y"}},
                                  {"event": None}]).name == "hipaa"


def test_years_are_calendar_years() -> None:
    """'6y' means six calendar years; 29 February rolls to 1 March in a non-leap year."""
    start = datetime(2024, 2, 29, 12, 0, 0, tzinfo=UTC)
    assert RetentionClass.parse("hipaa", "6y").until(start) == datetime(2030, 3, 1, 12,
                                                                         tzinfo=UTC)
    assert add_years(datetime(2024, 5, 1, tzinfo=UTC), 7) == datetime(2031, 5, 1, tzinfo=UTC)
    assert RetentionClass.parse("pci", "365").until(start) == start + timedelta(days=365)


@pytest.mark.parametrize("changes, message", [
    ({"retention_classes": "pci=12m"}, "not Nd or Ny"),
    ({"retention_classes": "pci=0d"}, "positive duration"),
    ({"retention_classes": "pci=1d,pci=2d"}, "defined twice"),
    ({"retention_map": "payment.*=nope"}, "undefined class"),
    ({"retention_map": "payment.*"}, "not name=value"),
])
def test_bad_retention_settings_are_refused(changes: dict[str, str], message: str) -> None:
    """Malformed classes or mappings are a configuration error naming the problem."""
    with pytest.raises(ConfigError, match=message):
        RetentionPolicy.from_settings(Settings(**changes))  # type: ignore[arg-type]


def test_retention_dates_match_classes(tmp_path: Path) -> None:
    """Each segment and its checkpoint are retained until now + the longest class of the
    events they hold, in COMPLIANCE mode, with the class recorded."""
    now = datetime.now(UTC)  # the writes below happen within seconds of it
    store = open_store(tmp_path / "a")
    feed = ChainFeeder(writer(store))
    feed.segment(["auth.login"])
    feed.segment(["auth.login", "payment.capture"])
    feed.segment(["payment.capture", "phi.read"])
    feed.segment(["phi.read", "ledger.post"])
    expected = [("default", timedelta(days=30)), ("pci_dss", timedelta(days=365)),
                ("hipaa", None), ("sox", None)]
    for index, (name, delta) in enumerate(expected):
        for key in (layout.segment_key(CHAIN, index), layout.checkpoint_key(CHAIN, index)):
            ret = store.retention(key)
            assert ret.mode == "COMPLIANCE"
            # the class is recorded on segments; checkpoints carry none (never expired)
            assert ret.retention_class == (name if key.endswith(".avro") else None)
            years = {"hipaa": 6, "sox": 7}.get(name)
            want = add_years(now, years) if years else now + (delta or timedelta())
            assert _close(ret.retain_until, want), (key, ret)


def test_governance_only_when_configured(tmp_path: Path) -> None:
    """retention_mode=GOVERNANCE is honoured; the default is COMPLIANCE."""
    assert RetentionPolicy.from_settings(Settings()).mode == "COMPLIANCE"
    store = open_store(tmp_path / "a")
    ChainFeeder(writer(store, policy("GOVERNANCE"))).segment(["payment.x"])
    assert store.retention(layout.segment_key(CHAIN, 0)).mode == "GOVERNANCE"


def test_report_counts_objects_and_expiry_per_class(tmp_path: Path) -> None:
    """The report says, per class, how many objects and events it holds and when they expire."""
    now = datetime.now(UTC)  # the writes below happen within seconds of it
    store = open_store(tmp_path / "a")
    feed = ChainFeeder(writer(store))
    feed.segment(["payment.a", "payment.b"])
    feed.segment(["ledger.post"])
    rows = {r.name: r for r in report(store, policy())}
    assert rows["pci_dss"].objects == 2 and rows["pci_dss"].events == 2
    assert rows["sox"].objects == 2 and rows["sox"].events == 1
    assert rows["hipaa"].objects == 0
    assert rows["sox"].latest_expiry is not None
    assert _close(rows["sox"].latest_expiry, add_years(now, 7))
    assert rows["pci_dss"].expired == 0


def test_purge_removes_only_expired_unheld_segments_and_verify_still_passes(
        tmp_path: Path) -> None:
    """Purge deletes every expired segment without a legal hold, keeps held ones and all
    checkpoints; verify then passes, reporting the purged entries, and still checks the rest."""
    root = tmp_path / "a"
    store = open_store(root)
    feed = ChainFeeder(writer(store))
    for _ in range(4):
        feed.segment(["payment.x", "payment.y"])
    held_at = feed.records[4]["event"]["occurred_at"]  # in segment 2
    apply_hold(store, "CASE-1", HoldSelector(held_at, held_at), policy=policy(),
               progress_dir=tmp_path / "progress", operator="tester")
    age_sidecars(root)  # the retention records say it has passed; the signed date has not
    assert purge(store).deleted == []
    later = datetime.now(UTC) + timedelta(days=366)  # pci_dss: 365 days, signed
    assert purge(store, dry_run=True, now=later).deleted == [layout.segment_key(CHAIN, i)
                                                             for i in (0, 1, 3)]
    result = purge(store, now=later)
    assert result.deleted == [layout.segment_key(CHAIN, i) for i in (0, 1, 3)]
    assert "CASE-1" in result.kept[CHAIN]
    assert store.exists(layout.segment_key(CHAIN, 2))
    assert all(store.exists(layout.checkpoint_key(CHAIN, i)) for i in range(4))
    later_us = int(later.timestamp() * 1_000_000)
    report_ = verify_archive(store, KEYRING, now_us=later_us)
    assert report_.ok, report_.to_json()
    assert (report_.chains[0].purged, report_.chains[0].entries) == (6, 2)
    # today, before the signed date, the same archive fails: those segments are missing
    today = verify_archive(store, KEYRING)
    assert [f.kind for f in today.chains[0].findings] == ["missing"]
    assert "signed retain-until" in today.chains[0].findings[0].message
    # a segment deleted while its checkpoint is still retained is missing, not purged
    fresh = open_store(tmp_path / "b")
    ChainFeeder(writer(fresh)).segment(["payment.x"])
    (tmp_path / "b" / layout.segment_key(CHAIN, 0)).unlink()
    assert [f.kind for f in verify_archive(fresh, KEYRING).chains[0].findings] == ["missing"]


def test_purge_keeps_everything_still_retained(tmp_path: Path) -> None:
    """Nothing whose retention has not passed is deleted (dry run and real run alike)."""
    store = open_store(tmp_path / "a")
    ChainFeeder(writer(store)).segment(["auth.login"])
    assert purge(store, dry_run=True).deleted == []
    assert purge(store).deleted == []
    assert store.exists(layout.segment_key(CHAIN, 0))


def test_lifecycle_configuration_expires_by_class_tag() -> None:
    """The S3 lifecycle rules select objects by their class tag and never expire a class
    before its duration."""
    doc = lifecycle_configuration(policy(), "tenant-a")
    rules = {r["ID"]: r for r in doc["Rules"]}
    sox = rules["sealtrail-expire-sox"]
    assert sox["Filter"]["And"]["Tags"] == [{"Key": CLASS_TAG, "Value": "sox"}]
    assert sox["Filter"]["And"]["Prefix"] == "tenant-a/chains/"
    assert sox["Expiration"]["Days"] > 7 * 365 + 2
    assert rules["sealtrail-expire-pci_dss"]["Expiration"]["Days"] >= 366
    tf = REPO / "deploy" / "terraform" / "retention.tf"
    text = tf.read_text()
    for name in ("pci_dss", "hipaa", "sox"):
        assert name in text


# -- S3 (moto) ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    with moto_s3_server() as url:
        make_locked_bucket(url, "retention")
        yield url


def _s3_store(endpoint: str, prefix: str) -> S3Store:
    return S3Store("retention", prefix, endpoint_url=endpoint,
                   client=_client(endpoint))


def _client(endpoint: str) -> Any:
    return raw_client(endpoint)


@pytest.mark.s3
def test_s3_objects_carry_class_tag_lock_and_checksum(s3: str) -> None:
    """On S3 each object is written under COMPLIANCE lock until its class's date, tagged
    with its class, with a stored SHA-256 checksum."""
    now = datetime.now(UTC)  # the writes below happen within seconds of it
    store = _s3_store(s3, "tagged")
    ChainFeeder(writer(store)).segment(["phi.read"])
    key = layout.segment_key(CHAIN, 0)
    ret = store.retention(key)
    assert ret.mode == "COMPLIANCE" and ret.retention_class == "hipaa"
    assert _close(ret.retain_until, add_years(now, 6))
    head = _client(s3).head_object(Bucket="retention", Key=f"tagged/{key}",
                                   ChecksumMode="ENABLED")
    assert head.get("ChecksumSHA256")


@pytest.mark.s3
def test_no_code_path_shortens_retention_even_where_moto_accepts(s3: str, tmp_path: Path) -> None:
    """moto accepts a shortened COMPLIANCE retention; sealtrail refuses it in extend, in a
    re-put of the same object with a shorter class, and purge deletes nothing on S3."""
    store = _s3_store(s3, "noshorten")
    ChainFeeder(writer(store)).segment(["ledger.post"])
    key = layout.segment_key(CHAIN, 0)
    before = store.retention(key).retain_until
    shorter = NOW + timedelta(days=2)
    with pytest.raises(RetentionError, match="shorten"):
        store.extend_retention(key, shorter)
    # a re-put of identical bytes with a shorter retention is a no-op, not a shortening
    data = store.get(key)
    store.put(key, data, retention=Retention("COMPLIANCE", shorter, ()))
    assert store.retention(key).retain_until == before
    with pytest.raises(RetentionError, match="enforces retention"):
        purge(store)
    # the server itself would have accepted the shortening (moto's leniency):
    raw = _client(s3)
    other = "noshorten/probe"
    raw.put_object(Bucket="retention", Key=other, Body=b"x", ObjectLockMode="COMPLIANCE",
                   ObjectLockRetainUntilDate=NOW + timedelta(days=30))
    raw.put_object_retention(Bucket="retention", Key=other, Retention={
        "Mode": "COMPLIANCE", "RetainUntilDate": shorter})
    assert raw.head_object(Bucket="retention", Key=other)[
        "ObjectLockRetainUntilDate"].date() == shorter.date()
    assert store.retention(key).retain_until == before


@pytest.mark.s3
def test_cli_purge_on_s3_prints_lifecycle_and_deletes_nothing(
        s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`retention purge` on an S3 archive prints the lifecycle JSON and leaves objects alone."""
    store = _s3_store(s3, "cli")
    ChainFeeder(writer(store)).segment(["payment.x"])
    monkeypatch.setenv("SEALTRAIL_S3_ENDPOINT_URL", s3)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("SEALTRAIL_HOME", str(tmp_path / "home"))
    assert main(["retention", "purge", "--archive", "s3://retention/cli"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["Rules"]
    assert "nothing deleted" in out.err
    assert store.exists(layout.segment_key(CHAIN, 0))
    assert main(["retention", "report", "--archive", "s3://retention/cli", "--json"]) == 0
    rows = {r["class"]: r for r in json.loads(capsys.readouterr().out)["classes"]}
    assert rows["pci_dss"]["objects"] == 2


def test_classification_entries_choose_a_class_with_event_types() -> None:
    """classification:NAME entries (any case) map events of a classification, and the
    longest of the type's and the classification's classes wins; the default map keeps
    PHI six years."""
    from sealtrail.config import Settings
    from sealtrail.governance.retention import RetentionPolicy

    pol = RetentionPolicy.from_settings(Settings(
        retention_map="payment.*=pci_dss,classification:phi=hipaa,classification:PII=sox"))
    assert pol.class_for("record.read", "PHI").name == "hipaa"
    assert pol.class_for("payment.capture", "PHI").name == "hipaa"  # hipaa 6y > pci 365d
    assert pol.class_for("payment.capture", "INTERNAL").name == "pci_dss"
    assert pol.class_for("record.read", "PII").name == "sox"
    assert pol.class_for("record.read", None).name == "default"
    records = [{"event": {"event_type": "record.read", "classification": "INTERNAL"}},
               {"event": {"event_type": "record.read", "classification": "PHI"}}]
    assert pol.class_for_records(records).name == "hipaa"
    default = RetentionPolicy.from_settings(Settings())
    assert default.class_for("record.read", "PHI").name == "hipaa"
    assert default.class_for("record.read", "PCI").name == "pci_dss"
    with pytest.raises(ConfigError, match="names no classification"):
        RetentionPolicy.from_settings(Settings(retention_map="classification:SECRET=sox"))
