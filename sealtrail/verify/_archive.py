"""Verifying a whole archive: every chain (in parallel processes when asked), how current
each is, and with a retention policy, the legal holds."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sealtrail.archive import ArchiveStore
from sealtrail.core import layout
from sealtrail.core.chain_walk import Anchor
from sealtrail.core.findings import ARCHIVE, Finding, Kind
from sealtrail.core.index import ChainSeen, index_findings
from sealtrail.core.signing import Keyring
from sealtrail.governance.retention import RetentionPolicy
from sealtrail.verify._chain import ChainReport, verify_chain
from sealtrail.verify._index import IndexView, check_schemas, read_index
from sealtrail.verify._locks import check_holds

__all__ = ["ArchiveReport", "verify_archive"]


@dataclass
class ArchiveReport:
    archive: str
    chains: list[ChainReport]
    findings: list[Finding] = field(default_factory=list)  # not tied to one chain's walk
    locks_checked: int = 0  # objects whose Object Lock state was checked
    locks: bool = False  # whether Object Lock states were checked at all
    notes: list[str] = field(default_factory=list)  # what this run could not prove
    index_seq: int | None = None  # the newest signed archive index, when one checked out
    index_chains: int = 0
    index_created_at: int | None = None
    schemas_checked: int = 0
    witnesses: list[str] = field(default_factory=list)  # witness records checked against
    index_partitions: list[tuple[str, int, str]] = field(default_factory=list)  # t, p, chain

    @property
    def ok(self) -> bool:
        return bool(self.chains) and all(c.ok for c in self.chains) and not self.findings

    def to_json(self) -> dict[str, Any]:
        return {"archive": self.archive, "ok": self.ok,
                "chains": [c.to_json() for c in self.chains],
                "findings": [f.to_json() for f in self.findings],
                "locks_checked": self.locks_checked, "locks": self.locks,
                "index": None if self.index_seq is None else {
                    "seq": self.index_seq, "chains": self.index_chains,
                    "created_at": self.index_created_at},
                "schemas_checked": self.schemas_checked, "witnesses": self.witnesses,
                "notes": self.notes}


def _stale(report: ChainReport, now_us: int, max_age_seconds: float | None) -> None:
    if report.last_checkpoint_at is None:
        return
    report.age_seconds = max(0, now_us - report.last_checkpoint_at) / 1e6
    if max_age_seconds is not None and report.age_seconds > max_age_seconds:
        report.findings.append(Finding(
            Kind.STALE, report.chain_id, f"newest checkpoint is {report.age_seconds:.0f} s old, "
            f"more than --max-age {max_age_seconds:g} s: the archiver stopped, or the newest "
            "checkpoints were removed", None, report.head_seq + 1))


def verify_archive(
    store: ArchiveStore,
    keyring: Keyring,
    *,
    check_signatures: bool = True,
    progress: Callable[[ChainReport], None] | None = None,
    locks: RetentionPolicy | None = None,
    now_us: int | None = None,
    max_age_seconds: float | None = None,
    workers: int = 1,
    reopen: Callable[[], ArchiveStore] | None = None,
    anchors: Mapping[str, Sequence[Anchor]] | None = None,
) -> ArchiveReport:
    """Verify every chain in ``store`` against ``keyring``.

    ``locks``: also check every object's Object Lock (mode, retain-until not earlier than
    its class requires under this policy) and the legal holds the hold manifests call for.
    ``now_us``: the time that decides whether a segment's signed retain-until has passed
    (default: the wall clock); also reported as each chain's newest checkpoint age, and
    with ``max_age_seconds`` an older newest checkpoint is a *stale* finding.
    ``anchors``: per chain, checkpoints a signed index or a witness recorded.
    ``workers`` > 1 with ``reopen`` (which opens the same archive again, for a worker
    process: an S3 client is not shared across a fork): chains are verified in that many
    processes; the report is the same, in the same order."""
    from sealtrail.verify._reader import now_us as wall_clock

    now = now_us if now_us is not None else wall_clock()
    chain_ids = layout.chain_ids(store.list(layout.CHAINS))
    index = read_index(store, keyring)
    merged: dict[str, list[Anchor]] = {c: list(a) for c, a in index.anchors().items()}
    for chain_id, extra in (anchors or {}).items():
        merged.setdefault(chain_id, []).extend(extra)
    anchors = merged
    options = {"check_signatures": check_signatures, "locks": locks, "now": now}
    pool = None
    if workers > 1 and reopen is not None and len(chain_ids) > 1:
        import multiprocessing

        pool = multiprocessing.get_context("fork").Pool(
            min(workers, len(chain_ids)), initializer=_init_worker,
            initargs=(reopen, keyring, options))
        found: Iterator[ChainReport] = pool.imap(
            _verify_in_worker, [(c, tuple(anchors.get(c, ()))) for c in chain_ids])
    else:
        found = (verify_chain(store, c, keyring, anchors=anchors.get(c, ()), **options)  # type: ignore[arg-type]
                 for c in chain_ids)
    reports = []
    try:
        for report in found:
            if now_us is not None:
                _stale(report, now_us, max_age_seconds)
            reports.append(report)
            if progress:
                progress(report)
    finally:
        if pool is not None:
            pool.terminate()
    result = ArchiveReport(store.url, reports)
    _against_index(store, result, index, now_us, max_age_seconds)
    if locks is not None:
        result.locks = True
        result.findings.extend(check_holds(store))
        result.locks_checked = sum(c.locks_checked for c in reports)
    return result


def _against_index(store: ArchiveStore, result: ArchiveReport, index: IndexView,
                   now_us: int | None, max_age_seconds: float | None) -> None:
    """What the signed archive index proves about the chains: none gone, none added behind
    its back (a chain behind it is the walk's *rollback*), its schema files unchanged."""
    check_schemas(store, index)
    seen = [ChainSeen(c.chain_id, c.first_checkpoint_at, c.format_version, not c.ok)
            for c in result.chains]
    found, notes = index_findings(index.newest, seen, present=index.count > 0)
    by_chain = {c.chain_id: c for c in result.chains}
    for finding in found:
        if finding.chain_id in by_chain:
            by_chain[finding.chain_id].findings.append(finding)
        elif finding.chain_id != ARCHIVE:  # a chain the index lists, gone from the archive
            gone = ChainReport(finding.chain_id)
            gone.findings.append(finding)
            result.chains.append(gone)
        else:
            result.findings.append(finding)
    result.chains.sort(key=lambda c: c.chain_id)
    result.findings[:0] = index.findings
    result.notes.extend(index.notes + notes)
    result.schemas_checked = index.schemas_checked
    newest = index.newest
    if newest is not None:
        result.index_seq, result.index_chains = newest.seq, len(newest.chains)
        result.index_partitions = [(c.topic, c.partition, c.chain_id) for c in newest.chains
                                   if c.topic]
        result.index_created_at = newest.statement.created_at
        if now_us is not None and max_age_seconds is not None:
            age = max(0, now_us - newest.statement.created_at) / 1e6
            if age > max_age_seconds:
                result.findings.append(Finding(
                    Kind.STALE, ARCHIVE, f"the newest signed archive index ({newest.seq}) is "
                    f"{age:.0f} s old, more than --max-age {max_age_seconds:g} s: the "
                    "archiver stopped, or the newest indexes were removed",
                    layout.index_key(newest.seq)))


_worker: tuple[ArchiveStore, Keyring, dict[str, Any]] | None = None


def _init_worker(reopen: Callable[[], ArchiveStore], keyring: Keyring,
                 options: dict[str, Any]) -> None:
    global _worker
    _worker = (reopen(), keyring, options)


def _verify_in_worker(job: tuple[str, tuple[Anchor, ...]]) -> ChainReport:
    assert _worker is not None, "_init_worker did not run"
    store, keyring, options = _worker
    chain_id, anchors = job
    return verify_chain(store, chain_id, keyring, anchors=anchors, **options)
