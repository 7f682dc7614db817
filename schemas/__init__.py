"""The Avro schemas shipped with sealtrail, every version of each.

Files live in ``schemas/avro/<Name>.v<N>.avsc``. ``SealedRecord`` refers to
``io.sealtrail.AuditEvent`` by name; :func:`sealed_record` inlines the reader
version of AuditEvent so that the result is one self-contained schema, as a
registry and an Avro container file need it.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["AUDIT_EVENT", "SEALED_RECORD", "latest", "load", "sealed_record", "versions"]

AUDIT_EVENT = "AuditEvent"
SEALED_RECORD = "SealedRecord"
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
    schema = load(SEALED_RECORD, version)
    event = load(AUDIT_EVENT, event_version)
    for field in schema["fields"]:
        if field["name"] == "event":
            field["type"] = ["null", event]
    return schema
