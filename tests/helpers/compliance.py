"""Helpers for the retention, hold, proof and heartbeat tests: sealed records of chosen
event types written by the real SegmentWriter into any ArchiveStore (no Kafka)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from helpers.archive_builder import T0, TICK, Clock, _unsealed, keyring_of, signer
from sealtrail.archive import ArchiveStore
from sealtrail.consumers.archiver import SegmentWriter
from sealtrail.core.chain import ChainHead, seal
from sealtrail.governance.retention import RetentionPolicy

SIGNER = signer("compliance-1")
KEYRING = keyring_of(SIGNER)
CHAIN = "audit.raw.0.00000000000000aa"
CHAIN_B = "audit.raw.1.00000000000000bb"
HOUR_US = 3_600_000_000


def policy(mode: str = "COMPLIANCE", default_days: int = 30) -> RetentionPolicy:
    """pci_dss 365 days, hipaa 6 years, sox 7 years; payment.* / phi.* / ledger.* mapped."""
    from sealtrail.config import Settings

    return RetentionPolicy.from_settings(Settings(
        retention_classes="pci_dss=365d,hipaa=6y,sox=7y",
        retention_map="payment.*=pci_dss,phi.*=hipaa,ledger.*=sox,ledger.card=pci_dss",
        retention_days=default_days, retention_mode=mode))


class ChainFeeder:
    """Seals events into one chain and hands them to a SegmentWriter, segment by segment."""

    def __init__(self, writer: SegmentWriter, chain_id: str = CHAIN, partition: int = 0,
                 clock: Clock | None = None) -> None:
        self.writer = writer
        self.head = ChainHead.genesis(chain_id)
        self.partition = partition
        self.clock = clock or Clock()
        self.records: list[dict[str, Any]] = []

    def segment(self, event_types: Sequence[str], *, actor: str | None = None,
                resource: str | None = None, occurred_at: int | None = None) -> None:
        """Seal one event per type (actor/resource/occurred_at overridable) and flush."""
        for event_type in event_types:
            n = self.head.seq + 1
            record = _unsealed(n, self.partition, n, self.clock.tick(), rejection=False)
            event = record["event"]
            event["event_type"] = event_type
            event["event_id"] = f"{self.head.chain_id}-{n}"
            if actor:
                event["actor"]["id"] = actor
            if resource:
                event["resource"]["id"] = resource
            event["occurred_at"] = occurred_at if occurred_at is not None else (
                T0 + n * HOUR_US)
            sealed = seal(self.head, record, SIGNER)
            self.head = self.head.advance(sealed)
            self.records.append(sealed)
            self.writer.add(sealed)
        self.clock.tick(TICK)
        self.writer.flush()


def writer(store: ArchiveStore, pol: RetentionPolicy | None = None,
           clock: Clock | None = None) -> SegmentWriter:
    return SegmentWriter(store, SIGNER, policy=pol or policy(), clock=clock or Clock())


def age_sidecars(root: Path, until: datetime = datetime(2000, 1, 1, tzinfo=UTC)) -> None:
    """Let time pass on a local archive: every retention sidecar now expires at ``until``."""
    for path in (root / "_retention").rglob("*.json"):
        doc = json.loads(path.read_text())
        doc["retain_until"] = until.strftime("%Y-%m-%dT%H:%M:%SZ")
        path.write_text(json.dumps(doc, indent=2) + "\n")
