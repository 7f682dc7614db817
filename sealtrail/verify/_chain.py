"""One chain's verification report: :func:`verify_chain` runs the one verifier over the
chain (:func:`sealtrail.verify._reader.walk_chain`) and, with a retention policy, checks
each object's lock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sealtrail.archive import ArchiveStore
from sealtrail.archive.segments import read_segment
from sealtrail.core.chain import ChainHead
from sealtrail.core.chain_walk import Anchor, Step
from sealtrail.core.completeness import Run
from sealtrail.core.findings import Finding
from sealtrail.core.signing import Keyring
from sealtrail.governance.retention import RetentionPolicy, required_retention
from sealtrail.verify._locks import lock_problem
from sealtrail.verify._reader import walk_chain

__all__ = ["ChainReport", "verify_chain"]


@dataclass
class ChainReport:
    chain_id: str
    segments: int = 0
    entries: int = 0
    events: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    head_seq: int = -1
    head_hash: str = ""
    last_checkpoint_at: int | None = None
    checkpoints: int = 0
    heartbeats: int = 0
    purged: int = 0  # entries of segments removed after their signed retain-until
    unsigned_retention: int = 0  # checkpoints of format v1: no signed retention or tree
    last_checkpoint_hash: str = ""
    first_checkpoint_at: int | None = None
    format_version: int = 1  # the highest checkpoint format of the chain
    age_seconds: float | None = None  # of the newest checkpoint, when verify was given `now`
    locks_checked: int = 0
    runs: list[Run] = field(default_factory=list)  # raw offsets covered (completeness)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id, "ok": self.ok, "segments": self.segments,
            "entries": self.entries, "events": self.events, "rejections": self.rejections,
            "head_seq": self.head_seq, "head_hash": self.head_hash,
            "checkpoints": self.checkpoints, "last_checkpoint_at": self.last_checkpoint_at,
            "last_checkpoint_hash": self.last_checkpoint_hash,
            "heartbeats": self.heartbeats, "age_seconds": self.age_seconds,
            "purged": self.purged, "unsigned_retention": self.unsigned_retention,
            "locks_checked": self.locks_checked,
            "findings": [f.to_json() for f in self.findings],
        }


def _at(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC)


def verify_chain(
    store: ArchiveStore, chain_id: str, keyring: Keyring, *, check_signatures: bool = True,
    locks: RetentionPolicy | None = None, now: int | None = None,
    anchors: Sequence[Anchor] = (),
) -> ChainReport:
    """Verify one chain; the report holds at most one finding per way the chain breaks
    (the first break stops the walk, since nothing after it can be trusted) plus, with
    ``locks``, one per object less protected than its class requires."""
    from sealtrail.verify._reader import now_us

    protected: list[tuple[str, str, datetime]] = []  # key, class, minimum retain-until

    def note_locks(step: Step) -> None:
        """What ``step``'s objects must be retained for: what the auditor's policy requires
        of their events, and no less than the retain-until their checkpoint signs."""
        assert locks is not None
        cp = step.signed.checkpoint
        if not cp.segment_key:  # a heartbeat: the default class
            cls_ = locks.classes[locks.default_class]
            cls_name, until = cls_.name, cls_.until(_at(cp.created_at))
        elif step.outcome is not None:
            records = step.outcome.records or read_segment(store.get(cp.segment_key))
            found, until = required_retention(locks, records, cp.created_at)
            cls_name = found.name
        else:  # purged: only its checkpoint is left
            cls_name, until = cp.retention_class or locks.default_class, _at(0)
        if cp.retain_until is not None and _at(cp.retain_until) > until:
            cls_name, until = f"{cp.retention_class} (signed)", _at(cp.retain_until)
        if cp.segment_key and not step.purged:
            protected.append((cp.segment_key, cls_name, until))
        protected.append((step.key, cls_name, until))

    walk = walk_chain(store, chain_id, keyring, now=now if now is not None else now_us(),
                      check_signatures=check_signatures, anchors=anchors,
                      on_step=note_locks if locks is not None else None)
    stats = walk.stats
    head: ChainHead = walk.head
    report = ChainReport(
        chain_id, segments=stats.segments, entries=stats.entries, events=stats.events,
        rejections=stats.rejections, head_seq=head.seq, head_hash=head.entry_hash.hex(),
        last_checkpoint_at=stats.last_checkpoint_at, checkpoints=stats.checkpoints,
        heartbeats=stats.heartbeats, purged=stats.purged,
        unsigned_retention=stats.unsigned_retention,
        last_checkpoint_hash=walk.last.checkpoint_hash.hex() if walk.last else "",
        first_checkpoint_at=stats.first_checkpoint_at, format_version=walk.version,
        runs=walk.runs)
    report.findings.extend(walk.gaps)
    if walk.finding is not None:
        report.findings.append(walk.finding)
    if locks is not None:
        for key, class_name, until in protected:
            problem = lock_problem(store, key, locks, class_name, until)
            if problem is not None:
                report.findings.append(Finding(problem[0], chain_id, problem[1], key))
        report.locks_checked = len(protected)
    return report
