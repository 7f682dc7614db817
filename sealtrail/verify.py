"""Verifying an archive: every chain, segment, entry and checkpoint, against a
pinned keyring. Reads through an ArchiveStore; decides nothing about exit codes
(the CLI does).

For each chain, checkpoints are walked in order. Each must be signed by a
trusted key, link to the previous checkpoint and continue its seq range; its
segment must exist with the recorded SHA-256, hold exactly the entries
first_seq..last_seq, each hashing to its entry_hash, linking to the one before,
signed by a trusted key, with the Merkle root and head the checkpoint states.
Raw source offsets must follow each other (completeness, G1). The first break
in a chain is reported with its segment and seq; other chains are still checked.
When a checkpoint or a segment's bytes do not check out, the segment is still read
(trusting nothing in it) to name the first entry that breaks, or to tell a segment
moved from elsewhere in the chain (reordered) or cut short (truncated).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sealtrail import fast_segments as fast
from sealtrail import layout
from sealtrail.archive import ArchiveError, ArchiveStore, ObjectMissingError, iso_z
from sealtrail.core import merkle
from sealtrail.core.chain import ChainHead, check_entry
from sealtrail.core.checkpoint import Checkpoint, SignedCheckpoint
from sealtrail.core.hashing import ENTRY_DOMAIN, SIG_ENTRY_DOMAIN, ZERO_HASH, hasher
from sealtrail.core.signing import Keyring
from sealtrail.errors import DecodeError, IntegrityError
from sealtrail.retention import RetentionPolicy, required_retention
from sealtrail.segments import read_segment

__all__ = ["ArchiveReport", "ChainReport", "Finding", "verify_archive"]


@dataclass(frozen=True)
class Finding:
    """One piece of broken evidence. ``kind``: missing, modified, reordered, truncated,
    signature, unknown-key, link, hash, seq, epoch, chain, completeness, unreferenced,
    malformed; with lock checks: unlocked, under-retained, hold-missing; with a maximum
    age: stale. ``segment`` and ``seq`` say where the evidence first breaks: the segment
    key, and the first seq of the chain that can no longer be trusted."""

    kind: str
    chain_id: str
    message: str
    segment: str | None = None
    seq: int | None = None

    def __str__(self) -> str:
        where = f"chain {self.chain_id}"
        if self.segment:
            where += f", segment {self.segment}"
        if self.seq is not None:
            where += f", seq {self.seq}"
        return f"{where}: {self.kind}: {self.message}"


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
    heartbeats: int = 0
    purged: int = 0  # entries of segments removed after their retention passed
    age_seconds: float | None = None  # of the newest checkpoint, when verify was given `now`
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id, "ok": self.ok, "segments": self.segments,
            "entries": self.entries, "events": self.events, "rejections": self.rejections,
            "head_seq": self.head_seq, "head_hash": self.head_hash,
            "last_checkpoint_at": self.last_checkpoint_at,
            "heartbeats": self.heartbeats, "age_seconds": self.age_seconds,
            "purged": self.purged,
            "findings": [f.__dict__ for f in self.findings],
        }


@dataclass
class ArchiveReport:
    archive: str
    chains: list[ChainReport]
    findings: list[Finding] = field(default_factory=list)  # not tied to one chain (holds)
    locks_checked: int = 0  # objects whose Object Lock state was checked

    @property
    def ok(self) -> bool:
        return bool(self.chains) and all(c.ok for c in self.chains) and not self.findings

    def to_json(self) -> dict[str, Any]:
        return {"archive": self.archive, "ok": self.ok,
                "chains": [c.to_json() for c in self.chains],
                "findings": [f.__dict__ for f in self.findings],
                "locks_checked": self.locks_checked}


def _signature_kind(problem: str) -> str:
    return "unknown-key" if problem.startswith("unknown key") else "signature"


@dataclass(frozen=True)
class _Break:
    """Where a run of entries stops checking out: finding kind, message, chain seq."""

    kind: str
    message: str
    seq: int


def check_entries(
    head: ChainHead,
    last_offset: int | None,
    records: list[dict[str, Any]],
    keyring: Keyring | None,
) -> tuple[ChainHead, int | None, _Break | None]:
    """Walk ``records`` on from ``head``: each must link, hash, verify and continue the raw
    offsets. Returns the head and last offset reached and the first break, if any."""
    for record in records:
        expected = head.seq + 1
        link = check_entry(head, record, keyring)
        if link is not None:
            kind = link.kind
            if kind == "signature" and "unknown key" in link.message:
                kind = "unknown-key"
            return head, last_offset, _Break(kind, link.message, expected)
        offset = record["source"]["offset"]
        if last_offset is not None and offset != last_offset + 1:
            return head, last_offset, _Break(
                "completeness",
                f"raw offset {offset} follows {last_offset}: offsets {last_offset + 1}.."
                f"{offset - 1} of partition {record['source']['partition']} are unaccounted "
                f"for", expected)
        last_offset = offset
        head = head.advance(record)
    return head, last_offset, None


def rows_check_out(head: ChainHead, last_offset: int | None, rows: list[fast.Row],
                   keyring: Keyring | None, cp: Checkpoint) -> bool:
    """Whether a segment read on the native path (:mod:`sealtrail.fast_segments`) passes
    what :func:`check_entries` and the checkpoint comparisons check: each entry links,
    hashes, verifies and continues the raw offsets after ``head`` / ``last_offset``, and
    the segment holds exactly the checkpoint's entries, Merkle root and head. False only
    means "take the reference path", which names the break."""
    if len(rows) != cp.size or not rows:
        return False
    chain, seq, prev, epoch = head.chain_id, head.seq, head.entry_hash, head.epoch
    offset = rows[0][fast.OFFSET] - 1 if last_offset is None else last_offset
    entry = hasher(ENTRY_DOMAIN)
    for _, body, chain_id, seq_, epoch_, prev_hash, entry_hash, key_id, signature, at, _, \
            offset_, _ in rows:
        digest = entry.copy()
        digest.update(body)
        if (chain_id != chain or seq_ != seq + 1 or epoch_ < epoch or prev_hash != prev
                or offset_ != offset + 1 or digest.digest() != entry_hash):
            return False
        if keyring is not None and keyring.verify(key_id, SIG_ENTRY_DOMAIN + entry_hash,
                                                  signature, at_us=at):
            return False
        seq, prev, epoch, offset = seq_, entry_hash, epoch_, offset_
    return (seq == cp.last_seq and prev == cp.head_hash
            and merkle.root([row[fast.ENTRY_HASH] for row in rows]) == cp.merkle_root)


def _count(report: ChainReport, rejection: dict[str, Any] | None) -> None:
    """Count one checked entry into ``report``: an event (``rejection`` None) or a
    rejection, by its reason."""
    report.entries += 1
    if rejection is None:
        report.events += 1
    else:
        reason = rejection.get("reason", "UNKNOWN")
        report.rejections[reason] = report.rejections.get(reason, 0) + 1


def verify_chain(
    store: ArchiveStore, chain_id: str, keyring: Keyring, *, check_signatures: bool = True,
    locks: RetentionPolicy | None = None,
) -> ChainReport:
    """Verify one chain; the report holds at most one finding per way the chain breaks
    (the first break stops the walk, since nothing after it can be trusted)."""
    report = ChainReport(chain_id)
    prefix = f"{layout.CHAINS}{chain_id}/"
    report.head_hash = ChainHead.genesis(chain_id).entry_hash.hex()

    def fail(kind: str, message: str, segment: str | None = None, seq: int | None = None) -> None:
        report.findings.append(Finding(kind, chain_id, message, segment, seq))

    try:
        keys = store.list(prefix)
    except ValueError as exc:
        fail("malformed", f"not a usable chain id: {exc}")
        return report
    checkpoints = sorted(k for k in keys if "/checkpoints/" in k)
    segments = {k for k in keys if "/segments/" in k}
    referenced: set[str] = set()

    head = ChainHead.genesis(chain_id)
    prev_cp_hash = ZERO_HASH
    last_offset: int | None = None
    entry_keyring = keyring if check_signatures else None
    protected: list[tuple[str, str, datetime]] = []  # key, class, minimum retain-until

    def diagnose(seg: str, data: bytes | None = None) -> tuple[list[dict[str, Any]] | None,
                                                               _Break | None]:
        """Read ``seg`` without trusting its checkpoint; its records and first bad entry."""
        try:
            records = read_segment(store.get(seg) if data is None else data)
        except (ObjectMissingError, DecodeError):
            return None, None
        return records, check_entries(head, last_offset, records, entry_keyring)[2]

    def pinpoint(message: str, seg: str, data: bytes | None = None) -> tuple[str, int]:
        """``message`` with the first entry of ``seg`` that does not check out, and its seq
        (the next seq of the chain when every entry does)."""
        _, broken = diagnose(seg, data)
        if broken is None:
            return message, head.seq + 1
        return (f"{message}; first entry that does not check out: {broken.kind}: "
                f"{broken.message}", broken.seq)

    if not checkpoints:
        fail("missing", "no checkpoint: the chain's segments are not covered by any signature",
             layout.segment_key(chain_id, 0), 0)
    for position, cp_key in enumerate(checkpoints):
        index = layout.parse_index(cp_key)
        expected_seg = layout.segment_key(chain_id, position)
        if index != position:
            fail("missing", f"checkpoint {position} is missing (next found: {cp_key}); "
                 f"entries from seq {head.seq + 1} on are not covered by a signature",
                 expected_seg, head.seq + 1)
            break
        cp_bytes = store.get(cp_key)
        try:
            signed = SignedCheckpoint.from_bytes(cp_bytes)
        except IntegrityError as exc:
            fail("malformed", f"checkpoint {index}: {exc}", expected_seg, head.seq + 1)
            break
        cp = signed.checkpoint
        try:
            problem = signed.problem(keyring)
        except (TypeError, ValueError) as exc:  # a statement no signer could have made
            fail("malformed", f"checkpoint {index}: {exc}", expected_seg, head.seq + 1)
            break
        if problem:
            message, seq = pinpoint(f"checkpoint {index}: {problem}", expected_seg)
            fail(_signature_kind(problem), message, expected_seg, seq)
            break
        if cp.chain_id != chain_id or cp.index != index:
            fail("reordered", f"checkpoint file {index} holds checkpoint {cp.index} of chain "
                 f"{cp.chain_id}", expected_seg, head.seq + 1)
            break
        if cp.prev_checkpoint_hash != prev_cp_hash:
            fail("link", f"checkpoint {index} does not link to checkpoint {index - 1}",
                 expected_seg, head.seq + 1)
            break
        if cp.first_seq != head.seq + 1:
            fail("seq", f"checkpoint {index} starts at seq {cp.first_seq}, expected "
                 f"{head.seq + 1}", expected_seg, head.seq + 1)
            break
        if signed.to_bytes() != cp_bytes:
            fail("modified", f"checkpoint {index} file is not in canonical form: its statement "
                 "and signature check out, but its bytes are not those the archiver wrote",
                 expected_seg, cp.first_seq)
            break
        if cp.segment_key == "":  # a heartbeat: no new entries (format.md)
            hb_problem = _heartbeat_problem(cp, head)
            if hb_problem:
                fail("modified", f"checkpoint {index}: {hb_problem}", expected_seg, cp.first_seq)
                break
            prev_cp_hash = signed.checkpoint_hash
            report.heartbeats += 1
            report.last_checkpoint_at = cp.created_at
            if locks is not None:
                hb_class = locks.classes[locks.default_class]
                protected.append((cp_key, hb_class.name, hb_class.until(_at(cp.created_at))))
            continue
        seg = cp.segment_key
        referenced.add(seg)
        if seg != expected_seg:
            fail("reordered", f"checkpoint {index} names segment {seg}", expected_seg,
                 cp.first_seq)
            break
        try:
            data = store.get(seg)
        except ObjectMissingError:
            if _purged(store, cp_key):  # removed after its retention passed (format.md)
                head = ChainHead(chain_id, cp.last_seq, cp.head_hash, 0)
                last_offset = None
                prev_cp_hash = signed.checkpoint_hash
                report.purged += cp.size
                report.last_checkpoint_at = cp.created_at
                continue
            fail("missing", f"segment is missing (checkpoint {index} covers seq "
                 f"{cp.first_seq}..{cp.last_seq})", seg, cp.first_seq)
            break
        digest = hashlib.sha256(data).digest()
        if digest != cp.segment_sha256 or len(data) != cp.segment_size:
            message = (f"segment bytes do not match checkpoint {index} (sha256 "
                       f"{digest.hex()} of {len(data)} bytes, checkpoint says "
                       f"{cp.segment_sha256.hex()} of {cp.segment_size})")
            found, broken = diagnose(seg, data)
            kind, seq = "modified", cp.first_seq
            if found is None:
                if len(data) < cp.segment_size:
                    kind = "truncated"
                message += "; it is not a readable segment"
            elif found and found[0]["chain_id"] == chain_id and found[0]["seq"] != cp.first_seq:
                kind = "reordered"
                message += (f"; it holds seq {found[0]['seq']}..{found[-1]['seq']} where "
                            f"checkpoint {index} covers seq {cp.first_seq}..{cp.last_seq}")
            elif broken is not None:
                message += (f"; first entry that does not check out: {broken.kind}: "
                            f"{broken.message}")
                seq = broken.seq
            elif len(found) < cp.size:
                kind, seq = "truncated", cp.first_seq + len(found)
                message += (f"; it ends at seq {seq - 1}, checkpoint {index} covers seq "
                            f"{cp.first_seq}..{cp.last_seq}")
            elif len(found) > cp.size:
                seq = cp.last_seq + 1
                message += (f"; it holds {len(found)} entries, checkpoint {index} covers "
                            f"{cp.size}: seq {seq} on were added")
            elif merkle.root([r["entry_hash"] for r in found]) == cp.merkle_root:
                message += "; its entries are the checkpointed ones, the file around them differs"
            fail(kind, message, seg, seq)
            break
        rows = fast.transcode_segment(data)
        records: list[dict[str, Any]] | None = None
        if rows is not None and rows_check_out(head, last_offset, rows, entry_keyring, cp):
            last = rows[-1]
            head = ChainHead(chain_id, last[fast.SEQ], last[fast.ENTRY_HASH], last[fast.EPOCH])
            last_offset = last[fast.OFFSET]
            for row in rows:  # a rejection's reason is read from its JSON (they are rare)
                _count(report, None if row[fast.EVENT] is not None
                       else json.loads(row[fast.RECORD_JSON]).get("rejection") or {})
        else:  # the reference path, which also names what does not check out
            try:
                records = read_segment(data)
            except DecodeError as exc:
                fail("malformed", str(exc), seg, cp.first_seq)
                break
            if len(records) != cp.size:
                fail("truncated", f"segment holds {len(records)} entries, checkpoint {index} "
                     f"covers {cp.size}", seg, cp.first_seq + min(len(records), cp.size))
                break
            head, last_offset, broken = check_entries(head, last_offset, records, entry_keyring)
            for record in records[: head.seq - cp.first_seq + 1]:  # those that checked out
                _count(report, None if record["kind"] == "EVENT"
                       else record.get("rejection") or {})
            if broken is not None:
                fail(broken.kind, broken.message, seg, broken.seq)
                break
            if merkle.root([r["entry_hash"] for r in records]) != cp.merkle_root:
                fail("modified", f"Merkle root of the segment differs from checkpoint {index}",
                     seg, cp.first_seq)
                break
            if head.entry_hash != cp.head_hash or head.seq != cp.last_seq:
                fail("modified", f"chain head differs from checkpoint {index}", seg,
                     cp.last_seq)
                break
        prev_cp_hash = signed.checkpoint_hash
        report.segments += 1
        report.last_checkpoint_at = cp.created_at
        if locks is not None:  # the retention class depends on the events: decode them
            cls_, until = required_retention(
                locks, read_segment(data) if records is None else records, cp.created_at)
            protected += [(seg, cls_.name, until), (cp_key, cls_.name, until)]
    else:
        for extra in sorted(segments - referenced):
            found, _ = diagnose(extra)
            seq = found[0]["seq"] if found else None
            fail("unreferenced", "segment is not covered by any checkpoint"
                 + (f" (it holds seq {seq}..{found[-1]['seq']})" if found else ""), extra, seq)
    report.head_seq = head.seq
    report.head_hash = head.entry_hash.hex()
    if locks is not None:
        for key, class_name, until in protected:
            problem = _lock_problem(store, key, locks, class_name, until)
            if problem is not None:
                fail(problem[0], problem[1], key)
    return report


def _at(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC)


def _purged(store: ArchiveStore, cp_key: str) -> bool:
    """Whether a missing segment was purged legitimately: its checkpoint (retained exactly
    as long as the segment) is past its retain-until date and under no legal hold."""
    try:
        ret = store.retention(cp_key)
    except ArchiveError:
        return False
    return not ret.legal_holds and ret.retain_until <= datetime.now(UTC)


def _heartbeat_problem(cp: Any, head: ChainHead) -> str | None:
    """Why a checkpoint without a segment is not a well-formed heartbeat, or None."""
    if cp.last_seq != head.seq or cp.head_hash != head.entry_hash:
        return "heartbeat does not restate the chain head"
    if (cp.segment_size != 0 or cp.segment_sha256 != hashlib.sha256(b"").digest()
            or cp.merkle_root != merkle.root([])):
        return "heartbeat must state an empty segment (size 0, SHA-256 and root of nothing)"
    return None


def _lock_problem(store: ArchiveStore, key: str, policy: RetentionPolicy, class_name: str,
                  until: datetime) -> tuple[str, str] | None:
    """(kind, message) when ``key`` is less protected than class ``class_name`` requires."""
    try:
        ret = store.retention(key)
    except ObjectMissingError:
        return None  # reported by the chain walk
    except ArchiveError as exc:
        return "unlocked", f"object has no Object Lock retention ({exc})"
    if policy.mode == "COMPLIANCE" and ret.mode != "COMPLIANCE":
        return "under-retained", (f"lock mode is {ret.mode}, configured mode is COMPLIANCE "
                                  "(GOVERNANCE can be bypassed)")
    if ret.retain_until < until:
        return "under-retained", (f"retained until {iso_z(ret.retain_until)}, class "
                                  f"{class_name} requires at least {iso_z(until)}")
    return None


def check_holds(store: ArchiveStore) -> list[Finding]:
    """A finding for every object a case's hold manifest lists whose legal hold is off."""
    from sealtrail.archive._s3 import UNTRACKED_HOLD
    from sealtrail.holds import active_holds

    findings = []
    for key, cases in sorted(active_holds(store).items()):
        try:
            held = set(store.retention(key).legal_holds)
        except ObjectMissingError:
            findings.append(Finding("missing", _chain_of(key), f"object under legal hold of "
                                    f"{', '.join(sorted(cases))} is gone", key))
            continue
        except ArchiveError as exc:
            held = set()
            findings.append(Finding("unlocked", _chain_of(key), str(exc), key))
            continue
        lacking = sorted(c for c in cases if c not in held and UNTRACKED_HOLD not in held)
        server = getattr(store, "server_legal_hold", None)
        if not lacking and server is not None and not server(key):
            lacking = sorted(cases)  # recorded by sealtrail, but the server's hold is OFF
        if lacking:
            findings.append(Finding("hold-missing", _chain_of(key), "no legal hold for case(s) "
                                    f"{', '.join(lacking)} although their manifest lists it",
                                    key))
    return findings


def _chain_of(key: str) -> str:
    return key.split("/")[1] if key.startswith(layout.CHAINS) else "-"


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
) -> ArchiveReport:
    """Verify every chain in ``store`` against ``keyring``.

    ``locks``: also check every object's Object Lock (mode, retain-until not earlier than
    its class requires under this policy) and the legal holds the hold manifests call for.
    ``now_us``: report each chain's newest checkpoint age; with ``max_age_seconds`` an older
    newest checkpoint is a *stale* finding (heartbeats keep idle chains fresh).
    ``workers`` > 1 with ``reopen`` (which opens the same archive again, for a worker
    process: an S3 client is not shared across a fork): chains are verified in that many
    processes; the report is the same, in the same order."""
    chain_ids = layout.chain_ids(store.list(layout.CHAINS))
    options = {"check_signatures": check_signatures, "locks": locks}
    pool = None
    if workers > 1 and reopen is not None and len(chain_ids) > 1:
        import multiprocessing

        pool = multiprocessing.get_context("fork").Pool(
            min(workers, len(chain_ids)), initializer=_init_worker,
            initargs=(reopen, keyring, options))
        found: Iterator[ChainReport] = pool.imap(_verify_in_worker, chain_ids)
    else:
        found = (verify_chain(store, c, keyring, **options) for c in chain_ids)  # type: ignore[arg-type]
    reports = []
    try:
        for report in found:
            if now_us is not None and report.last_checkpoint_at is not None:
                report.age_seconds = max(0, now_us - report.last_checkpoint_at) / 1e6
                if max_age_seconds is not None and report.age_seconds > max_age_seconds:
                    report.findings.append(Finding(
                        "stale", report.chain_id, f"newest checkpoint is "
                        f"{report.age_seconds:.0f} s old, more than --max-age "
                        f"{max_age_seconds:g} s: the archiver stopped, or the newest "
                        "checkpoints were removed", None, report.head_seq + 1))
            reports.append(report)
            if progress:
                progress(report)
    finally:
        if pool is not None:
            pool.terminate()
    result = ArchiveReport(store.url, reports)
    if locks is not None:
        result.findings = check_holds(store)
        result.locks_checked = sum(2 * c.segments + c.heartbeats for c in reports)
    return result


_worker: tuple[ArchiveStore, Keyring, dict[str, Any]] | None = None


def _init_worker(reopen: Callable[[], ArchiveStore], keyring: Keyring,
                 options: dict[str, Any]) -> None:
    global _worker
    _worker = (reopen(), keyring, options)


def _verify_in_worker(chain_id: str) -> ChainReport:
    assert _worker is not None, "_init_worker did not run"
    store, keyring, options = _worker
    return verify_chain(store, chain_id, keyring, **options)
