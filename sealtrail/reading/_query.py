"""Which sealed records a reader wants: the ``ingested_at`` range (``since`` inclusive,
``until`` exclusive) and exact-match filters on the event."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sealtrail.errors import ConfigError


@dataclass(frozen=True)
class Query:
    """Which records to read: an ``ingested_at`` range and exact-match filters on the event."""

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
