"""On-disk pieces of the spool: slot directories, segment records and ``.ack`` files.

A record is ``u32 length, u32 crc32(payload), payload`` with payload
``u16 key length, key, value``. A segment's ``.ack`` file holds ``u64 prefix,
u32 crc32(prefix)``: how many leading records of the segment were delivered.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import zlib
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from sealtrail.errors import ConfigError

__all__ = ["MAX_RECORD", "MAX_SLOTS", "OVERHEAD", "Position", "Segment", "encode_record",
           "load_segment", "open_slot", "read_record", "write_ack"]

log = logging.getLogger("sealtrail.producer.spool")

MAX_SLOTS = 64
MAX_RECORD = 16 * 1024 * 1024
_HEAD = struct.Struct(">II")
_KEYLEN = struct.Struct(">H")
_ACK = struct.Struct(">QI")
OVERHEAD = _HEAD.size + _KEYLEN.size
"""Bytes a record takes beyond its key and value."""


@dataclass(eq=False)
class Segment:
    """One segment file: its first global sequence number, record offsets, delivery flags."""

    base: int
    path: Path
    offsets: array = field(default_factory=lambda: array("Q"))  # type: ignore[type-arg]
    acked: bytearray = field(default_factory=bytearray)
    size: int = 0
    capacity: int = 0
    """Bytes allocated for the file (preallocated while it is the segment written to)."""
    prefix: int = 0
    """Leading records all delivered."""
    persisted_prefix: int = 0
    delivered: int = 0

    @property
    def count(self) -> int:
        return len(self.offsets)

    @property
    def ack_path(self) -> Path:
        return self.path.with_suffix(".ack")

    def mark(self, index: int) -> None:
        if self.acked[index]:
            return
        self.acked[index] = 1
        self.delivered += 1
        while self.prefix < len(self.acked) and self.acked[self.prefix]:
            self.prefix += 1


class Position(NamedTuple):
    """Where a record lives: a segment and a record index in it."""

    segment: Segment
    number: int
    """Index of the record within its segment."""


def open_slot(base: Path) -> tuple[Path, int]:
    """Lock the first free slot ``base/<n>`` and return it with the open lock fd.

    Each running client owns one slot; a restarted process takes the lowest free slot,
    so it finds what a crashed one left behind."""
    try:
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create the spool directory {base}: {exc.strerror}") from None
    for n in range(MAX_SLOTS):
        slot = base / str(n)
        slot.mkdir(exist_ok=True, mode=0o700)
        fd = os.open(slot / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return slot, fd
    raise ConfigError(f"all {MAX_SLOTS} spool slots under {base} are in use by running "
                      "processes; give each service instance its own spool_dir")


def encode_record(key: bytes, value: bytes) -> bytes:
    payload = _KEYLEN.pack(len(key)) + key + value
    if len(payload) > MAX_RECORD:
        raise ValueError(f"record of {len(payload)} bytes exceeds {MAX_RECORD}")
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def read_record(f: Any, offset: int) -> tuple[bytes, bytes]:
    """Key and value of the record at ``offset`` of the open segment file ``f``."""
    f.seek(offset)
    length, _crc = _HEAD.unpack(f.read(_HEAD.size))
    payload = f.read(length)
    (klen,) = _KEYLEN.unpack_from(payload)
    return payload[2:2 + klen], payload[2 + klen:]


def load_segment(base: int, path: Path) -> Segment:
    """A segment file found at start: its whole records (a torn tail is cut off) and the
    delivered prefix of its ``.ack`` file."""
    seg = Segment(base, path)
    data = path.read_bytes()
    pos = 0
    while pos + _HEAD.size <= len(data):
        length, crc = _HEAD.unpack_from(data, pos)
        end = pos + _HEAD.size + length
        if length < _KEYLEN.size or length > MAX_RECORD or end > len(data) or \
                zlib.crc32(data[pos + _HEAD.size:end]) != crc:
            break
        seg.offsets.append(pos)
        pos = end
    if pos < len(data):
        torn = len(data[pos:].rstrip(b"\0"))
        if torn:  # zeros are preallocated space; anything else is a torn record
            log.warning("spool segment %s: %d bytes after the last whole record "
                        "dropped (torn write from a crash)", path.name, torn)
        with open(path, "r+b") as f:
            f.truncate(pos)
    seg.size = seg.capacity = pos
    seg.acked = bytearray(seg.count)
    for i in range(min(_read_ack(seg), seg.count)):
        seg.mark(i)
    seg.persisted_prefix = seg.prefix
    return seg


def _read_ack(seg: Segment) -> int:
    try:
        raw = seg.ack_path.read_bytes()
    except OSError:
        return 0
    if len(raw) < _ACK.size:
        return 0
    prefix, crc = _ACK.unpack_from(raw)
    return prefix if zlib.crc32(raw[:8]) == crc else 0


def write_ack(seg: Segment) -> None:
    """Record the segment's delivered prefix in its ``.ack`` file (unless it was deleted)."""
    raw = struct.pack(">Q", seg.prefix)
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(seg.ack_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, raw + struct.pack(">I", zlib.crc32(raw)), 0)
        finally:
            os.close(fd)
    seg.persisted_prefix = seg.prefix
