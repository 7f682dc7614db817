"""Keeping, in the archive, the writer schema of every archived event.

Each sealed entry names the registry id of the schema its event was written with
(``source.schema_id``). The archiver stores that schema once per id at
``schemas/<id>.json``: the subjects and versions the registry gives it and the schema
itself, under the archive's longest retention. So the archive alone says which schema
version each event was written with, even after the registry is gone.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from confluent_kafka.schema_registry import SchemaRegistryClient

from sealtrail.archive import ArchiveStore, ObjectExistsError
from sealtrail.core import layout
from sealtrail.core.canonical import canonical_json
from sealtrail.governance.retention import RetentionPolicy

__all__ = ["SchemaRecorder"]

log = logging.getLogger("sealtrail.archiver")

FORMAT = "sealtrail-schema/v1"


class SchemaRecorder:
    """Writes ``schemas/<id>.json`` for each schema id it is shown, once."""

    def __init__(self, store: ArchiveStore, registry: SchemaRegistryClient,
                 policy: RetentionPolicy,
                 on_recorded: Callable[[str, bytes], None] | None = None) -> None:
        """``on_recorded(key, sha256)``: told of each schema file written or found, so the
        signed archive index lists it (and verify checks its bytes)."""
        self._store = store
        self._registry = registry
        self._policy = policy
        self._on_recorded = on_recorded
        self._recorded: set[int] = set()

    def note(self, schema_id: int | None) -> None:
        """Record ``schema_id`` unless done; a registry or archive failure is logged and
        retried with the next event that names the id."""
        if schema_id is None or schema_id in self._recorded:
            return
        key = layout.schema_key(schema_id)
        try:
            if not self._store.exists(key):
                schema = self._registry.get_schema(schema_id)
                versions = self._registry.get_schema_versions(schema_id)
                doc = {
                    "format": FORMAT,
                    "schema_id": schema_id,
                    "versions": sorted(
                        ({"subject": v.subject, "version": v.version} for v in versions),
                        key=lambda v: (v["subject"], v["version"]),
                    ),
                    "schema": json.loads(schema.schema_str),
                }
                retention = self._policy.retention(self._policy.longest(), datetime.now(UTC))
                self._store.put(key, canonical_json(doc), retention=retention)
            if self._on_recorded is not None:
                self._on_recorded(key, hashlib.sha256(self._store.get(key)).digest())
        except ObjectExistsError:
            if self._on_recorded is not None:  # another archiver recorded it first
                self._on_recorded(key, hashlib.sha256(self._store.get(key)).digest())
        except Exception as exc:  # registry or archive unreachable: try again later
            log.warning("could not record schema id %s in the archive yet: %s", schema_id,
                        type(exc).__name__)
            return
        self._recorded.add(schema_id)
