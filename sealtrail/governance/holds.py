"""Legal holds by case: freeze every archived object that holds a matching event.

``apply_hold`` scans the archive (checkpoint by checkpoint), and for every segment holding
an event that matches the case's selector (time window on ``occurred_at``, optionally actor,
resource and event type) puts the case's legal hold on the segment and on its checkpoint
(S3: the object version's legal hold, case ids tracked by the store; local: the retention
sidecar). It then writes a *hold manifest* into the archive, under retention:

    holds/<case slug>/<YYYYmmddTHHMMSSffffffZ>-apply.json
    {"format": "sealtrail-hold/v1", "case", "action": "apply"|"release", "operator",
     "at", "selector", "objects": [sorted keys]}

``release_hold`` removes only that case's hold from the objects its manifests list (an
object another case holds stays held) and writes a ``-release`` manifest.

Runs are resumable and idempotent: progress (how far each chain was scanned, which objects
were held) is kept in ``<progress_dir>/<case slug>.json`` and a rerun of the same case and
selector continues from there; putting a hold that is already on changes nothing.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sealtrail.archive import ArchiveStore, ObjectMissingError, check_case_id
from sealtrail.core import layout
from sealtrail.errors import ConfigError, DataError
from sealtrail.governance.retention import RetentionPolicy, walk_units

__all__ = [
    "HoldResult",
    "HoldSelector",
    "active_holds",
    "apply_hold",
    "case_slug",
    "list_holds",
    "release_hold",
]

HOLDS = "holds/"
MANIFEST_FORMAT = "sealtrail-hold/v1"


def case_slug(case_id: str) -> str:
    """A key-safe name for a case: its safe characters plus 8 hex of its SHA-256."""
    check_case_id(case_id)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", case_id)[:64].strip(".") or "case"
    return f"{safe}-{hashlib.sha256(case_id.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class HoldSelector:
    """Which events a case covers: ``occurred_at`` in [start_us, end_us] (inclusive) and,
    when given, the actor id, the resource (``id`` or ``type:id``) and event type (glob)."""

    start_us: int
    end_us: int
    actor: str | None = None
    resource: str | None = None
    event_type: str | None = None

    def __post_init__(self) -> None:
        if self.end_us < self.start_us:
            raise ConfigError("hold window ends before it starts (--to is before --from)")

    def matches(self, record: Mapping[str, Any]) -> bool:
        event = record.get("event")
        if not isinstance(event, Mapping):
            return False
        if not self.start_us <= int(event.get("occurred_at", -1)) <= self.end_us:
            return False
        if self.actor is not None and event.get("actor", {}).get("id") != self.actor:
            return False
        if self.resource is not None:
            res = event.get("resource", {})
            if self.resource not in (res.get("id"), f"{res.get('type')}:{res.get('id')}"):
                return False
        return self.event_type is None or fnmatch.fnmatchcase(
            str(event.get("event_type")), self.event_type)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class HoldResult:
    """What one apply or release did."""

    case: str
    action: str
    objects: list[str] = field(default_factory=list)
    newly_changed: int = 0
    units_scanned: int = 0
    resumed: bool = False
    manifest: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- progress file ----------------------------------------------------------------------


def _progress_path(progress_dir: Path, case_id: str) -> Path:
    return progress_dir / f"{case_slug(case_id)}.json"


def _save(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as out:
        json.dump(doc, out, indent=1, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _load(path: Path) -> dict[str, Any] | None:
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
        return doc
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"hold progress file {path} is unreadable ({exc}); move it away "
                          "to start the run again") from None


# -- manifests --------------------------------------------------------------------------


def _write_manifest(store: ArchiveStore, policy: RetentionPolicy, case_id: str, action: str,
                    operator: str, objects: list[str], selector: HoldSelector | None,
                    now: datetime) -> str:
    doc = {
        "format": MANIFEST_FORMAT, "case": case_id, "action": action, "operator": operator,
        "at": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "selector": selector.to_json() if selector else None,
        "objects": sorted(set(objects)),
    }
    key = f"{HOLDS}{case_slug(case_id)}/{now.strftime('%Y%m%dT%H%M%S%fZ')}-{action}.json"
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    store.put(key, data, retention=policy.retention(policy.longest(), now))
    return key


def _manifests(store: ArchiveStore) -> list[dict[str, Any]]:
    """Every hold manifest, oldest first (by time, then key)."""
    docs = []
    for key in store.list(HOLDS):
        try:
            doc = json.loads(store.get(key))
        except (ObjectMissingError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("format") == MANIFEST_FORMAT:
            doc["_key"] = key
            docs.append(doc)
    docs.sort(key=lambda d: (str(d.get("at")), d["_key"]))
    return docs


def active_holds(store: ArchiveStore) -> dict[str, set[str]]:
    """Object key -> case ids whose manifests say it must be under legal hold now."""
    by_case: dict[str, set[str]] = {}
    for doc in _manifests(store):
        case = str(doc.get("case"))
        if doc.get("action") == "apply":
            by_case.setdefault(case, set()).update(map(str, doc.get("objects", ())))
        elif doc.get("action") == "release":
            by_case.pop(case, None)
    result: dict[str, set[str]] = {}
    for case, keys in by_case.items():
        for key in keys:
            result.setdefault(key, set()).add(case)
    return result


def list_holds(store: ArchiveStore) -> list[dict[str, Any]]:
    """Per case: active or released, objects held, and the last action (who, when)."""
    cases: dict[str, dict[str, Any]] = {}
    for doc in _manifests(store):
        case = str(doc.get("case"))
        entry = cases.setdefault(case, {"case": case, "objects": set(), "actions": 0})
        entry["actions"] += 1
        if doc.get("action") == "apply":
            entry["objects"].update(doc.get("objects", ()))
            entry["status"] = "active"
        else:
            entry["objects"] = set()
            entry["status"] = "released"
        entry.update(last_action=doc.get("action"), operator=doc.get("operator"),
                     at=doc.get("at"), manifest=doc["_key"])
    return [{**e, "objects": len(e["objects"])} for _, e in sorted(cases.items())]


# -- apply / release ----------------------------------------------------------------------


def apply_hold(
    store: ArchiveStore,
    case_id: str,
    selector: HoldSelector,
    *,
    policy: RetentionPolicy,
    progress_dir: Path,
    operator: str,
    now: datetime | None = None,
    on_unit: Callable[[int, int], None] | None = None,
) -> HoldResult:
    """Hold every segment (and its checkpoint) holding an event ``selector`` matches, for
    ``case_id``; resume an interrupted run of the same case and selector; then write the
    manifest. ``on_unit(done, total)`` reports progress."""
    check_case_id(case_id)
    path = _progress_path(progress_dir, case_id)
    state = _load(path)
    result = HoldResult(case_id, "apply")
    if state is not None:
        if state.get("selector") != selector.to_json() or state.get("action") != "apply":
            raise ConfigError(
                f"an unfinished hold run for case {case_id!r} with another selector is "
                f"recorded in {path}; finish it with the same options, or release the case")
        result.resumed = True
    else:
        state = {"case": case_id, "action": "apply", "selector": selector.to_json(),
                 "scanned": {}, "held": []}
        _save(path, state)
    scanned: dict[str, int] = state["scanned"]
    held: set[str] = set(state["held"])
    total = len([k for k in store.list(layout.CHAINS) if "/checkpoints/" in k])
    done = 0
    for unit in walk_units(store):
        done += 1
        if scanned.get(unit.chain_id, -1) >= unit.index:
            continue
        if any(selector.matches(r) for r in unit.records):
            for key in unit.keys:
                if store.retention(key).legal_holds.count(case_id) == 0:
                    result.newly_changed += 1
                store.set_legal_hold(key, case_id, True)
                held.add(key)
        scanned[unit.chain_id] = unit.index
        result.units_scanned += 1
        state["held"] = sorted(held)
        _save(path, state)
        if on_unit:
            on_unit(done, total)
    result.objects = sorted(held)
    result.manifest = _write_manifest(store, policy, case_id, "apply", operator, result.objects,
                                      selector, now or datetime.now(UTC))
    path.unlink(missing_ok=True)
    return result


def release_hold(
    store: ArchiveStore,
    case_id: str,
    *,
    policy: RetentionPolicy,
    progress_dir: Path,
    operator: str,
    now: datetime | None = None,
    on_unit: Callable[[int, int], None] | None = None,
) -> HoldResult:
    """Remove ``case_id``'s legal hold from every object its manifests (and an unfinished
    apply run) list; other cases' holds stay. Writes a release manifest."""
    check_case_id(case_id)
    path = _progress_path(progress_dir, case_id)
    keys = {k for k, cases in active_holds(store).items() if case_id in cases}
    state = _load(path)
    if state is not None:
        keys.update(state.get("held", ()))
    if not keys and not any(d.get("case") == case_id for d in _manifests(store)):
        raise DataError(f"no legal hold for case {case_id!r} is recorded in {store.url}")
    result = HoldResult(case_id, "release")
    for n, key in enumerate(sorted(keys), 1):
        try:
            if case_id in store.retention(key).legal_holds:
                result.newly_changed += 1
            store.set_legal_hold(key, case_id, False)
        except ObjectMissingError:
            continue
        result.objects.append(key)
        if on_unit:
            on_unit(n, len(keys))
    result.manifest = _write_manifest(store, policy, case_id, "release", operator,
                                      result.objects, None, now or datetime.now(UTC))
    path.unlink(missing_ok=True)
    return result
