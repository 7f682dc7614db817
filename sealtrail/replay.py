"""Replay a time range of sealed records, verified while they are read, into a sink.

Two sources:

* the archive (:class:`ArchiveSource`): every checkpoint of every chain is checked
  (signature, link to the previous one, seq continuity, segment key); the segments whose
  records can fall in the range are read, each checked against its checkpoint exactly as
  ``sealtrail verify`` does (digest, entry hashes, links, signatures, raw-offset
  completeness, Merkle root, head). A segment is checked as a whole before any of its
  records is written. Segments are independent given their checkpoints, so they can be
  checked on several cores (``workers``);
* the sealed topic (:class:`KafkaSource`): each partition is read from the offset that
  ``offsets_for_times`` gives for ``since``; each chain is anchored at the first of its
  records that is read (its hash and signature are checked, its link cannot be: the entry
  before it is not read) and every later record must link to the one before it.

The time range selects on ``ingested_at`` (the sealer's clock, which is also the
Kafka timestamp of the sealed record): ``since`` inclusive, ``until`` exclusive.

A run stops at the first break in the evidence with a :class:`Break` naming chain,
segment and seq; with ``continue_on_error`` the broken chain is abandoned from that point
and the others go on, every break listed. Progress is resumable: a state file records,
after every segment (archive) or batch (Kafka), how far each chain or partition got and
how many bytes of the output file are complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from sealtrail import layout
from sealtrail.archive import ArchiveStore, ObjectMissingError, open_store
from sealtrail.core import merkle
from sealtrail.core.chain import ChainHead, check_entry
from sealtrail.core.checkpoint import Checkpoint, SignedCheckpoint
from sealtrail.core.hashing import ZERO_HASH
from sealtrail.core.signing import Keyring
from sealtrail.errors import ConfigError, DecodeError, IntegrityError, TransportError
from sealtrail.segments import read_segment
from sealtrail.verify import Finding, check_entries

__all__ = [
    "ArchiveSource",
    "Break",
    "KafkaSource",
    "Query",
    "ReplayResult",
    "ReplayState",
    "open_sink",
    "parse_time",
    "record_to_json",
    "replay",
]

#: Slack for clocks of the sealer and the archiver (checkpoint created_at vs ingested_at).
CLOCK_SKEW_US = 5 * 60 * 1_000_000
#: How often the state file (and the output file) are made durable during a replay.
SAVE_EVERY_S = 1.0


def parse_time(text: str | None) -> int | None:
    """Microseconds UTC from ``2026-03-01``, ``2026-03-01T10:00:00Z`` (any ISO-8601 form;
    a naive time is UTC) or an integer count of microseconds."""
    if text is None or text == "":
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"cannot read {text!r} as a time: use 2026-03-01, "
                          "2026-03-01T10:00:00Z or microseconds since the epoch") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1_000_000)


def format_time(us: int | None) -> str:
    if us is None:
        return "-"
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Query:
    """What to replay: an ``ingested_at`` range and exact-match filters on the event."""

    since: int | None = None
    until: int | None = None
    event_type: str | None = None
    actor: str | None = None
    service: str | None = None
    include_rejections: bool = False

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ConfigError("--until must be later than --since")

    def matches(self, record: dict[str, Any]) -> bool:
        at = record["ingested_at"]
        if (self.since is not None and at < self.since) or (
                self.until is not None and at >= self.until):
            return False
        event = record.get("event")
        if event is None:
            return self.include_rejections and not (self.event_type or self.actor or self.service)
        return ((self.event_type is None or event["event_type"] == self.event_type)
                and (self.actor is None or event["actor"]["id"] == self.actor)
                and (self.service is None or event["origin"]["service"] == self.service))

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in asdict(self).items() if v not in (None, False)]
        return " ".join(parts) or "everything"


# Where the evidence stops checking out; nothing after it in that chain is replayed.
# The same record verify reports, so both tools name breaks the same way.
Break = Finding


# -- output ----------------------------------------------------------------------------


def _hex(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_hex)


def record_to_json(record: dict[str, Any]) -> str:
    """One sealed record as JSON: every field, byte strings as lowercase hex. Its entry body
    has the same canonical bytes as the Avro record, so the entry hash can be recomputed
    from this form alone (docs/format.md, "Canonical JSON")."""
    return _json.encode(record)


class Sink(Protocol):
    """Where replayed records go. ``position()`` is what a state file records."""

    description: str

    def write(self, records: list[dict[str, Any]], jsonl: bytes | None = None) -> None: ...

    def commit(self) -> int:
        """Make what was written durable; returns the position to resume from."""
        ...

    def close(self) -> None: ...


class JsonlSink:
    """JSON lines (one sealed record per line) to a file or to stdout."""

    def __init__(self, path: Path | None, resume_at: int | None) -> None:
        self.description = f"file:{path}" if path else "-"
        self._path = path
        self._out: IO[bytes]
        if path is None:
            self._out = sys.stdout.buffer
        elif resume_at is None:
            self._out = open(path, "wb")  # noqa: SIM115 - closed in close()
        else:
            self._out = open(path, "r+b")  # noqa: SIM115
            self._out.truncate(resume_at)
            self._out.seek(resume_at)

    def write(self, records: list[dict[str, Any]], jsonl: bytes | None = None) -> None:
        if jsonl is None:
            jsonl = "".join(record_to_json(r) + "\n" for r in records).encode("utf-8")
        self._out.write(jsonl)

    def commit(self) -> int:
        self._out.flush()
        if self._path is None:
            return 0
        os.fsync(self._out.fileno())
        return self._out.tell()

    def close(self) -> None:
        self._out.flush()
        if self._path is not None:
            self._out.close()


class AvroSink:
    """An Avro object container file of SealedRecords (the current schema), deflate."""

    def __init__(self, path: Path, resume_at: int | None) -> None:
        import fastavro

        from sealtrail import schemas  # type: ignore[attr-defined]
        from sealtrail.core.envelope import strip_logical_types

        self.description = f"file:{path}"
        schema = fastavro.parse_schema(strip_logical_types(schemas.sealed_record()))
        if resume_at is None:
            self._out = open(path, "w+b")  # noqa: SIM115
        else:
            self._out = open(path, "r+b")  # noqa: SIM115
            self._out.truncate(resume_at)
            self._out.seek(resume_at)  # fastavro appends to a "+" file not positioned at 0
        self._writer = fastavro.write.Writer(self._out, schema, codec="deflate")

    def write(self, records: list[dict[str, Any]], jsonl: bytes | None = None) -> None:
        for record in records:
            self._writer.write(record)

    def commit(self) -> int:
        self._writer.flush()
        self._out.flush()
        os.fsync(self._out.fileno())
        return self._out.tell()

    def close(self) -> None:
        self._writer.flush()
        self._out.close()


class TopicSink:
    """A Kafka topic, through an idempotent producer. Key: the event_id (a replay repeated
    after an interruption can be deduplicated downstream by it); value: the record as JSON;
    headers: event_id, chain_id, seq."""

    def __init__(self, topic: str, bootstrap: str) -> None:
        from confluent_kafka import Producer

        self.description = f"topic:{topic}"
        self._topic = topic
        self._producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                                   "acks": "all", "linger.ms": 20,
                                   "error_cb": lambda err: None})
        self.failed = 0

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.failed += 1

    def write(self, records: list[dict[str, Any]], jsonl: bytes | None = None) -> None:
        for record in records:
            event = record.get("event") or {}
            event_id = str(event.get("event_id") or f"{record['chain_id']}:{record['seq']}")
            value = record_to_json(record).encode("utf-8")
            headers = {"event_id": event_id, "chain_id": record["chain_id"],
                       "seq": str(record["seq"])}
            while True:
                try:
                    self._producer.produce(self._topic, value, event_id.encode("utf-8"),
                                           headers=headers, on_delivery=self._delivered)
                    break
                except BufferError:
                    self._producer.poll(0.1)
            self._producer.poll(0)

    def commit(self) -> int:
        remaining = self._producer.flush(60)
        if remaining or self.failed:
            raise TransportError(f"topic {self._topic}: {remaining} records undelivered, "
                                 f"{self.failed} failed")
        return 0

    def close(self) -> None:
        self._producer.flush(60)


def _check_resumable(path: Path, resume_at: int | None) -> None:
    if resume_at is None:
        return
    size = path.stat().st_size if path.exists() else -1
    if size < resume_at:
        what = "is gone" if size < 0 else "is shorter than the interrupted run left it"
        raise ConfigError(f"cannot resume into {path}: it {what}; remove its state file "
                          "to start again")


def open_sink(dest: str, *, bootstrap: str = "", resume_at: int | None = None) -> Sink:
    """``topic:NAME``, ``file:PATH.jsonl``, ``file:PATH.avro`` or ``-`` (JSON lines on
    stdout). ``resume_at``: bytes of an output file that a previous run completed."""
    if dest == "-":
        return JsonlSink(None, None)
    if dest.startswith("topic:") and dest[6:]:
        if not bootstrap:
            raise ConfigError("--to topic: needs a broker: start `sealtrail dev up` or set "
                              "SEALTRAIL_BOOTSTRAP")
        return TopicSink(dest[6:], bootstrap)
    if dest.startswith("file:") and dest[5:]:
        path = Path(dest[5:])
        if path.suffix in (".jsonl", ".avro"):
            _check_resumable(path, resume_at)
        if path.suffix == ".jsonl":
            return JsonlSink(path, resume_at)
        if path.suffix == ".avro":
            return AvroSink(path, resume_at)
        if path.suffix == ".parquet":
            raise ConfigError("parquet output needs pyarrow, which sealtrail does not install; "
                              "write .avro or .jsonl")
    raise ConfigError(f"--to {dest!r}: use topic:NAME, file:PATH.jsonl, file:PATH.avro or -")


# -- resumable state ----------------------------------------------------------------------


@dataclass
class ReplayState:
    """What a state file holds: the run it belongs to and how far it got."""

    source: str
    query: dict[str, Any]
    dest: str
    positions: dict[str, dict[str, Any]] = field(default_factory=dict)
    out_bytes: int = 0
    written: int = 0
    complete: bool = False

    def same_run(self, other: ReplayState) -> bool:
        return (self.source, self.query, self.dest) == (other.source, other.query, other.dest)

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), sort_keys=True))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> ReplayState | None:
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"state file {path} is not a replay state: {exc}") from None


# -- progress --------------------------------------------------------------------------------


class Progress:
    """A one-line progress report on stderr: events written, events/s, ETA."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        self.enabled = enabled
        self.total = total
        self._start = time.monotonic()
        self._last = 0.0
        self.read = 0

    def update(self, read: int, written: int, force: bool = False) -> None:
        self.read = read
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.5:
            return
        self._last = now
        rate = read / max(now - self._start, 1e-6)
        eta = ""
        if self.total:
            left = max(self.total - read, 0)
            eta = f", ETA {left / rate:.0f} s" if rate else ""
            eta = f" of ~{self.total}" + eta
        sys.stderr.write(f"\rreplay: {read} entries checked{eta}, {written} written, "
                         f"{rate:,.0f} entries/s ")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


# -- archive source ---------------------------------------------------------------------------


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


_worker_keyring: Keyring | None = None
_worker_stores: dict[tuple[str, str | None], ArchiveStore] = {}


def _init_worker(keyring: Keyring | None) -> None:
    global _worker_keyring
    _worker_keyring = keyring


def _store(url: str, endpoint: str | None) -> ArchiveStore:
    found = _worker_stores.get((url, endpoint))
    if found is None:
        found = _worker_stores[(url, endpoint)] = open_store(url, s3_endpoint_url=endpoint)
    return found


def check_segment(task: SegmentTask, keyring: Keyring | None = None) -> SegmentResult:
    """Read and check one segment against its (already checked) checkpoint; the records
    matching the query when everything checks out."""
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
        result.jsonl = "".join(_json.encode(r) + "\n" for r in matched).encode("utf-8")
    else:
        result.matched = matched
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
                   < query.since - CLOCK_SKEW_US):
                plan.first += 1
        return plan

    def tasks(self, plan: ChainPlan, start: int, query: Query, jsonl: bool
              ) -> Iterator[SegmentTask]:
        for index in range(start, len(plan.checkpoints)):
            cp = plan.checkpoints[index].checkpoint
            if not cp.segment_key:
                continue  # a heartbeat: nothing to read
            if index:
                before = plan.checkpoints[index - 1].checkpoint
                head_seq, head_hash = before.last_seq, before.head_hash
                if query.until is not None and before.created_at > query.until + CLOCK_SKEW_US:
                    return  # the previous segment already reached past the range
            else:
                head_seq, head_hash = -1, ChainHead.genesis(plan.chain_id).entry_hash
            yield SegmentTask(self.store.url, self.s3_endpoint, plan.chain_id, index, cp,
                              head_seq, head_hash, query, jsonl)


@dataclass
class ReplayResult:
    """What a replay did: entries checked, records written, breaks found."""

    source: str
    dest: str
    query: Query
    checked: int = 0
    written: int = 0
    chains: int = 0
    segments: int = 0
    breaks: list[Break] = field(default_factory=list)
    resumed: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.breaks

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "dest": self.dest, "query": asdict(self.query),
                "checked": self.checked, "written": self.written, "chains": self.chains,
                "segments": self.segments, "ok": self.ok, "resumed": self.resumed,
                "seconds": round(self.seconds, 3),
                "breaks": [asdict(b) for b in self.breaks]}


def _state_for(source: str, query: Query, dest: str, state_path: Path | None
               ) -> tuple[ReplayState, bool]:
    fresh = ReplayState(source, asdict(query), dest)
    if state_path is None:
        return fresh, False
    found = ReplayState.load(state_path)
    if found is None or found.complete:
        return fresh, False
    if not found.same_run(fresh):
        raise ConfigError(f"state file {state_path} belongs to another replay "
                          f"({found.source} -> {found.dest}, {found.query}); remove it or "
                          "give another --state")
    return found, True


def replay_archive(
    source: ArchiveSource,
    query: Query,
    dest: str,
    *,
    bootstrap: str = "",
    state_path: Path | None = None,
    continue_on_error: bool = False,
    workers: int = 1,
    progress: bool = False,
    stop: Callable[[], bool] = lambda: False,
) -> ReplayResult:
    """Replay ``query`` from the archive into ``dest`` (see :func:`open_sink`)."""
    started = time.monotonic()
    state, resumed = _state_for(source.description, query, dest, state_path)
    result = ReplayResult(source.description, dest, query, resumed=resumed,
                          written=state.written)
    sink = open_sink(dest, bootstrap=bootstrap, resume_at=state.out_bytes if resumed else None)
    jsonl = isinstance(sink, JsonlSink)
    chain_ids = layout.chain_ids(source.store.list(layout.CHAINS))
    plans = [source.plan(c, query) for c in chain_ids]
    total = sum(cp.checkpoint.size for p in plans for cp in p.checkpoints[p.first:])
    meter = Progress(progress, total)
    pool = None
    if workers > 1:
        import multiprocessing

        pool = multiprocessing.get_context("fork").Pool(
            workers, initializer=_init_worker, initargs=(source.entry_keyring,))
    saved_at = time.monotonic()
    try:
        for plan in plans:
            result.chains += 1
            pos = state.positions.get(plan.chain_id, {})
            start = max(plan.first, int(pos.get("next_index", 0)))
            last_offset: int | None = pos.get("last_offset")
            last_epoch = int(pos.get("last_epoch", 0))
            tasks = list(source.tasks(plan, start, query, jsonl))
            if pool is not None:
                results: Iterator[SegmentResult] = pool.imap(check_segment, tasks)
            else:
                results = (check_segment(t, source.entry_keyring) for t in tasks)
            problem: Break | None = None
            for seg in results:
                if stop():
                    break
                problem = seg.problem
                if problem is None and last_offset is not None and seg.first_offset is not None \
                        and seg.first_offset != last_offset + 1:
                    problem = Break("completeness", plan.chain_id,
                                    f"raw offset {seg.first_offset} follows {last_offset}: "
                                    f"offsets {last_offset + 1}..{seg.first_offset - 1} of "
                                    f"partition {seg.partition} are unaccounted for",
                                    layout.segment_key(plan.chain_id, seg.index),
                                    plan.checkpoints[seg.index].checkpoint.first_seq)
                if problem is None and seg.first_epoch < last_epoch:
                    problem = Break("epoch", plan.chain_id,
                                    f"epoch {seg.first_epoch} after epoch {last_epoch} (fenced)",
                                    layout.segment_key(plan.chain_id, seg.index),
                                    plan.checkpoints[seg.index].checkpoint.first_seq)
                result.checked += seg.entries
                if problem is not None:
                    break
                sink.write(seg.matched, seg.jsonl)
                result.written += seg.count
                result.segments += 1
                last_offset, last_epoch = seg.last_offset, seg.last_epoch
                state.positions[plan.chain_id] = {"next_index": seg.index + 1,
                                                  "last_offset": last_offset,
                                                  "last_epoch": last_epoch}
                if state_path is not None and time.monotonic() - saved_at >= SAVE_EVERY_S:
                    state.out_bytes = sink.commit()
                    state.written = result.written
                    state.save(state_path)
                    saved_at = time.monotonic()
                meter.update(result.checked, result.written)
            if stop():
                break
            if problem is None:
                problem = plan.problem
            if problem is not None:
                result.breaks.append(problem)
                if not continue_on_error:
                    break
        else:
            state.complete = True
        state.out_bytes = sink.commit()
        state.written = result.written
        if state_path is not None:
            state.save(state_path)
    finally:
        if pool is not None:
            pool.terminate()
        sink.close()
        meter.update(result.checked, result.written, force=True)
        meter.done()
    result.seconds = time.monotonic() - started
    return result


# -- Kafka source -----------------------------------------------------------------------------


class KafkaSource:
    """Sealed records from the sealed topic, from the offsets ``offsets_for_times`` gives."""

    def __init__(self, settings: Any, keyring: Keyring, *, check_signatures: bool = True) -> None:
        self.settings = settings
        self.keyring = keyring if check_signatures else None
        self.description = f"kafka {settings.bootstrap} topic {settings.sealed_topic}"


def replay_kafka(
    source: KafkaSource,
    query: Query,
    dest: str,
    *,
    state_path: Path | None = None,
    continue_on_error: bool = False,
    progress: bool = False,
    stop: Callable[[], bool] = lambda: False,
    timeout: float = 30.0,
) -> ReplayResult:
    """Replay ``query`` from the sealed topic into ``dest``: each partition from the first
    offset at or after ``since`` up to the end it has when the replay starts."""
    import uuid

    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from sealtrail.registry_client import registry_client
    from sealtrail.schema_cache import WriterSchemas

    settings = source.settings
    started = time.monotonic()
    state, resumed = _state_for(source.description, query, dest, state_path)
    result = ReplayResult(source.description, dest, query, resumed=resumed,
                          written=state.written)
    sink = open_sink(dest, bootstrap=settings.bootstrap,
                     resume_at=state.out_bytes if resumed else None)
    writers = WriterSchemas(registry_client(settings.registry_url, settings.registry_auth))
    consumer = Consumer({
        "bootstrap.servers": settings.bootstrap,
        "group.id": f"sealtrail-replay-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed",
        "session.timeout.ms": settings.session_timeout_ms,
    })
    topic = settings.sealed_topic
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise TransportError(f"sealed topic {topic} does not exist on {settings.bootstrap}")
        partitions = sorted(meta.partitions)
        since_ms = (query.since - CLOCK_SKEW_US) // 1000 if query.since is not None else 0
        found = consumer.offsets_for_times(
            [TopicPartition(topic, p, max(since_ms, 0)) for p in partitions], timeout)
        assign, ends, total = [], {}, 0
        for tp in found:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition),
                                                        timeout, cached=False)
            begin = tp.offset if tp.offset >= 0 else high
            saved = state.positions.get(f"partition-{tp.partition}")
            if saved is not None:
                begin = max(begin, int(saved["next_offset"]))
            if begin < high:
                assign.append(TopicPartition(topic, tp.partition, begin))
                ends[tp.partition] = high
                total += high - begin
        meter = Progress(progress, total)
        heads: dict[str, ChainHead] = {}
        offsets: dict[str, int] = {}
        broken: set[str] = set()
        if assign:
            consumer.assign(assign)
        open_parts = {tp.partition for tp in assign}
        idle_since = time.monotonic()
        while open_parts and not stop():
            msgs = consumer.consume(2000, 0.5)
            if not msgs:
                if time.monotonic() - idle_since > timeout:
                    raise TransportError(f"no records from {topic} for {timeout:.0f} s while "
                                         f"partitions {sorted(open_parts)} were not finished")
                continue
            idle_since = time.monotonic()
            batch: list[dict[str, Any]] = []
            done_break = False
            for msg in msgs:
                part = msg.partition()
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        open_parts.discard(part)
                    continue
                if part not in open_parts:
                    continue
                at = msg.offset() or 0
                if at >= ends.get(part, 0) - 1:
                    open_parts.discard(part)
                state.positions[f"partition-{part}"] = {"next_offset": at + 1}
                try:
                    record, _codec = writers.decode(msg.value() or b"")
                except DecodeError as exc:
                    result.breaks.append(Break("malformed", f"partition {part}",
                                               f"offset {msg.offset()} does not decode: {exc}"))
                    if not continue_on_error:
                        done_break = True
                        break
                    continue
                chain = record["chain_id"]
                if chain in broken:
                    continue
                result.checked += 1
                head = heads.get(chain)
                if head is None:  # anchor: the entry before is not read
                    head = ChainHead(chain, record["seq"] - 1, record["prev_hash"],
                                     record["epoch"])
                link = check_entry(head, record, source.keyring)
                offset = record["source"]["offset"]
                if link is None and chain in offsets and offset != offsets[chain] + 1:
                    link_kind, link_msg = "completeness", (
                        f"raw offset {offset} follows {offsets[chain]}")
                elif link is not None:
                    link_kind, link_msg = link.kind, link.message
                else:
                    heads[chain] = head.advance(record)
                    offsets[chain] = offset
                    if query.matches(record):
                        batch.append(record)
                    continue
                broken.add(chain)
                result.breaks.append(Break(link_kind, chain, link_msg,
                                           f"{topic}/{part}@{msg.offset()}", head.seq + 1))
                if not continue_on_error:
                    done_break = True
                    break
            sink.write(batch)
            result.written += len(batch)
            if state_path is not None:
                state.out_bytes = sink.commit()
                state.written = result.written
                state.save(state_path)
            meter.update(result.checked, result.written)
            if done_break:
                break
        else:
            state.complete = not stop()
        result.chains = len(heads)
        state.out_bytes = sink.commit()
        state.written = result.written
        if state_path is not None:
            state.save(state_path)
        meter.done()
    finally:
        consumer.close()
        sink.close()
    result.seconds = time.monotonic() - started
    return result


def replay(source: ArchiveSource | KafkaSource, query: Query, dest: str, **kwargs: Any
           ) -> ReplayResult:
    """Replay from either source (keyword arguments as for replay_archive/replay_kafka)."""
    if isinstance(source, ArchiveSource):
        return replay_archive(source, query, dest, **kwargs)
    kwargs.pop("workers", None)
    kwargs.pop("bootstrap", None)
    return replay_kafka(source, query, dest, **kwargs)
