"""Checking the schema versions shipped in schemas/ against each other before they ship.

Every version of a schema must keep the schema's compatibility level
(``sealtrail.schemas.COMPATIBILITY``) against the versions before it, decided by the
same code as the embedded registry (``sealtrail.registry._compat``: Avro's
``ReaderWriterCompatibilityChecker`` and the Confluent level rules). A violation names
the schema versions, the level, the rule (BACKWARD or FORWARD) and the field.

Two subjects are checked: ``AuditEvent`` (the raw topic) and ``SealedRecord`` with each
AuditEvent version inlined (the sealed topic and the segment files). Beyond the levels,
a version must not use ``float`` or ``double`` anywhere: canonical bytes have no form for
them (docs/format.md), so such an event could never be sealed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import avro.schema

from sealtrail import schemas
from sealtrail.errors import DataError
from sealtrail.registry import _compat

__all__ = [
    "SchemaFileError",
    "Subject",
    "Violation",
    "check_dir",
    "check_subject",
    "default_dir",
    "load_dir",
    "subjects",
]

MAX_FILE_BYTES = 1024 * 1024
DEFAULT_LEVEL = "FULL_TRANSITIVE"
_FILE = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9_]*)\.v(?P<version>[1-9]\d{0,5})\.avsc$")
_MAX_DEPTH = 64


class SchemaFileError(DataError):
    """A file in the schema directory cannot be read as a versioned Avro schema."""


@dataclass(frozen=True)
class Violation:
    """One rule a schema version breaks. ``rule`` is BACKWARD, FORWARD, CANONICAL (no
    float/double), NAMING (file name and schema disagree), NUMBERING (gap in versions) or
    VALID (not an Avro schema)."""

    subject: str
    version: str
    against: str
    level: str
    rule: str
    field: str
    detail: str

    def __str__(self) -> str:
        where = f"field {self.field}" if self.field else "the schema"
        against = f" against {self.against}" if self.against else ""
        return (f"{self.subject}: {self.version} breaks {self.level}{against}: rule "
                f"{self.rule} ({_RULES.get(self.rule, '')}): {where}: {self.detail}")


_RULES = {
    "BACKWARD": "the new version must read data written with the older one",
    "FORWARD": "the older version must read data written with the new one",
    "CANONICAL": "canonical bytes have no form for float or double",
    "NAMING": "the file name must match the schema's name",
    "NUMBERING": "versions are numbered 1, 2, 3 ... without gaps",
    "VALID": "every version must be a valid Avro schema",
}


@dataclass(frozen=True)
class Subject:
    """A registry subject's history as shipped: ``(label, schema)`` pairs, oldest first."""

    name: str
    level: str
    versions: tuple[tuple[str, dict[str, Any]], ...]


def default_dir() -> Path:
    """The directory of the schemas shipped with sealtrail (schemas/avro)."""
    return Path(str(resources.files(schemas.__name__).joinpath("avro")))


def load_dir(directory: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """``{name: {version: schema}}`` of every ``<Name>.v<N>.avsc`` in ``directory``."""
    found: dict[str, dict[int, dict[str, Any]]] = {}
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise SchemaFileError(f"cannot list schema directory {directory}: {exc.strerror}") \
            from None
    for path in entries:
        m = _FILE.match(path.name)
        if m is None:
            if path.suffix == ".avsc":
                raise SchemaFileError(f"{path}: name must be <Name>.v<N>.avsc, e.g. "
                                      "AuditEvent.v2.avsc")
            continue
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise SchemaFileError(f"{path}: {size} bytes, at most {MAX_FILE_BYTES}")
            doc = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SchemaFileError(f"cannot read {path}: {exc.strerror}") from None
        except (ValueError, RecursionError) as exc:
            raise SchemaFileError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise SchemaFileError(f"{path}: a schema file must hold a JSON object")
        found.setdefault(m["name"], {})[int(m["version"])] = doc
    return found


def subjects(found: Mapping[str, Mapping[int, dict[str, Any]]]) -> list[Subject]:
    """The subject histories to check: one per schema name, and SealedRecord once more per
    AuditEvent version inlined (what the sealer registers for the sealed topic)."""
    out = []
    for name in sorted(found):
        level = schemas.COMPATIBILITY.get(name, DEFAULT_LEVEL)
        if name == schemas.SEALED_RECORD and schemas.AUDIT_EVENT in found:
            events = found[schemas.AUDIT_EVENT]
            history = tuple(
                (f"v{j} with AuditEvent v{k}", schemas.inline_event(found[name][j], events[k]))
                for j in sorted(found[name]) for k in sorted(events)
            )
        else:
            history = tuple((f"v{v}", found[name][v]) for v in sorted(found[name]))
        out.append(Subject(name, level, history))
    return out


def check_dir(directory: Path | None = None) -> list[Violation]:
    """Every violation among the schema versions in ``directory`` (default: shipped ones).
    Raises SchemaFileError when a file cannot be read at all."""
    found = load_dir(directory or default_dir())
    problems = []
    for name, by_version in sorted(found.items()):
        level = schemas.COMPATIBILITY.get(name, DEFAULT_LEVEL)
        expected = list(range(1, len(by_version) + 1))
        if sorted(by_version) != expected:
            problems.append(Violation(
                name, f"v{max(by_version)}", "", level, "NUMBERING", "",
                f"found versions {sorted(by_version)}, expected {expected}"))
        for version, schema in sorted(by_version.items()):
            if schema.get("name") != name and not str(schema.get("name", "")).endswith(
                    "." + name):
                problems.append(Violation(
                    name, f"v{version}", "", level, "NAMING", "",
                    f"file {name}.v{version}.avsc holds schema {schema.get('name')!r}"))
    for subject in subjects(found):
        problems.extend(check_subject(subject))
    return problems


def check_subject(subject: Subject) -> list[Violation]:
    """Violations of ``subject``'s level by each version against the ones before it."""
    problems: list[Violation] = []
    parsed: list[tuple[int, avro.schema.Schema]] = []
    labels: dict[int, str] = {}
    for index, (label, schema) in enumerate(subject.versions, 1):
        try:
            new = _compat.parse_schema(json.dumps(schema)).schema
        except _compat.InvalidSchemaError as exc:
            problems.append(Violation(subject.name, label, "", subject.level, "VALID", "",
                                      str(exc)))
            continue
        for field in _floats(schema, ""):
            problems.append(Violation(subject.name, label, "", subject.level, "CANONICAL",
                                      field, "is a float or double"))
        for req in _compat.required_checks(subject.level, new, parsed):
            for field, finding in _localize(req.reader, req.writer, "", 0):
                problems.append(Violation(
                    subject.name, label, labels[req.version], subject.level, req.rule,
                    field, f"{', '.join(finding.kinds) or 'INCOMPATIBLE'}: "
                    f"{'; '.join(finding.messages)}"))
        parsed.append((index, new))
        labels[index] = label
    return problems


def _localize(
    reader: avro.schema.Schema, writer: avro.schema.Schema, path: str, depth: int
) -> list[tuple[str, _compat.Incompatibility]]:
    """The deepest fields where ``reader`` cannot read ``writer``, each with its finding.

    Descends through records (fields matched by name or alias), arrays, maps and union
    branches of the same record name, so that the field named is the one that changed.
    """
    finding = _compat.reader_writer_finding(reader, writer)
    if finding is None:
        return []
    if depth < _MAX_DEPTH:
        found = list(_descend(reader, writer, path, depth + 1))
        if found:
            return found
    return [(path or "(top level)", finding)]


def _descend(
    reader: avro.schema.Schema, writer: avro.schema.Schema, path: str, depth: int
) -> Iterator[tuple[str, _compat.Incompatibility]]:
    if isinstance(reader, avro.schema.RecordSchema) and isinstance(
            writer, avro.schema.RecordSchema):
        if reader.fullname != writer.fullname:
            return
        by_name = {f.name: f for f in writer.fields}
        for rf in reader.fields:
            sub = f"{path}.{rf.name}" if path else rf.name
            wf = by_name.get(rf.name) or next(
                (by_name[a] for a in (rf.props.get("aliases") or []) if a in by_name), None)
            if wf is None:
                if not rf.has_default:
                    yield sub, _compat.Incompatibility(
                        ("READER_FIELD_MISSING_DEFAULT_VALUE",), (),
                        (f"{rf.name} is new and has no default",))
                continue
            yield from _localize(rf.type, wf.type, sub, depth)
    elif isinstance(reader, avro.schema.ArraySchema) and isinstance(
            writer, avro.schema.ArraySchema):
        yield from _localize(reader.items, writer.items, f"{path}[]", depth)
    elif isinstance(reader, avro.schema.MapSchema) and isinstance(writer, avro.schema.MapSchema):
        yield from _localize(reader.values, writer.values, f"{path}{{}}", depth)
    elif isinstance(reader, avro.schema.UnionSchema) and isinstance(
            writer, avro.schema.UnionSchema):
        named = {getattr(b, "fullname", None): b for b in reader.schemas}
        for branch in writer.schemas:
            match = named.get(getattr(branch, "fullname", None))
            if isinstance(branch, avro.schema.NamedSchema) and match is not None:
                yield from _localize(match, branch, path, depth)


def _floats(schema: Any, path: str) -> Iterator[str]:
    """Paths of float/double types in a schema given as JSON."""
    if isinstance(schema, str):
        if schema in ("float", "double"):
            yield path or "(top level)"
    elif isinstance(schema, list):
        for branch in schema:
            yield from _floats(branch, path)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "record":
            for field in schema.get("fields", []):
                if isinstance(field, dict):
                    sub = f"{path}.{field.get('name')}" if path else str(field.get("name"))
                    yield from _floats(field.get("type"), sub)
        elif kind == "array":
            yield from _floats(schema.get("items"), f"{path}[]")
        elif kind == "map":
            yield from _floats(schema.get("values"), f"{path}{{}}")
        else:
            yield from _floats(kind, path)


def registration_plan(
    raw_subject: str, sealed_subject: str, directory: Path | None = None
) -> list[tuple[str, str, Sequence[tuple[str, dict[str, Any]]]]]:
    """``(registry subject, level, versions)`` to publish: AuditEvent versions to the raw
    topic's subject, SealedRecord (AuditEvent inlined) versions to the sealed topic's."""
    found = load_dir(directory or default_dir())
    targets = {schemas.AUDIT_EVENT: raw_subject, schemas.SEALED_RECORD: sealed_subject}
    return [(targets[s.name], s.level, s.versions) for s in subjects(found)
            if s.name in targets]
