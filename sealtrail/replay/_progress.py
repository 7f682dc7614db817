"""How far a replay got: a progress line on stderr while it runs, its result when done."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sealtrail.replay._filters import Query
from sealtrail.replay._sources import Break


class Progress:
    """A one-line progress report on stderr: events written, events/s, ETA."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        self.enabled = enabled
        self.total = total
        self._start = time.monotonic()
        self._last = 0.0

    def update(self, read: int, written: int, force: bool = False) -> None:
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
                "breaks": [b.to_json() for b in self.breaks]}
