"""The resume state file: which run it belongs to and how far that run got."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sealtrail.errors import ConfigError
from sealtrail.reading import Query
from sealtrail.replay._sinks import Sink
from sealtrail.runtime.durable import fsync_dir, private_opener


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
        """Replace the state file atomically and durably: after a crash it holds either
        this state or the one before, never a torn file."""
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", opener=private_opener) as out:
            out.write(json.dumps(asdict(self), sort_keys=True))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)

    @classmethod
    def load(cls, path: Path) -> ReplayState | None:
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"state file {path} is not a replay state: {exc}") from None


def state_for(source: str, query: Query, dest: str, state_path: Path | None
              ) -> tuple[ReplayState, bool]:
    """The state to start from and whether it resumes an interrupted run."""
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


def save_progress(state: ReplayState, sink: Sink, written: int, state_path: Path | None
                  ) -> None:
    """Make the output durable and, given a state file, record how far the run got."""
    state.out_bytes = sink.commit()
    state.written = written
    if state_path is not None:
        state.save(state_path)
