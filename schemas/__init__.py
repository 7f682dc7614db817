"""The Avro schemas shipped with sealtrail, every version of each.

Files live in ``schemas/avro/<Name>.v<N>.avsc``. ``SealedRecord`` refers to
``io.sealtrail.AuditEvent`` by name; :func:`sealed_record` inlines the reader
version of AuditEvent so that the result is one self-contained schema, as a
registry and an Avro container file need it.

``COMPATIBILITY`` is the level each schema's versions must keep among themselves;
``sealtrail schemas check`` enforces it and ``sealtrail schemas register`` sets it on the
registry subjects (docs/schemas.md).
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

__all__ = [
    "AUDIT_EVENT",
    "COMPATIBILITY",
    "SEALED_RECORD",
    "inline_event",
    "latest",
    "load",
    "sealed_record",
    "versions",
]

AUDIT_EVENT = "AuditEvent"
SEALED_RECORD = "SealedRecord"
# AuditEvent, FULL_TRANSITIVE: during a rolling upgrade producers and the sealer run different
# versions in both orders, and the archive is read back years later by whatever version is
# current. SealedRecord, BACKWARD_TRANSITIVE: every reader of sealed records decodes with the
# record's own writer schema (the segment header, the registry id), so an older reader never
# has to resolve a newer writer; upgrade the readers (archiver, indexer, monitor, tools) before
# the sealer (docs/schemas.md). SealedRecord v2 widens source.schema_id to a long and adds
# reject reasons, which only BACKWARD allows.
COMPATIBILITY: dict[str, str] = {AUDIT_EVENT: "FULL_TRANSITIVE",
                                 SEALED_RECORD: "BACKWARD_TRANSITIVE"}
_NAME = re.compile(r"^(?P<name>[A-Za-z]+)\.v(?P<version>\d+)\.avsc$")


def versions(name: str) -> list[int]:
    """Every version of schema ``name`` shipped in schemas/avro, oldest first."""
    found = []
    for entry in resources.files(__name__).joinpath("avro").iterdir():
        m = _NAME.match(entry.name)
        if m and m["name"] == name:
            found.append(int(m["version"]))
    if not found:
        raise LookupError(f"no schema named {name!r} in schemas/avro")
    return sorted(found)


def latest(name: str) -> int:
    """The newest version number of schema ``name``."""
    return versions(name)[-1]


@cache
def _load_text(name: str, version: int) -> str:
    path = resources.files(__name__).joinpath("avro", f"{name}.v{version}.avsc")
    return path.read_text(encoding="utf-8")


def load(name: str, version: int | None = None) -> dict[str, Any]:
    """The schema ``name`` at ``version`` (newest when None) as a JSON object."""
    schema: dict[str, Any] = json.loads(_load_text(name, version or latest(name)))
    return schema


def sealed_record(event_version: int | None = None, version: int | None = None) -> dict[str, Any]:
    """SealedRecord with the AuditEvent reader schema (newest by default) inlined."""
    return inline_event(load(SEALED_RECORD, version), load(AUDIT_EVENT, event_version))


def inline_event(sealed: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """A copy of SealedRecord schema ``sealed`` with AuditEvent schema ``event`` inlined."""
    schema = json.loads(json.dumps(sealed))
    for field in schema["fields"]:
        if field["name"] == "event":
            field["type"] = ["null", json.loads(json.dumps(event))]
    return dict(schema)
