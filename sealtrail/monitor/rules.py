"""The monitor's logic, pure: windowed counts of sealed records and the alert rules.

No Kafka, no clock, no archive here. The shell (``sealtrail.monitor.app``, a
faust-streaming agent) feeds it decoded sealed records with :meth:`Monitor.observe`,
the results of its probes (consumer lag, archive checkpoints) with
:meth:`Monitor.observe_lag` and :meth:`Monitor.observe_checkpoints`, and asks for
alert transitions with :meth:`Monitor.evaluate`, passing ``now`` in.

Windows are tumbling and keyed by the sealer's ``ingested_at`` (event time), so a
monitor that re-reads the sealed topic after a restart rebuilds the same windows.
A window is judged once it has ended and ``lateness`` has passed, by the stream's own
time (the newest ingested_at seen) while records are arriving, so a monitor working
through a backlog does not mistake unread windows for a drop; and by the wall clock
once nothing has arrived for a window and its lateness, so a pipeline that stops
entirely is still reported.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ALERT_NAMES", "Alert", "Monitor", "Thresholds", "WindowStats"]

US = 1_000_000
#: Windows judged at most in one evaluation after a pause (older ones are skipped).
MAX_CATCH_UP = 1000

#: Every alert the monitor can raise, with what it means (docs/operations.md).
ALERT_NAMES: dict[str, str] = {
    "volume_drop": "a service's events in the last window fell below a fraction of its "
                   "trailing baseline",
    "volume_stopped": "a service that emitted in the baseline windows emitted nothing in "
                      "the last window",
    "rejection_rate": "rejections / sealed records in the last window above the threshold",
    "new_schema_id": "a raw schema id never seen before appeared after the warm-up",
    "checkpoint_stale": "a chain's newest archived checkpoint is older than allowed",
    "clock_skew": "|ingested_at - occurred_at| of a service's event beyond the bound",
    "consumer_lag": "a stage's consumer group lags the high watermarks by more than allowed",
}

State = Literal["FIRING", "RESOLVED"]


@dataclass(frozen=True)
class Thresholds:
    """The rules' parameters; ``from_settings`` reads them from Settings."""

    window_seconds: float = 60.0
    lateness_seconds: float = 5.0
    baseline_windows: int = 5
    volume_drop_fraction: float = 0.5
    rejection_rate: float = 0.05
    min_window_events: int = 20
    skew_max_seconds: float = 300.0
    checkpoint_max_age_seconds: float = 900.0
    lag_max: int = 10_000

    def __post_init__(self) -> None:
        if self.window_seconds <= 0:
            raise ValueError("window_seconds must be > 0")
        if self.baseline_windows < 1:
            raise ValueError("baseline_windows must be >= 1")
        if not 0 < self.volume_drop_fraction <= 1:
            raise ValueError("volume_drop_fraction must be in (0, 1]")
        if not 0 <= self.rejection_rate <= 1:
            raise ValueError("rejection_rate must be in [0, 1]")

    @classmethod
    def from_settings(cls, settings: Any) -> Thresholds:
        return cls(
            window_seconds=settings.monitor_window_seconds,
            lateness_seconds=settings.monitor_lateness_seconds,
            baseline_windows=settings.monitor_baseline_windows,
            volume_drop_fraction=settings.monitor_volume_drop_fraction,
            rejection_rate=settings.monitor_rejection_rate,
            min_window_events=settings.monitor_min_window_events,
            skew_max_seconds=settings.monitor_skew_max_seconds,
            checkpoint_max_age_seconds=settings.monitor_checkpoint_max_age_seconds,
            lag_max=settings.monitor_lag_max,
        )

    @property
    def window_us(self) -> int:
        return max(1, int(self.window_seconds * US))


@dataclass(frozen=True)
class Alert:
    """One alert transition: ``FIRING`` when a rule starts to hold, ``RESOLVED`` when it
    stops. ``subject`` names what it is about (a service, a chain, a schema id, a stage)."""

    name: str
    subject: str
    state: State
    detail: str
    value: float
    threshold: float
    at_us: int

    def to_json(self) -> bytes:
        return json.dumps({
            "alert": self.name, "subject": self.subject, "state": self.state,
            "detail": self.detail, "value": self.value, "threshold": self.threshold,
            "at_us": self.at_us,
        }, sort_keys=True).encode()


@dataclass
class WindowStats:
    """What was sealed in one window."""

    records: int = 0
    rejections: Counter[str] = field(default_factory=Counter)
    by_service: Counter[str] = field(default_factory=Counter)
    by_type: Counter[tuple[str, str]] = field(default_factory=Counter)
    redactions: Counter[tuple[str, str]] = field(default_factory=Counter)
    schema_ids: Counter[int] = field(default_factory=Counter)
    max_skew_us: dict[str, int] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return sum(self.rejections.values())


class Monitor:
    """Windowed statistics of the sealed stream and the alerts derived from them."""

    def __init__(self, thresholds: Thresholds) -> None:
        self.t = thresholds
        self.windows: dict[int, WindowStats] = {}
        self.schema_first_seen: dict[int, int] = {}
        self.first_window: int | None = None
        self.firing: dict[tuple[str, str], Alert] = {}
        self.chain_heads: dict[str, tuple[int, int]] = {}  # chain -> (seq, ingested_at)
        self._judged: int | None = None
        self._pending: list[tuple[str, str, str, float, float, int]] = []
        self._new_schema_until: dict[str, int] = {}
        self.stream_time_us: int | None = None
        self._last_arrival_us: int | None = None

    # -- input -------------------------------------------------------------------------

    def observe(self, record: dict[str, Any], wall_us: int | None = None) -> None:
        """Count one decoded sealed record (SealedRecord as a dict) that arrived at wall
        time ``wall_us`` (None: judge by the wall clock alone)."""
        ingested = int(record["ingested_at"])
        if wall_us is not None:
            self._last_arrival_us = wall_us
            self.stream_time_us = max(self.stream_time_us or ingested, ingested)
        w = ingested // self.t.window_us
        if self.first_window is None or w < self.first_window:
            self.first_window = w
        stats = self.windows.setdefault(w, WindowStats())
        stats.records += 1
        chain = record.get("chain_id")
        if chain is not None:
            seen = self.chain_heads.get(chain)
            if seen is None or record["seq"] > seen[0]:
                self.chain_heads[chain] = (int(record["seq"]), ingested)
        schema_id = (record.get("source") or {}).get("schema_id")
        if schema_id is not None:
            stats.schema_ids[schema_id] += 1
            if schema_id not in self.schema_first_seen:
                self.schema_first_seen[schema_id] = ingested
                warm_until = (self.first_window + self.t.baseline_windows) * self.t.window_us
                if ingested >= warm_until:
                    self._pending.append((
                        "new_schema_id", str(schema_id),
                        f"schema id {schema_id} first seen in chain {chain} seq "
                        f"{record.get('seq')}", float(schema_id), 0.0, ingested))
        if record["kind"] == "REJECTION":
            stats.rejections[(record.get("rejection") or {}).get("reason", "UNKNOWN")] += 1
            return
        event = record["event"]
        service = event["origin"]["service"]
        stats.by_service[service] += 1
        stats.by_type[(service, event["event_type"])] += 1
        for entry in (record.get("redaction") or {}).get("fields", []):
            stats.redactions[(service, str(entry).rsplit("=", 1)[-1])] += 1
        skew = ingested - int(event["occurred_at"])
        if abs(skew) > abs(stats.max_skew_us.get(service, 0)):
            stats.max_skew_us[service] = skew

    def observe_lag(self, lags: dict[str, int], now_us: int) -> list[Alert]:
        """Judge consumer lag per stage (``{"sealer": n, "archiver": m}``)."""
        out = []
        for stage, lag in sorted(lags.items()):
            out += self._set("consumer_lag", stage, lag > self.t.lag_max,
                             f"{stage} lags by {lag} records", float(lag),
                             float(self.t.lag_max), now_us)
        return out

    def observe_checkpoints(self, last_checkpoint_us: dict[str, int], now_us: int
                            ) -> list[Alert]:
        """Judge the age of each chain's newest archived checkpoint (created_at, µs)."""
        out = []
        limit = self.t.checkpoint_max_age_seconds
        for chain, created in sorted(last_checkpoint_us.items()):
            age = (now_us - created) / US
            out += self._set("checkpoint_stale", chain, age > limit,
                             f"chain {chain}: newest checkpoint is {age:.0f} s old",
                             age, limit, now_us)
        return out

    # -- judging -----------------------------------------------------------------------

    def last_complete_window(self, now_us: int) -> int:
        """The newest window that can be judged at wall time ``now_us``."""
        lateness = int(self.t.lateness_seconds * US)
        clock = now_us
        if (self._last_arrival_us is not None and self.stream_time_us is not None
                and now_us - self._last_arrival_us <= self.t.window_us + lateness):
            clock = min(now_us, self.stream_time_us)  # records flowing: the stream's time
        return (clock - lateness) // self.t.window_us - 1

    def evaluate(self, now_us: int) -> list[Alert]:
        """Alert transitions as of ``now_us``: new-schema alerts at once, window rules once
        per completed window."""
        out: list[Alert] = []
        for name, subject, detail, value, threshold, _at in self._pending:
            out += self._set(name, subject, True, detail, value, threshold, now_us)
            self._new_schema_until[subject] = now_us + self.t.baseline_windows * self.t.window_us
        self._pending.clear()
        for subject, until in list(self._new_schema_until.items()):
            if now_us >= until:
                del self._new_schema_until[subject]
                out += self._set("new_schema_id", subject, False, "", 0.0, 0.0, now_us)
        last = self.last_complete_window(now_us)
        if self.first_window is None or last < self.first_window:
            return out
        start = last if self._judged is None else self._judged + 1
        # Every window in order (the newest MAX_CATCH_UP after a long pause), so a stop
        # right after the last records is judged against the windows before it.
        for w in range(max(start, last - MAX_CATCH_UP + 1, self.first_window), last + 1):
            self._judged = w
            cur = self.windows.get(w, WindowStats())
            out += self._volume(w, cur, now_us)
            out += self._rejections(cur, now_us)
            out += self._skew(cur, now_us)
            self._expire(w)
        return out

    def _volume(self, w: int, cur: WindowStats, now_us: int) -> list[Alert]:
        b = self.t.baseline_windows
        assert self.first_window is not None
        if w - b < self.first_window:
            return []  # warming up: not enough history for a baseline
        base: Counter[str] = Counter()
        for i in range(w - b, w):
            base.update(self.windows.get(i, WindowStats()).by_service)
        out = []
        services = set(base) | {s for (n, s) in self.firing if n.startswith("volume_")}
        for service in sorted(services):
            baseline = base[service] / b
            now_n = cur.by_service[service]
            # A firing alert keeps the baseline it fired against: a service that stays
            # silent must not "recover" because its own silence lowered the mean.
            was_stopped = self.firing.get(("volume_stopped", service))
            was_dropped = self.firing.get(("volume_drop", service))
            if was_stopped is not None:
                baseline = max(baseline, was_stopped.threshold)
            if was_dropped is not None:
                baseline = max(baseline, was_dropped.threshold / self.t.volume_drop_fraction)
            stopped = now_n == 0 and baseline > 0
            dropped = not stopped and now_n < self.t.volume_drop_fraction * baseline
            out += self._set("volume_stopped", service, stopped,
                             f"{service}: no events in the last window, baseline "
                             f"{baseline:.1f}/window", float(now_n), baseline, now_us)
            out += self._set("volume_drop", service, dropped,
                             f"{service}: {now_n} events in the last window, baseline "
                             f"{baseline:.1f}/window", float(now_n),
                             self.t.volume_drop_fraction * baseline, now_us)
        return out

    def _rejections(self, cur: WindowStats, now_us: int) -> list[Alert]:
        judged = cur.records >= self.t.min_window_events
        rate = cur.rejected / cur.records if cur.records else 0.0
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(cur.rejections.items()))
        return self._set("rejection_rate", "all", judged and rate > self.t.rejection_rate,
                         f"{cur.rejected} of {cur.records} records rejected ({reasons})",
                         rate, self.t.rejection_rate, now_us)

    def _skew(self, cur: WindowStats, now_us: int) -> list[Alert]:
        out = []
        services = set(cur.by_service) | {s for (n, s) in self.firing if n == "clock_skew"}
        for service in sorted(services):
            skew = cur.max_skew_us.get(service, 0) / US
            out += self._set("clock_skew", service, abs(skew) > self.t.skew_max_seconds,
                             f"{service}: ingested_at - occurred_at = {skew:.1f} s",
                             skew, self.t.skew_max_seconds, now_us)
        return out

    def _expire(self, w: int) -> None:
        keep = w - self.t.baseline_windows - 1
        for old in [i for i in self.windows if i < keep]:
            del self.windows[old]

    def _set(self, name: str, subject: str, holds: bool, detail: str, value: float,
             threshold: float, now_us: int) -> list[Alert]:
        key = (name, subject)
        if holds and key not in self.firing:
            alert = Alert(name, subject, "FIRING", detail, value, threshold, now_us)
            self.firing[key] = alert
            return [alert]
        if not holds and key in self.firing:
            del self.firing[key]
            return [Alert(name, subject, "RESOLVED", detail, value, threshold, now_us)]
        return []
