"""What a replay did, as the CLI prints it and ``--json`` shows it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sealtrail.reading import Query
from sealtrail.replay._sources import Break


@dataclass
class ReplayResult:
    """What a replay did: entries checked, records written, breaks found. From Kafka also
    what was read but is not evidence, so not written (not a break): ``anchoring`` records
    read only to anchor a chain the replay started inside a batch of, ``unsealed`` records
    whose batch seal is past the end of the run; ``notes`` says which, per chain."""

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
    anchoring: int = 0
    unsealed: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "dest": self.dest, "query": asdict(self.query),
                "checked": self.checked, "written": self.written, "chains": self.chains,
                "segments": self.segments, "ok": self.ok, "resumed": self.resumed,
                "seconds": round(self.seconds, 3), "anchoring": self.anchoring,
                "unsealed": self.unsealed, "notes": list(self.notes),
                "breaks": [b.to_json() for b in self.breaks]}
