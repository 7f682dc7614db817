"""The two sources: the archive, each segment checked against its signed checkpoint before
any of its records is used, and the sealed topic (read and checked in ``_run``)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sealtrail.replay as _pkg  # tunables (CLOCK_SKEW_US) are read from it at call time
from sealtrail import fast_segments as fast
from sealtrail import layout
from sealtrail.archive import ArchiveStore, ObjectMissingError, open_store
from sealtrail.core import merkle
from sealtrail.core.chain import ChainHead
from sealtrail.core.checkpoint import Checkpoint, SignedCheckpoint
from sealtrail.core.hashing import ZERO_HASH
from sealtrail.core.signing import Keyring
from sealtrail.errors import DecodeError, IntegrityError
from sealtrail.fast_segments import Row, decode_segment, transcode_segment
from sealtrail.replay._filters import Query
from sealtrail.replay._sinks import jsonl_bytes
from sealtrail.segments import read_segment
from sealtrail.verify import Finding, check_entries, rows_check_out

# Where the evidence stops checking out; nothing after it in that chain is replayed.
# The same record verify reports, so both tools name breaks the same way.
Break = Finding


@dataclass(frozen=True)
class SegmentTask:
    """One segment to check and filter, with everything needed from its checkpoints."""

    store_url: str
    s3_endpoint: str | None
    chain_id: str
    index: int
    checkpoint: Checkpoint
    head_seq: int
    head_hash: bytes
    query: Query
    jsonl: bool
    spill_dir: str | None = None  # a worker process leaves its JSON lines in a file here


@dataclass
class SegmentResult:
    index: int
    entries: int
    matched: list[dict[str, Any]]
    jsonl: bytes | None
    first_offset: int | None
    last_offset: int | None
    first_epoch: int
    last_epoch: int
    partition: int | None
    problem: Break | None
    count: int = 0
    spilled: str | None = None  # the file holding ``jsonl`` (see SegmentTask.spill_dir)


_worker_keyring: Keyring | None = None
_worker_stores: dict[tuple[str, str | None], ArchiveStore] = {}


def init_worker(keyring: Keyring | None) -> None:
    """Pool initializer: the keyring :func:`check_segment` uses when given none."""
    global _worker_keyring
    _worker_keyring = keyring


def _store(url: str, endpoint: str | None) -> ArchiveStore:
    found = _worker_stores.get((url, endpoint))
    if found is None:
        found = _worker_stores[(url, endpoint)] = open_store(url, s3_endpoint_url=endpoint)
    return found


def check_segment(task: SegmentTask, keyring: Keyring | None = None) -> SegmentResult:
    """Read and check one segment against its (already checked) checkpoint; the records
    matching the query when everything checks out. With ``task.spill_dir`` the JSON lines
    go to a file there rather than back through the pool's pipe: a parent that receives
    them by pickle spends as long on them as the worker spent making them."""
    result = _check_segment(task, keyring)
    if task.spill_dir is not None and result.jsonl:
        fd, path = tempfile.mkstemp(prefix=f"{task.index}-", suffix=".jsonl",
                                    dir=task.spill_dir)
        with os.fdopen(fd, "wb") as out:
            out.write(result.jsonl)
        result.jsonl, result.spilled = None, path
    return result


def _check_segment(task: SegmentTask, keyring: Keyring | None) -> SegmentResult:
    keyring = keyring if keyring is not None else _worker_keyring
    cp = task.checkpoint
    key = cp.segment_key
    result = SegmentResult(task.index, 0, [], None, None, None, 0, 0, None, None)

    def fail(kind: str, message: str, seq: int | None = None) -> SegmentResult:
        result.problem = Break(kind, task.chain_id, message, key,
                               cp.first_seq if seq is None else seq)
        return result

    try:
        data = _store(task.store_url, task.s3_endpoint).get(key)
    except ObjectMissingError:
        return fail("missing", f"segment is missing (checkpoint {cp.index} covers seq "
                    f"{cp.first_seq}..{cp.last_seq})")
    if hashlib.sha256(data).digest() != cp.segment_sha256 or len(data) != cp.segment_size:
        return fail("modified", f"segment bytes do not match checkpoint {cp.index}; run "
                    "`sealtrail verify` for the details")
    rows = transcode_segment(data)
    if rows is not None and rows_check_out(
            ChainHead(task.chain_id, task.head_seq, task.head_hash, rows[0][fast.EPOCH]),
            None, rows, keyring, cp):
        if task.jsonl:
            return _matched_rows(task, rows, result)
        records = decode_segment(data)  # checked on the native path: the records as dicts
        if records is not None and len(records) == len(rows):
            return _matched_records(task, rows, records, result)
    try:
        records = read_segment(data)
    except DecodeError as exc:
        return fail("malformed", str(exc))
    if len(records) != cp.size:
        return fail("truncated", f"segment holds {len(records)} entries, checkpoint "
                    f"{cp.index} covers {cp.size}")
    first = records[0]
    head = ChainHead(task.chain_id, task.head_seq, task.head_hash, first.get("epoch", 0))
    head, _, broken = check_entries(head, None, records, keyring)
    result.entries = head.seq - cp.first_seq + 1
    if broken is not None:
        return fail(broken.kind, broken.message, broken.seq)
    if merkle.root([r["entry_hash"] for r in records]) != cp.merkle_root:
        return fail("modified", f"Merkle root of the segment differs from checkpoint {cp.index}")
    if head.entry_hash != cp.head_hash or head.seq != cp.last_seq:
        return fail("modified", f"chain head differs from checkpoint {cp.index}", cp.last_seq)
    result.first_offset = first["source"]["offset"]
    result.last_offset = records[-1]["source"]["offset"]
    result.partition = first["source"]["partition"]
    result.first_epoch, result.last_epoch = first["epoch"], records[-1]["epoch"]
    matched = [r for r in records if task.query.matches(r)]
    result.count = len(matched)
    if task.jsonl:  # encoded here, on the worker's core; the parent only writes bytes
        result.jsonl = jsonl_bytes(matched)
    else:
        result.matched = matched
    return result


def _matched_rows(task: SegmentTask, rows: list[Row], result: SegmentResult) -> SegmentResult:
    """The result of a checked segment read on the native path: its matching records as
    JSON lines (each line the canonical JSON of the record, as :func:`jsonl_bytes` writes)."""
    first, last = rows[0], rows[-1]
    result.entries = len(rows)
    result.first_offset, result.last_offset = first[fast.OFFSET], last[fast.OFFSET]
    result.partition = first[fast.PARTITION]
    result.first_epoch, result.last_epoch = first[fast.EPOCH], last[fast.EPOCH]
    query = task.query
    if query == Query(include_rejections=query.include_rejections):  # no range, no filter
        lines = [row[fast.RECORD_JSON] for row in rows
                 if query.include_rejections or row[fast.EVENT] is not None]
    else:
        lines = [row[fast.RECORD_JSON] for row in rows
                 if query.matches(json.loads(row[fast.RECORD_JSON]))]
    result.count = len(lines)
    result.jsonl = b"\n".join(lines) + b"\n" if lines else b""
    return result


def _matched_records(task: SegmentTask, rows: list[Row], records: list[dict[str, Any]],
                     result: SegmentResult) -> SegmentResult:
    """The result of a segment checked on the native path (``rows``), with its matching
    records as dicts (``records``, the same segment decoded natively)."""
    first, last = rows[0], rows[-1]
    result.entries = len(rows)
    result.first_offset, result.last_offset = first[fast.OFFSET], last[fast.OFFSET]
    result.partition = first[fast.PARTITION]
    result.first_epoch, result.last_epoch = first[fast.EPOCH], last[fast.EPOCH]
    query = task.query
    if query == Query(include_rejections=query.include_rejections):  # no range, no filter
        result.matched = [r for r in records
                          if query.include_rejections or r["event"] is not None]
    else:
        result.matched = [r for r in records if query.matches(r)]
    result.count = len(result.matched)
    return result


@dataclass
class ChainPlan:
    """A chain's checked checkpoints and which segments to read."""

    chain_id: str
    checkpoints: list[SignedCheckpoint]
    first: int  # index of the first segment to read
    problem: Break | None = None


class ArchiveSource:
    """Sealed records from the archive, checked against their checkpoints."""

    def __init__(self, store: ArchiveStore, keyring: Keyring, *, check_signatures: bool = True,
                 s3_endpoint: str | None = None) -> None:
        self.store = store
        self.keyring = keyring
        self.entry_keyring = keyring if check_signatures else None
        self.s3_endpoint = s3_endpoint
        self.description = f"archive {store.url}"

    def plan(self, chain_id: str, query: Query) -> ChainPlan:
        """Check every checkpoint of ``chain_id`` in order and find the first segment whose
        records can fall in the range (checkpoints are signed, segments are not read here)."""
        plan = ChainPlan(chain_id, [], 0)
        keys = sorted(k for k in self.store.list(f"{layout.CHAINS}{chain_id}/checkpoints/"))
        prev_hash, next_seq = ZERO_HASH, 0
        head_hash = ChainHead.genesis(chain_id).entry_hash
        for position, key in enumerate(keys):
            seg = layout.segment_key(chain_id, position)

            def stop(kind: str, message: str, seg: str = seg, seq: int = next_seq) -> ChainPlan:
                plan.problem = Break(kind, chain_id, message, seg, seq)
                return plan

            if layout.parse_index(key) != position:
                return stop("missing", f"checkpoint {position} is missing (next found: {key})")
            try:
                signed = SignedCheckpoint.from_bytes(self.store.get(key))
                problem = signed.problem(self.keyring)
            except (IntegrityError, TypeError, ValueError) as exc:
                return stop("malformed", f"checkpoint {position}: {exc}")
            if problem:
                kind = "unknown-key" if problem.startswith("unknown key") else "signature"
                return stop(kind, f"checkpoint {position}: {problem}")
            cp = signed.checkpoint
            heartbeat = cp.segment_key == ""  # no new entries (docs/format.md)
            if cp.chain_id != chain_id or cp.index != position or (
                    cp.segment_key != seg and not heartbeat):
                return stop("reordered", f"checkpoint file {position} holds checkpoint "
                            f"{cp.index} of chain {cp.chain_id} for {cp.segment_key}")
            if cp.prev_checkpoint_hash != prev_hash:
                return stop("link", f"checkpoint {position} does not link to checkpoint "
                            f"{position - 1}")
            if cp.first_seq != next_seq:
                return stop("seq", f"checkpoint {position} starts at seq {cp.first_seq}, "
                            f"expected {next_seq}")
            if heartbeat and (cp.last_seq != next_seq - 1 or cp.head_hash != head_hash
                              or cp.segment_size != 0):
                return stop("modified", f"checkpoint {position} is a heartbeat that does not "
                            "restate the chain head")
            plan.checkpoints.append(signed)
            prev_hash, next_seq = signed.checkpoint_hash, cp.last_seq + 1
            head_hash = cp.head_hash
        if not keys:
            plan.problem = Break("missing", chain_id, "no checkpoint: nothing of this chain "
                                 "is covered by a signature", None, 0)
        if query.since is not None:
            # Every record of a segment was sealed before its checkpoint was made.
            while (plan.first < len(plan.checkpoints) and
                   plan.checkpoints[plan.first].checkpoint.created_at
                   < query.since - _pkg.CLOCK_SKEW_US):
                plan.first += 1
        return plan

    def tasks(self, plan: ChainPlan, start: int, query: Query, jsonl: bool,
              spill_dir: str | None = None) -> Iterator[SegmentTask]:
        for index in range(start, len(plan.checkpoints)):
            cp = plan.checkpoints[index].checkpoint
            if not cp.segment_key:
                continue  # a heartbeat: nothing to read
            if index:
                before = plan.checkpoints[index - 1].checkpoint
                head_seq, head_hash = before.last_seq, before.head_hash
                if (query.until is not None
                        and before.created_at > query.until + _pkg.CLOCK_SKEW_US):
                    return  # the previous segment already reached past the range
            else:
                head_seq, head_hash = -1, ChainHead.genesis(plan.chain_id).entry_hash
            yield SegmentTask(self.store.url, self.s3_endpoint, plan.chain_id, index, cp,
                              head_seq, head_hash, query, jsonl, spill_dir)


class KafkaSource:
    """Sealed records from the sealed topic, from the offsets ``offsets_for_times`` gives."""

    def __init__(self, settings: Any, keyring: Keyring, *, check_signatures: bool = True) -> None:
        self.settings = settings
        self.keyring = keyring if check_signatures else None
        self.description = f"kafka {settings.bootstrap} topic {settings.sealed_topic}"
