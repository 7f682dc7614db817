"""Avro schema parsing, identity and compatibility levels for the embedded registry.

Compatibility decisions are delegated to ``avro.compatibility.ReaderWriterCompatibilityChecker``
(the Python port of the Avro-Java ``SchemaCompatibility`` class Confluent uses).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from sealtrail.errors import DataError

LEVELS: tuple[str, ...] = (
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
)
DEFAULT_LEVEL = "BACKWARD"
# Upper bound on the sum of squared union sizes in one schema. The avro checker is quadratic (and
# worse) in union size; this keeps one reader/writer check well under a second. Real schemas are
# far below it: 100 fields of ["null", T] cost 400; a single 200-branch union costs 40_000.
MAX_UNION_COST = 40_000


class InvalidSchemaError(DataError, ValueError):
    """The submitted text is not valid JSON or not a valid Avro schema."""


@dataclass(frozen=True)
class ParsedSchema:
    """A validated Avro schema: compact original text, identity key and parsed form."""

    text: str
    canonical: str
    schema: avro.schema.Schema


def normalize_level(level: object) -> str:
    """Return the upper-case compatibility level, or raise ``ValueError`` if unknown."""
    if isinstance(level, str) and level.strip().upper() in LEVELS:
        return level.strip().upper()
    raise ValueError(
        f"Invalid compatibility level {level!r}. Valid values are: {', '.join(LEVELS)}"
    )


def parse_schema(text: str) -> ParsedSchema:
    """Parse and validate an Avro schema given as JSON text.

    Raises ``InvalidSchemaError`` with a readable message on bad JSON or bad Avro.
    """
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidSchemaError(f"Invalid schema: not valid JSON ({exc})") from None
    cost = _union_cost(obj)
    if cost > MAX_UNION_COST:
        raise InvalidSchemaError(
            f"Schema too complex: unions sum to {cost} squared branches (limit {MAX_UNION_COST})"
        )
    compact = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. IgnoredLogicalType for unknown logical types
            parsed = avro.schema.parse(compact)
        canonical = json.dumps(parsed.to_json(), sort_keys=True, separators=(",", ":"))
    except RecursionError:
        raise InvalidSchemaError("Invalid schema: nested too deeply") from None
    except Exception as exc:  # the avro parser raises a variety of exception types
        raise InvalidSchemaError(f"Invalid Avro schema: {type(exc).__name__}: {exc}") from None
    return ParsedSchema(text=compact, canonical=canonical, schema=parsed)


def _union_cost(obj: object) -> int:
    """Sum of ``len(union) ** 2`` over the unions of a schema given as parsed JSON."""
    cost, stack = 0, [obj]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            cost += len(node) ** 2
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node[k] for k in ("type", "items", "values") if k in node)
            fields = node.get("fields")
            if isinstance(fields, list):
                stack.extend(f["type"] for f in fields if isinstance(f, dict) and "type" in f)
    return cost


@dataclass(frozen=True)
class Incompatibility:
    """Why a reader cannot read a writer (schema compatibility, unrelated to the evidence
    findings of sealtrail.core.findings): Avro's incompatibility kinds (upper case), the
    JSON-pointer locations in the reader schema where they occur, and the checker's messages.

    The avro checker merges results, so a finding with several kinds does not say which
    location goes with which message; each list is complete and sorted.
    """

    kinds: tuple[str, ...]
    locations: tuple[str, ...]
    messages: tuple[str, ...]

    def __str__(self) -> str:
        return (f"{', '.join(self.kinds) or 'INCOMPATIBLE'} at {', '.join(self.locations)}: "
                f"{'; '.join(self.messages)}")


def reader_writer_finding(
    reader: avro.schema.Schema, writer: avro.schema.Schema
) -> Incompatibility | None:
    """Why ``reader`` cannot read data written with ``writer``; None when it can."""
    try:
        checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
        result = checker.get_compatibility(reader, writer)
    except Exception as exc:  # e.g. ambiguous aliases: report as incompatible, like Confluent
        return Incompatibility((), ("/",), (f"{type(exc).__name__}: {exc}",))
    if result.compatibility is SchemaCompatibilityType.compatible:
        return None
    return Incompatibility(
        kinds=tuple(sorted({k.value.upper() for k in result.incompatibilities})),
        locations=tuple(sorted(result.locations)),
        messages=tuple(sorted(result.messages)),
    )


@dataclass(frozen=True)
class RequiredCheck:
    """One reader/writer check a level requires of a new schema against an existing version.

    ``rule`` is BACKWARD (the new schema reads data written with ``version``) or FORWARD
    (``version`` reads data written with the new schema).
    """

    rule: str
    version: int
    reader: avro.schema.Schema
    writer: avro.schema.Schema


def required_checks(
    level: str,
    new: avro.schema.Schema,
    existing: Sequence[tuple[int, avro.schema.Schema]],
) -> list[RequiredCheck]:
    """The checks ``level`` requires of ``new`` against ``existing`` (``(version, schema)``
    pairs, oldest first).

    BACKWARD: new reads latest. FORWARD: latest reads new. FULL: both. ``*_TRANSITIVE``: the same
    against every existing version. NONE: nothing.
    """
    level = normalize_level(level)
    if level == "NONE" or not existing:
        return []
    targets = existing if level.endswith("_TRANSITIVE") else existing[-1:]
    backward = level.startswith(("BACKWARD", "FULL"))
    forward = level.startswith(("FORWARD", "FULL"))
    checks: list[RequiredCheck] = []
    for version, old in targets:
        if backward:
            checks.append(RequiredCheck("BACKWARD", version, new, old))
        if forward:
            checks.append(RequiredCheck("FORWARD", version, old, new))
    return checks


def check(
    level: str,
    new: avro.schema.Schema,
    existing: Sequence[tuple[int, avro.schema.Schema]],
) -> list[str]:
    """Check ``new`` against ``existing`` (``(version, schema)`` pairs, oldest first) per ``level``.

    See :func:`required_checks` for what each level means. Returns reasons; empty means OK.
    """
    level = normalize_level(level)
    messages: list[str] = []
    for req in required_checks(level, new, existing):
        finding = reader_writer_finding(req.reader, req.writer)
        if finding is None:
            continue
        if req.rule == "BACKWARD":
            messages.append(
                f"{level}: new schema cannot read data written with version {req.version}: "
                f"{finding}"
            )
        else:
            messages.append(
                f"{level}: version {req.version} cannot read data written with the new schema: "
                f"{finding}"
            )
    return messages
