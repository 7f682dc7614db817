"""Retention classes: how long each archived object must be kept, and the tools around it.

A *retention class* is a name and a duration (``365d`` days or ``6y`` calendar years).
Event types map to classes by glob patterns (``Settings.retention_map``), and so do data
classifications (``classification:PHI=hipaa``); an event matching several entries gets the
longest class, an unmapped event or a rejection gets the default class. Every archived
object is retained until at least ``written + duration`` of the longest class among the
events it holds; its checkpoint is retained as long as its segment.

This module also builds the ``sealtrail retention report`` (what expires when, per class),
runs ``retention purge`` on a local archive (only expired, unheld segments; checkpoints stay
so the checkpoint chain stays whole), and emits the S3 lifecycle configuration that does the
same on S3 (segments are tagged with their class, checkpoints are not).

Nothing here shortens retention: the stores refuse it, and :func:`required_retention` is
only ever used to set or to check a *minimum*.
"""

from __future__ import annotations

import calendar
import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sealtrail.archive import (
    ArchiveStore,
    ObjectMissingError,
    Retention,
    RetentionError,
    RetentionMode,
    iso_z,
    utc_seconds,
)
from sealtrail.archive.segments import read_segment
from sealtrail.config import Settings
from sealtrail.core import layout
from sealtrail.core.checkpoint import SignedCheckpoint
from sealtrail.errors import ConfigError, DecodeError, IntegrityError

__all__ = [
    "RetentionClass",
    "RetentionPolicy",
    "lifecycle_configuration",
    "purge",
    "report",
]

_DURATION = re.compile(r"^\s*(\d+)\s*([dy]?)\s*$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
CLASSIFICATION = "classification:"
"""Prefix of a retention_map entry that matches a data classification, not event types."""
_CLASSIFICATIONS = ("PUBLIC", "INTERNAL", "CONFIDENTIAL", "RESTRICTED", "PII", "PHI", "PCI")


def add_years(when: datetime, years: int) -> datetime:
    """``when`` plus calendar years; 29 February becomes 1 March in a non-leap year."""
    year = when.year + years
    if when.month == 2 and when.day == 29 and not calendar.isleap(year):
        return when.replace(year=year, month=3, day=1)
    return when.replace(year=year)


@dataclass(frozen=True)
class RetentionClass:
    """A named retention period: ``days`` days or ``years`` calendar years (one of them)."""

    name: str
    days: int = 0
    years: int = 0

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"retention class name {self.name!r} must match {_NAME.pattern}")
        if (self.days > 0) == (self.years > 0) or self.days < 0 or self.years < 0:
            raise ConfigError(f"retention class {self.name!r} needs a positive duration")

    @classmethod
    def parse(cls, name: str, text: str) -> RetentionClass:
        m = _DURATION.match(text)
        if not m:
            raise ConfigError(f"retention class {name!r}: duration {text!r} is not Nd or Ny")
        n, unit = int(m.group(1)), m.group(2) or "d"
        return cls(name, days=n) if unit == "d" else cls(name, years=n)

    def until(self, start: datetime) -> datetime:
        """The earliest retain-until date for an object written at ``start``."""
        if self.years:
            return utc_seconds(add_years(start.astimezone(UTC), self.years))
        return utc_seconds(start + timedelta(days=self.days))

    def max_days(self) -> int:
        """An upper bound of the duration in whole days (for lifecycle rules)."""
        return self.days if self.days else 366 * self.years

    def __str__(self) -> str:
        return f"{self.name} ({self.days} days)" if self.days else (
            f"{self.name} ({self.years} years)")


@dataclass(frozen=True)
class RetentionPolicy:
    """Classes, the event-type mapping and the lock mode, validated at construction."""

    classes: Mapping[str, RetentionClass]
    rules: tuple[tuple[str, str], ...] = ()
    default_class: str = "default"
    mode: RetentionMode = "COMPLIANCE"
    _cache: dict[str, RetentionClass] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.default_class not in self.classes:
            raise ConfigError(f"default retention class {self.default_class!r} is not defined")
        for pattern, name in self.rules:
            if name not in self.classes:
                raise ConfigError(f"retention_map: {pattern!r} maps to undefined class {name!r}")
            if pattern.startswith(CLASSIFICATION) and \
                    pattern[len(CLASSIFICATION):].upper() not in _CLASSIFICATIONS:
                raise ConfigError(f"retention_map: {pattern!r} names no classification; use "
                                  f"one of {', '.join(_CLASSIFICATIONS)}")
        if self.mode not in ("COMPLIANCE", "GOVERNANCE"):
            raise ConfigError("retention mode must be COMPLIANCE or GOVERNANCE")

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        """The policy configured by ``retention_classes``, ``retention_map``,
        ``retention_default_class``, ``retention_days`` and ``retention_mode``."""
        classes: dict[str, RetentionClass] = {}
        for item in _items(settings.retention_classes, "retention_classes"):
            name, text = item
            if name in classes:
                raise ConfigError(f"retention_classes: class {name!r} is defined twice")
            classes[name] = RetentionClass.parse(name, text)
        default = settings.retention_default_class or "default"
        if default not in classes:
            classes[default] = RetentionClass(default, days=settings.retention_days)
        rules = tuple((p, c) for p, c in _items(settings.retention_map, "retention_map"))
        return cls(classes, rules, default, cast(RetentionMode, settings.retention_mode))

    @classmethod
    def simple(cls, days: int, mode: str = "COMPLIANCE") -> RetentionPolicy:
        """One default class of ``days`` days (the archiver's behaviour before classes)."""
        return cls({"default": RetentionClass("default", days=days)},
                   mode=cast(RetentionMode, mode))

    def _longer(self, a: RetentionClass, b: RetentionClass) -> RetentionClass:
        ref = datetime(2000, 1, 1, tzinfo=UTC)
        return b if b.until(ref) > a.until(ref) else a

    def class_for(self, event_type: str | None, classification: str | None = None
                  ) -> RetentionClass:
        """The class of one event (None for a rejection): the longest class matching its
        type (glob entries) or its classification (``classification:NAME`` entries)."""
        if event_type is None:
            return self.classes[self.default_class]
        key = f"{event_type}\0{classification or ''}"
        found = self._cache.get(key)
        if found is None:
            matches = [self.classes[c] for p, c in self.rules
                       if _matches(p, event_type, classification)]
            found = matches[0] if matches else self.classes[self.default_class]
            for other in matches[1:]:
                found = self._longer(found, other)
            if len(self._cache) < 10_000:
                self._cache[key] = found
        return found

    def class_for_records(self, records: Iterable[Mapping[str, Any]]) -> RetentionClass:
        """The longest class among the events of ``records`` (the default when empty)."""
        result = self.classes[self.default_class]
        seen: set[tuple[str | None, str | None]] = set()
        for record in records:
            event = record.get("event")
            if isinstance(event, Mapping):
                kind = (event.get("event_type"), event.get("classification"))
            else:
                kind = (None, None)
            if kind in seen:
                continue
            seen.add(kind)
            result = self._longer(result, self.class_for(*kind))
        return result

    def longest(self) -> RetentionClass:
        result = self.classes[self.default_class]
        for c in self.classes.values():
            result = self._longer(result, c)
        return result

    def retention(self, cls_: RetentionClass, written: datetime,
                  legal_holds: tuple[str, ...] = ()) -> Retention:
        """The Retention to put on an object of class ``cls_`` written at ``written``."""
        return Retention(self.mode, cls_.until(written), legal_holds, cls_.name)


def _matches(pattern: str, event_type: str, classification: str | None) -> bool:
    """Whether a retention_map entry applies: a glob over event types, or
    ``classification:NAME`` (any case) for events of that classification."""
    if pattern.startswith(CLASSIFICATION):
        return classification is not None and \
            pattern[len(CLASSIFICATION):].upper() == classification.upper()
    return fnmatch.fnmatchcase(event_type, pattern)


def _items(text: str, setting: str) -> list[tuple[str, str]]:
    items = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"{setting}: {part!r} is not name=value")
        items.append((name.strip(), value.strip()))
    return items


def required_retention(
    policy: RetentionPolicy, records: Sequence[Mapping[str, Any]], written_us: int
) -> tuple[RetentionClass, datetime]:
    """The class and minimum retain-until of an object holding ``records`` written at
    ``written_us`` (microseconds UTC, e.g. its checkpoint's created_at)."""
    cls_ = policy.class_for_records(records)
    written = datetime.fromtimestamp(written_us // 1_000_000, UTC)
    return cls_, cls_.until(written)


# -- walking an archive ----------------------------------------------------------------


@dataclass(frozen=True)
class ArchivedUnit:
    """One checkpoint and its segment (None for a heartbeat), with what they hold."""

    chain_id: str
    index: int
    checkpoint_key: str
    segment_key: str | None
    created_at: int
    records: tuple[Mapping[str, Any], ...]
    retain_until: int | None = None  # signed in the checkpoint (format v2), microseconds

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.segment_key, self.checkpoint_key) if self.segment_key else (
            self.checkpoint_key,)


def walk_units(store: ArchiveStore, *, with_records: bool = True) -> Iterable[ArchivedUnit]:
    """Every checkpoint of every chain in index order, with its segment's records.

    Trusts nothing for integrity (that is verify's job); unreadable objects are skipped."""
    for chain_id in layout.chain_ids(store.list(layout.CHAINS)):
        for cp_key in store.list(f"{layout.CHAINS}{chain_id}/checkpoints/"):
            index = layout.parse_index(cp_key)
            if index is None:
                continue
            try:
                cp = SignedCheckpoint.from_bytes(store.get(cp_key)).checkpoint
            except (IntegrityError, ObjectMissingError):
                continue
            seg = cp.segment_key or None
            records: list[dict[str, Any]] = []
            if seg and with_records:
                try:
                    records = read_segment(store.get(seg))
                except (DecodeError, ObjectMissingError):
                    records = []
            yield ArchivedUnit(chain_id, index, cp_key, seg, cp.created_at, tuple(records),
                               cp.retain_until)


# -- report ----------------------------------------------------------------------------


@dataclass
class ClassReport:
    """What one class holds: objects, events, and when the earliest and latest expire."""

    name: str
    duration: str
    objects: int = 0
    events: int = 0
    earliest_expiry: datetime | None = None
    latest_expiry: datetime | None = None
    expired: int = 0
    held: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "class": self.name, "duration": self.duration, "objects": self.objects,
            "events": self.events, "expired": self.expired, "held": self.held,
            "earliest_expiry": iso_z(self.earliest_expiry) if self.earliest_expiry else None,
            "latest_expiry": iso_z(self.latest_expiry) if self.latest_expiry else None,
        }


def report(store: ArchiveStore, policy: RetentionPolicy,
           now: datetime | None = None) -> list[ClassReport]:
    """Per class (as recorded on the segment, else derived from its events; a checkpoint
    counts in its segment's class): how many objects and events, how many expired or held,
    and the earliest/latest expiry."""
    now = now or datetime.now(UTC)
    out: dict[str, ClassReport] = {
        c.name: ClassReport(c.name, _duration(c)) for c in policy.classes.values()}
    for unit in walk_units(store):
        name = policy.class_for_records(unit.records).name
        events = sum(1 for r in unit.records if r.get("kind") == "EVENT")
        for key in unit.keys:  # the segment first: its checkpoint is counted in its class
            try:
                ret = store.retention(key)
            except ObjectMissingError:
                continue
            name = ret.retention_class or name
            rep = out.setdefault(name, ClassReport(name, "(not configured)"))
            rep.objects += 1
            if key == unit.segment_key:
                rep.events += events
            if rep.earliest_expiry is None or ret.retain_until < rep.earliest_expiry:
                rep.earliest_expiry = ret.retain_until
            if rep.latest_expiry is None or ret.retain_until > rep.latest_expiry:
                rep.latest_expiry = ret.retain_until
            rep.expired += ret.retain_until <= now
            rep.held += bool(ret.legal_holds)
    return sorted(out.values(), key=lambda r: r.name)


def _duration(c: RetentionClass) -> str:
    return f"{c.days}d" if c.days else f"{c.years}y"


# -- purge -----------------------------------------------------------------------------


@dataclass
class PurgeResult:
    """What a purge removed, and why it stopped where it did, per chain."""

    deleted: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # chain id -> why its first kept stays

    def to_json(self) -> dict[str, Any]:
        return {"deleted": self.deleted, "kept": self.kept}


def purge(store: ArchiveStore, *, now: datetime | None = None, dry_run: bool = False,
          progress: Callable[[str], None] | None = None) -> PurgeResult:
    """Delete, from a local archive, every segment whose retention has passed and that
    carries no legal hold. Checkpoints are kept (a few hundred bytes each): they keep the
    checkpoint chain whole, so verify still checks every remaining segment and reports the
    purged ones (docs/format.md, "Heartbeat checkpoints and purged segments").

    The retain-until date that counts is the one the segment's checkpoint signs (format
    v2), as verify reads it: a segment whose checkpoint signs none (v1) or a later date is
    kept, whatever the retention records say.

    Refused for stores that enforce retention themselves (S3): use the lifecycle rules.
    """
    if store.enforces_retention:
        raise RetentionError(
            f"{store.url} enforces retention itself: apply the lifecycle configuration from "
            "`sealtrail retention purge --lifecycle` instead of deleting from sealtrail")
    now = now or datetime.now(UTC)
    result = PurgeResult()
    for unit in walk_units(store, with_records=False):
        if unit.segment_key is None:
            continue
        try:
            why = store.retention(unit.segment_key).refusal(unit.segment_key, now) or (
                store.retention(unit.checkpoint_key).refusal(unit.checkpoint_key, now))
        except ObjectMissingError:
            continue  # already purged
        if not why and unit.retain_until is None:
            why = (f"refusing to delete {unit.segment_key!r}: its checkpoint (format v1) signs "
                   "no retention date, so verify could not tell its purge from a deletion")
        elif not why and unit.retain_until is not None and \
                unit.retain_until > now.timestamp() * 1_000_000:
            signed = datetime.fromtimestamp(unit.retain_until // 1_000_000, UTC)
            why = (f"refusing to delete {unit.segment_key!r}: its checkpoint signs retention "
                   f"until {iso_z(signed)}")
        if why:
            result.kept.setdefault(unit.chain_id, why)
            continue
        if not dry_run:
            try:
                store.delete(unit.segment_key)
            except ObjectMissingError:
                continue
        result.deleted.append(unit.segment_key)
        if progress:
            progress(unit.segment_key)
    return result


# -- S3 lifecycle ----------------------------------------------------------------------


def lifecycle_configuration(policy: RetentionPolicy, prefix: str = "") -> dict[str, Any]:
    """An S3 BucketLifecycleConfiguration that expires each class's segments (selected by
    their ``sealtrail-retention-class`` tag) a day after the longest their class allows.
    Checkpoints carry no tag and are never expired: they keep the checkpoint chain whole.

    S3 never removes a version under Object Lock retention or a legal hold, so these rules
    cannot delete anything early; they only clean up once retention has passed."""
    root = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    rules: list[dict[str, Any]] = []
    for c in sorted(policy.classes.values(), key=lambda c: c.name):
        rules.append({
            "ID": f"sealtrail-expire-{c.name}",
            "Status": "Enabled",
            "Filter": {"And": {"Prefix": f"{root}{layout.CHAINS}",
                               "Tags": [{"Key": "sealtrail-retention-class", "Value": c.name}]}},
            "Expiration": {"Days": c.max_days() + 1},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
        })
    rules.append({
        "ID": "sealtrail-remove-expired-delete-markers",
        "Status": "Enabled",
        "Filter": {"Prefix": f"{root}{layout.CHAINS}"},
        "Expiration": {"ExpiredObjectDeleteMarker": True},
    })
    return {"Rules": rules}
