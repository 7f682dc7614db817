"""Legal holds by case (G5): what they freeze, what release leaves, resumable runs,
manifests, the audit event of each action, and deletion blocked after retention passed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.compliance import CHAIN, CHAIN_B, HOUR_US, ChainFeeder, policy, writer
from helpers.moto_server import make_locked_bucket, moto_s3_server, raw_client

from sealtrail.archive import ArchiveStore, Retention, RetentionError, open_store
from sealtrail.archive._s3 import S3Store
from sealtrail.cli.main import main
from sealtrail.core import layout
from sealtrail.core.times import parse_time
from sealtrail.governance.holds import (
    HoldSelector,
    active_holds,
    apply_hold,
    list_holds,
    release_hold,
)
from sealtrail.runtime import dev

T = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z


def _archive(store: ArchiveStore) -> None:
    """Chain A: 4 segments, events hourly from T, actors alternate; chain B: 2 segments
    of carol's events 1000 hours later."""
    w = writer(store)
    a = ChainFeeder(w)
    for i in range(4):
        a.segment(["payment.x", "auth.login"], actor="alice" if i % 2 else "bob")
    b = ChainFeeder(w, CHAIN_B, partition=1)
    for _ in range(2):
        b.segment(["phi.read"], actor="carol", resource="patient-7",
                  occurred_at=T + 1000 * HOUR_US)


def _apply(store: ArchiveStore, tmp: Path, case: str, sel: HoldSelector, **kw: Any) -> Any:
    return apply_hold(store, case, sel, policy=policy(), progress_dir=tmp / "progress",
                      operator="tester", **kw)


def _held(store: ArchiveStore, key: str) -> tuple[str, ...]:
    return store.retention(key).legal_holds


def _units(chain: str, *indices: int) -> set[str]:
    return {k for i in indices for k in (layout.segment_key(chain, i),
                                         layout.checkpoint_key(chain, i))}


def test_apply_holds_segments_and_checkpoints_of_matching_events(tmp_path: Path) -> None:
    """Every segment holding a matching event, and its checkpoint, gets the case's hold;
    nothing else does; a manifest listing them is written under retention."""
    store = open_store(tmp_path / "a")
    _archive(store)
    # chain A seqs 0..7 occur at T + (seq) h; alice owns segments 1 and 3
    sel = HoldSelector(T, T + 5 * HOUR_US, actor="alice")
    result = _apply(store, tmp_path, "CASE-A", sel)
    assert set(result.objects) == _units(CHAIN, 1)
    for key in store.list(layout.CHAINS):
        assert (_held(store, key) == ("CASE-A",)) == (key in result.objects), key
    assert result.manifest and result.manifest.startswith("holds/CASE-A-")
    manifest = json.loads(store.get(result.manifest))
    assert manifest["objects"] == sorted(result.objects) and manifest["case"] == "CASE-A"
    assert manifest["operator"] == "tester" and manifest["action"] == "apply"
    assert store.retention(result.manifest).retention_class == "sox"  # the longest class


def test_selector_by_resource_and_event_type(tmp_path: Path) -> None:
    """Resource (id or type:id) and event type (glob) narrow what a case holds."""
    store = open_store(tmp_path / "a")
    _archive(store)
    wide = HoldSelector(0, 2**62)
    by_resource = _apply(store, tmp_path, "R", HoldSelector(0, 2**62, resource="patient-7"))
    assert set(by_resource.objects) == _units(CHAIN_B, 0, 1)
    typed = _apply(store, tmp_path, "E", HoldSelector(0, 2**62, event_type="phi.*"))
    assert set(typed.objects) == _units(CHAIN_B, 0, 1)
    assert HoldSelector(0, 2**62, resource="patient_record:patient-7").matches(
        {"event": {"occurred_at": 1, "resource": {"type": "patient_record", "id": "patient-7"}}})
    assert not wide.matches({"event": None})


def test_release_of_one_case_leaves_the_others_hold(tmp_path: Path) -> None:
    """Releasing case A removes only A's holds: objects also held by B stay held by B."""
    store = open_store(tmp_path / "a")
    _archive(store)
    a = _apply(store, tmp_path, "A", HoldSelector(T, T + 3 * HOUR_US))  # segments 0, 1
    b = _apply(store, tmp_path, "B", HoldSelector(T + 2 * HOUR_US, T + 5 * HOUR_US))  # 1, 2
    assert set(a.objects) == _units(CHAIN, 0, 1) and set(b.objects) == _units(CHAIN, 1, 2)
    released = release_hold(store, "A", policy=policy(), progress_dir=tmp_path / "p",
                             operator="tester")
    assert set(released.objects) == _units(CHAIN, 0, 1)
    for key in _units(CHAIN, 0):
        assert _held(store, key) == ()
    for key in _units(CHAIN, 1, 2):
        assert _held(store, key) == ("B",)
    holds = active_holds(store)
    assert all(cases == {"B"} for cases in holds.values()) and set(holds) == _units(CHAIN, 1, 2)
    listed = {r["case"]: r for r in list_holds(store)}
    assert listed["A"]["status"] == "released" and listed["B"]["status"] == "active"
    assert listed["B"]["objects"] == 4


class _Interrupting:
    """An ArchiveStore proxy whose set_legal_hold fails after ``budget`` calls (a crash)."""

    def __init__(self, inner: ArchiveStore, budget: int) -> None:
        self._inner = inner
        self.budget = budget
        self.url = inner.url
        self.enforces_retention = inner.enforces_retention
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def set_legal_hold(self, key: str, case_id: str, on: bool) -> None:
        if self.budget <= 0:
            raise KeyboardInterrupt("interrupted")
        self.budget -= 1
        self.calls.append(key)
        self._inner.set_legal_hold(key, case_id, on)


def test_interrupted_hold_run_resumes_without_duplicates(tmp_path: Path) -> None:
    """A run interrupted half way resumes from its progress file: chains already scanned are
    not scanned again, the manifest lists each object once, and the progress file is gone."""
    store = open_store(tmp_path / "a")
    _archive(store)
    sel = HoldSelector(0, 2**62)
    flaky = _Interrupting(store, budget=5)
    with pytest.raises(KeyboardInterrupt):
        _apply(flaky, tmp_path, "C", sel)  # type: ignore[arg-type]
    progress = list((tmp_path / "progress").glob("*.json"))
    assert len(progress) == 1
    saved = json.loads(progress[0].read_text())
    assert saved["scanned"] and len(saved["held"]) == 4
    with pytest.raises(Exception, match="another selector"):
        _apply(store, tmp_path, "C", HoldSelector(0, 1))
    resumed_store = _Interrupting(store, budget=100)
    result = _apply(resumed_store, tmp_path, "C", sel)  # type: ignore[arg-type]
    assert result.resumed
    everything = set(store.list(layout.CHAINS))
    assert len(result.objects) == len(set(result.objects)) == len(everything)
    assert set(result.objects) == everything
    # units fully scanned before the interruption are not held again
    assert not set(resumed_store.calls) & _units(CHAIN, 0, 1)
    manifests = [k for k in store.list("holds/")]
    assert len(manifests) == 1
    assert not list((tmp_path / "progress").glob("*.json"))
    again = _apply(store, tmp_path, "C", sel)  # idempotent: a rerun changes nothing
    assert again.newly_changed == 0 and set(again.objects) == everything


def test_parse_time_accepts_dates_and_offsets() -> None:
    """--from/--to take ISO-8601 dates or date-times, UTC unless an offset is given."""
    assert parse_time("2024-01-01") == T
    assert parse_time("2024-01-01T01:00:00+01:00") == T
    assert parse_time("2024-01-01T00:00:00.5Z") == T + 500_000


def test_cli_hold_says_plainly_when_the_audit_event_was_not_emitted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Without a broker the hold is applied and the output says the audit event was NOT
    emitted; hold list shows the case."""
    store = open_store(tmp_path / "a")
    _archive(store)
    monkeypatch.setenv("SEALTRAIL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SEALTRAIL_BOOTSTRAP", raising=False)
    monkeypatch.delenv("SEALTRAIL_REGISTRY_URL", raising=False)
    args = ["--archive", str(tmp_path / "a"), "--operator", "legal-1"]
    assert main(["hold", "apply", "--case", "X-1", "--from", "2024-01-01",
                 "--to", "2024-01-01T02:30:00Z", *args]) == 0
    out = capsys.readouterr().out
    assert "NOT emitted" in out and "4 objects" in out
    assert main(["hold", "list", "--archive", str(tmp_path / "a")]) == 0
    assert "X-1" in capsys.readouterr().out
    assert main(["hold", "release", "--case", "X-1", *args]) == 0
    assert "release legal hold 'X-1': 4 objects" in capsys.readouterr().out
    assert main(["hold", "release", "--case", "NOPE", *args]) == 2


def test_cli_hold_emits_an_audit_event_into_the_pipeline(
        stack: dev.Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """With a broker and registry configured, the hold action is emitted as a
    legal_hold.apply audit event naming the operator and the case."""
    from confluent_kafka import Consumer

    store = open_store(tmp_path / "a")
    _archive(store)
    topic = f"raw-holds-{time.monotonic_ns()}"
    monkeypatch.setenv("SEALTRAIL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SEALTRAIL_BOOTSTRAP", stack.bootstrap)
    monkeypatch.setenv("SEALTRAIL_REGISTRY_URL", stack.registry)
    monkeypatch.setenv("SEALTRAIL_RAW_TOPIC", topic)
    from sealtrail.config import load_settings
    from sealtrail.kafka.admin import ensure_topics

    ensure_topics(load_settings())
    assert main(["hold", "apply", "--case", "EMIT-1", "--from", "2024-01-01", "--to",
                 "2024-01-02", "--archive", str(tmp_path / "a"), "--operator", "dpo"]) == 0
    assert "legal_hold.apply emitted (operator dpo)" in capsys.readouterr().out
    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": topic,
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 20
        found = None
        while found is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                found = msg.value()
    finally:
        consumer.close()
    assert found is not None
    assert b"legal_hold.apply" in found and b"EMIT-1" in found and b"dpo" in found


# -- S3 (moto) -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    with moto_s3_server() as url:
        make_locked_bucket(url, "holds")
        yield url


@pytest.mark.s3
def test_hold_blocks_deletion_of_a_version_whose_retention_passed(s3: str) -> None:
    """Once retention has passed, a legal hold alone still blocks deletion, in sealtrail and
    at the server; after release the version can be deleted."""
    store = S3Store("holds", "expiring", endpoint_url=s3, client=raw_client(s3))
    key = "chains/c/segments/0000000000.avro"
    until = datetime.now(UTC) + timedelta(seconds=2)
    store.put(key, b"segment", retention=Retention("COMPLIANCE", until))
    store.set_legal_hold(key, "CASE-S3", True)
    time.sleep(max(0.0, (store.retention(key).retain_until - datetime.now(UTC))
                   .total_seconds()) + 0.5)
    assert store.retention(key).retain_until < datetime.now(UTC)
    with pytest.raises(RetentionError, match="legal hold"):
        store.delete(key)
    raw = raw_client(s3)
    version = raw.head_object(Bucket="holds", Key=f"expiring/{key}")["VersionId"]
    with pytest.raises(Exception, match=r"AccessDenied|locked|Forbidden"):
        raw.delete_object(Bucket="holds", Key=f"expiring/{key}", VersionId=version)
    store.set_legal_hold(key, "CASE-S3", False)
    store.delete(key)
    assert not store.exists(key)


@pytest.mark.s3
def test_s3_release_of_one_case_keeps_the_version_held(s3: str, tmp_path: Path) -> None:
    """On S3, an object held by two cases keeps its server-side legal hold when one is
    released, and loses it when both are."""
    store = S3Store("holds", "twocases", endpoint_url=s3, client=raw_client(s3))
    _archive(store)
    _apply(store, tmp_path, "A", HoldSelector(T, T + 3 * HOUR_US))
    _apply(store, tmp_path, "B", HoldSelector(T + 2 * HOUR_US, T + 5 * HOUR_US))
    release_hold(store, "A", policy=policy(), progress_dir=tmp_path / "p", operator="t")
    shared = layout.segment_key(CHAIN, 1)
    assert store.server_legal_hold(shared) and _held(store, shared) == ("B",)
    only_a = layout.segment_key(CHAIN, 0)
    assert not store.server_legal_hold(only_a) and _held(store, only_a) == ()
    release_hold(store, "B", policy=policy(), progress_dir=tmp_path / "p", operator="t")
    assert not store.server_legal_hold(shared)
