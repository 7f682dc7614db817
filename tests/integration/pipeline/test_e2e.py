"""End to end on the real embedded stack: producer processes -> sealer process ->
archiver process -> verify."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from helpers.pipeline_checks import (
    archived_count,
    archived_records,
    finish_producer,
    run_producer,
    store_of,
    verify,
    wait_until,
)
from helpers.stages import Stage, on_both_brokers

from sealtrail.config import Settings
from sealtrail.core.canonical import canonical_json
from sealtrail.demo.traffic import USERS


@on_both_brokers
def test_three_producers_are_sealed_archived_and_verified(
    settings: Settings, stages: list[Stage], tmp_path: Path
) -> None:
    """N events from three producer processes end as exactly N verified archived events."""
    stages.append(Stage(settings, "seal", tmp_path / "seal.log"))
    stages.append(Stage(settings, "archive", tmp_path / "archive.log"))
    procs = [run_producer(settings, f"svc-{i}", 700, seed=i) for i in range(3)]
    emitted = sum(finish_producer(p)["emitted"] for p in procs)
    assert emitted == 2100
    store = store_of(settings)
    wait_until(lambda: archived_count(store) >= emitted, 90, "archive",
               alive=lambda: all(s.alive() for s in stages))
    for stage in stages:
        assert stage.stop() == 0, stage.output()
    report = verify(settings)
    assert report.ok, [str(f) for c in report.chains for f in c.findings]
    assert sum(c.events for c in report.chains) == emitted
    assert sum(sum(c.rejections.values()) for c in report.chains) == 0
    records = archived_records(store)
    ids = [r["event"]["event_id"] for r in records]
    assert len(ids) == len(set(ids)) == emitted


def test_redacted_values_appear_nowhere_in_the_archive(
    settings: Settings, stages: list[Stage], tmp_path: Path
) -> None:
    """Dropped, masked and pseudonymised fields are transformed, and no original value of
    them survives in any archived record."""
    stages.append(Stage(settings, "seal", tmp_path / "seal.log"))
    stages.append(Stage(settings, "archive", tmp_path / "archive.log"))
    emitted = finish_producer(run_producer(settings, "crm", 300, seed=7))["emitted"]
    store = store_of(settings)
    wait_until(lambda: archived_count(store) >= emitted, 60, "archive",
               alive=lambda: all(s.alive() for s in stages))
    records = archived_records(store)
    assert len(records) == emitted
    text = b"\n".join(canonical_json(r) for r in records).decode()
    for user in USERS:
        assert f"{user}@customers.example.com" not in text
        assert f"{user}@idp.example.com" not in text
    assert "hunter2" not in text
    assert "ticket" not in text and "password" not in text  # dropped keys are not named
    transformed = Counter(f for r in records for f in r["redaction"]["fields"])
    assert transformed["attributes.email=pseudonymize"] == emitted
    assert transformed["origin.source_ip=mask_ip"] == emitted
    assert transformed["actor.principal=pseudonymize"] == emitted
    # password (a secret-like key) and ticket (named by no rule): counted, not named
    assert transformed["attributes.*=drop"] == 2 * emitted
    for r in records:
        event = r["event"]
        assert set(event["attributes"]) == {"email"}
        assert event["attributes"]["email"].startswith("hmac:")
        assert event["origin"]["source_ip"] == "203.0.113.0/24"  # the network, no host
        assert r["redaction"]["policy_id"] == "default"
    # Pseudonyms stay joinable: one user, one pseudonym.
    by_actor: dict[str, set[str]] = {}
    for r in records:
        by_actor.setdefault(r["event"]["actor"]["id"], set()).add(
            r["event"]["attributes"]["email"])
    assert all(len(v) == 1 for v in by_actor.values())
    for path in Path(settings.archive).rglob("*"):
        if path.is_file():
            assert b"@customers.example.com" not in path.read_bytes()
