"""Verifying a whole archive: every chain (in parallel processes when asked), how current
each is, and with a retention policy, the legal holds."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sealtrail.archive import ArchiveStore
from sealtrail.core import layout
from sealtrail.core.chain_walk import Anchor
from sealtrail.core.findings import Finding, Kind
from sealtrail.core.signing import Keyring
from sealtrail.retention import RetentionPolicy
from sealtrail.verify._chain import ChainReport, verify_chain
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

    @property
    def ok(self) -> bool:
        return bool(self.chains) and all(c.ok for c in self.chains) and not self.findings

    def to_json(self) -> dict[str, Any]:
        return {"archive": self.archive, "ok": self.ok,
                "chains": [c.to_json() for c in self.chains],
                "findings": [f.to_json() for f in self.findings],
                "locks_checked": self.locks_checked, "locks": self.locks,
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
    anchors = anchors or {}
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
    if locks is not None:
        result.locks = True
        result.findings = check_holds(store)
        result.locks_checked = sum(c.locks_checked for c in reports)
    return result


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
