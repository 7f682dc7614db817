"""The producer's durable local spool: a bounded, append-only log of encoded events.

Every event ``emit()`` accepts is copied into a memory-mapped, preallocated segment file
before ``emit()`` returns, so a process killed with SIGKILL loses nothing that was
accepted: the bytes are in the kernel's page cache (MAP_SHARED), no system call needed.
``fsync`` decides what survives a power loss or an OS crash (see
docs/producer.md, "Spool"):

- ``always``: fsync after every append (slow; survives power loss per event);
- ``interval``: a background thread fsyncs every ``fsync_interval`` seconds (default);
- ``never``: the operating system decides when to write back.

Layout of a spool slot directory::

    .lock                      flock held by the process that owns the slot
    00000000000000000000.seg   records with global sequence numbers from 0
    00000000000000000000.ack   how many leading records of that segment were delivered

Records and ``.ack`` files are laid out in :mod:`.spool_files`. A segment is deleted
once every record in it has been delivered. After a crash the records not known to be
delivered are sent again; the sealer drops the duplicates by event_id
(``Settings.dedupe_window``).
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

from sealtrail.errors import ConfigError
from sealtrail.producers.spool_files import (
    OVERHEAD,
    Position,
    Segment,
    encode_record,
    load_segment,
    open_slot,
    read_record,
    write_ack,
)
from sealtrail.runtime.durable import fsync_dir

__all__ = ["FSYNC_POLICIES", "Position", "Spool", "fsync_close", "open_slot"]

FSYNC_POLICIES = ("always", "interval", "never")


def fsync_close(fds: list[int]) -> None:
    """fsync and close each fd."""
    for fd in fds:
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Spool:
    """Append-only segment files in one slot directory, bounded to ``max_bytes``.

    Threading: one writer appends (under the client's lock); delivery reports set
    ``Segment.acked`` flags and :meth:`settle` folds them into the counters, both under
    the client's lock; the delivery thread calls ``persist_acks`` and ``read``. Each byte
    counter has a single writer.
    """

    def __init__(self, directory: Path, *, max_bytes: int, segment_bytes: int = 4 << 20,
                 fsync: str = "interval") -> None:
        if fsync not in FSYNC_POLICIES:
            raise ConfigError(f"spool fsync policy {fsync!r} is not one of {FSYNC_POLICIES}")
        if max_bytes < 1024 or segment_bytes < 1024:
            raise ConfigError("spool max_bytes and segment_bytes must be at least 1024")
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = min(segment_bytes, max(1024, max_bytes // 4))
        self.fsync = fsync
        self.segments: list[Segment] = []
        self._appended_bytes = 0  # written only under the client's lock (emit)
        self._freed_bytes = 0  # written only by the delivery thread (ack, sweep)
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._pending_fds: list[int] = []
        self._dirty = False
        self._dir_dirty = False
        self.recovered = self._recover()
        self._next = self.segments[-1].base + self.segments[-1].count if self.segments else 0
        self._roll()

    # -- recovery --------------------------------------------------------------------

    def _recover(self) -> int:
        """Load existing segments; returns how many undelivered records they hold."""
        pending = 0
        for path in sorted(self.directory.glob("*.seg")):
            try:
                base = int(path.stem)
            except ValueError:
                continue
            seg = load_segment(base, path)
            if seg.delivered == seg.count:
                self._delete(seg)
                continue
            pending += seg.count - seg.delivered
            self.segments.append(seg)
            self._appended_bytes += seg.size
        return pending

    # -- writing ---------------------------------------------------------------------

    def _roll(self, need: int = 0) -> None:
        """Start a new segment file, preallocated and memory-mapped: an append is then a
        copy into the page cache, which survives the process being killed."""
        if self._map is not None:
            old = self.current
            self._map.close()
            os.ftruncate(self._fd, old.size)
            self._appended_bytes -= old.capacity - old.size
            old.capacity = old.size
            if self.fsync != "never":
                self._pending_fds.append(os.dup(self._fd))  # fsynced by the sync thread
            os.close(self._fd)
            self._fd = -1
            self._map = None
        capacity = max(self.segment_bytes, need)
        seg = Segment(self._next, self.directory / f"{self._next:020d}.seg", capacity=capacity)
        fd = os.open(seg.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # Allocate the blocks now: writing through a mapping into a sparse file on a
            # full disk would kill the process with SIGBUS; this raises ENOSPC instead.
            os.posix_fallocate(fd, 0, capacity)
            self._map = mmap.mmap(fd, capacity)
        except OSError:
            os.close(fd)
            seg.path.unlink(missing_ok=True)
            raise
        self._fd = fd
        self._appended_bytes += capacity
        self.segments.append(seg)
        self._dir_dirty = True

    @property
    def total_bytes(self) -> int:
        """Bytes of the segments on disk."""
        return self._appended_bytes - self._freed_bytes

    @property
    def current(self) -> Segment:
        return self.segments[-1]

    @property
    def end(self) -> Position:
        """The position just after the last record appended."""
        return Position(self.current, self.current.count)

    def has_room(self, nbytes: int) -> bool:
        """Whether a record of ``nbytes`` (key + value) fits within ``max_bytes``."""
        need = nbytes + OVERHEAD
        seg = self.current
        if seg.size + need <= seg.capacity:
            return True
        after_roll = self.total_bytes - (seg.capacity - seg.size) + max(self.segment_bytes, need)
        return after_roll <= self.max_bytes

    def append(self, key: bytes, value: bytes) -> Position:
        """Append one record (a copy into the mapped segment); returns where it is."""
        record = encode_record(key, value)
        seg = self.current
        if seg.size + len(record) > seg.capacity or self._map is None:
            self._roll(len(record))
            seg = self.current
        assert self._map is not None
        self._map[seg.size:seg.size + len(record)] = record
        if self.fsync == "always":
            os.fsync(self._fd)
        else:
            self._dirty = True
        seg.offsets.append(seg.size)
        seg.acked.append(0)
        seg.size += len(record)
        self._next += 1
        return Position(seg, seg.count - 1)

    def settle(self) -> tuple[int, bool]:
        """Fold the delivery flags set since the last call (``seg.acked[i] = 1``, the
        whole work of a delivery report) into the counters and delivered prefixes, and
        delete fully delivered segments other than the current one: in bulk, at C speed
        (bytearray count / find). Returns (records newly delivered, whether space was
        freed)."""
        newly = 0
        freed = False
        last = self.segments[-1]
        for seg in self.segments[:]:
            delivered = seg.prefix + seg.acked.count(1, seg.prefix)
            if delivered != seg.delivered:
                newly += delivered - seg.delivered
                seg.delivered = delivered
                prefix = seg.acked.find(0, seg.prefix)
                seg.prefix = len(seg.acked) if prefix < 0 else prefix
            if seg.delivered == seg.count and seg is not last:
                self._free(seg)
                freed = True
        return newly, freed

    def ack(self, seg: Segment, index: int) -> bool:
        """Mark a record delivered; True when that freed space (a segment was deleted)."""
        seg.mark(index)
        if seg.delivered == seg.count and seg is not self.segments[-1] \
                and seg in self.segments:
            self._free(seg)
            return True
        return False

    def _sweep(self) -> None:
        """Delete fully delivered segments other than the current one."""
        for seg in [s for s in self.segments[:-1] if s.delivered == s.count]:
            self._free(seg)

    def _free(self, seg: Segment) -> None:
        self.segments.remove(seg)
        self._freed_bytes += seg.capacity
        self._delete(seg)

    def _delete(self, seg: Segment) -> None:
        for path in (seg.path, seg.ack_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._dir_dirty = True

    def take_dirty_fds(self) -> list[int]:
        """Duplicates of the fds with unsynced appends, to fsync (and close) outside the
        lock; empty when nothing was appended since the last call."""
        fds, self._pending_fds = self._pending_fds, []
        if self._dirty and self.fsync != "never" and self._fd >= 0:
            self._dirty = False
            fds.append(os.dup(self._fd))
        return fds

    def persist_acks(self) -> None:
        """Record each segment's delivered prefix in its .ack file (fewer resends after a
        crash)."""
        for seg in self.segments:
            if seg.prefix != seg.persisted_prefix:
                write_ack(seg)
        self._sweep()

    def sync_directory(self) -> None:
        """fsync the directory after segments were created or deleted."""
        if self._dir_dirty and self.fsync != "never":
            self._dir_dirty = False
            fsync_dir(self.directory)

    def sync(self) -> None:
        """fsync appended data and the directory, persist delivery prefixes."""
        fsync_close(self.take_dirty_fds())
        self.persist_acks()
        self.sync_directory()

    # -- reading ---------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Records in the spool not yet delivered."""
        return sum(s.count - s.delivered for s in self.segments)

    def first_undelivered(self) -> Position:
        for seg in self.segments:
            if seg.delivered < seg.count:
                return Position(seg, seg.prefix)
        return self.end

    def read(self, start: Position, stop: Position, limit: int
             ) -> Iterator[tuple[Position, bytes, bytes]]:
        """Undelivered records from ``start`` (inclusive) to ``stop`` (exclusive), at most
        ``limit``, in order. Records before ``stop`` are immutable, so no lock is needed."""
        segs = self.segments[:]
        try:
            i = segs.index(start.segment)
        except ValueError:  # the segment was fully delivered and deleted meanwhile
            i = next((k for k, s in enumerate(segs) if s.base > start.segment.base), len(segs))
            start = Position(segs[i], 0) if i < len(segs) else stop
        index = start.number
        for seg in segs[i:]:
            last = stop.number if seg is stop.segment else seg.count
            wanted = [k for k in range(index, last) if not seg.acked[k]][:limit]
            if wanted:
                with open(seg.path, "rb") as f:
                    for k in wanted:
                        key, value = read_record(f, seg.offsets[k])
                        yield (Position(seg, k), key, value)
                        limit -= 1
            if seg is stop.segment or limit <= 0:
                return
            index = 0

    def close(self) -> None:
        self.settle()
        if self._fd >= 0:
            if self._map is not None:
                self._map.close()
                self._map = None
            os.ftruncate(self._fd, self.current.size)
            self.current.capacity = self.current.size
            self.sync()
            os.close(self._fd)
            self._fd = -1
            if self.depth == 0:  # nothing left to send: leave no empty segment behind
                for seg in self.segments:
                    self._delete(seg)
                self.sync_directory()
