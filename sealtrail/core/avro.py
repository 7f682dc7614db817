"""Avro encoding in the Confluent wire format: magic byte 0, a 4-byte big-endian
schema id, then the Avro binary body. Schemas are used without logical types
(timestamps stay integers; see envelope.strip_logical_types).
"""

from __future__ import annotations

import io
import struct
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError

from sealtrail.core.avro_bounds import DecodeLimits, Guard, shape
from sealtrail.core.disclosure import character_classes
from sealtrail.core.envelope import strip_logical_types
from sealtrail.errors import DecodeError, EventValidationError

__all__ = ["MAGIC", "AvroCodec", "SchemaMismatchError", "frame", "unframe"]

MAGIC = 0
_HEADER = struct.Struct(">BI")  # unsigned magic byte, unsigned 32-bit schema id


class SchemaMismatchError(DecodeError):
    """The writer schema cannot be resolved to the reader schema (e.g. a required field
    of the reader is missing from the writer and has no default)."""


def frame(schema_id: int, body: bytes) -> bytes:
    """Prefix an Avro body with the Confluent wire header."""
    if not 0 <= schema_id <= 0xFFFF_FFFF:
        raise ValueError(f"schema id {schema_id} does not fit the 4-byte wire header")
    return _HEADER.pack(MAGIC, schema_id) + body


def unframe(data: bytes) -> tuple[int, memoryview]:
    """(schema id, body) of a Confluent-framed message; DecodeError when not framed."""
    if len(data) < _HEADER.size:
        raise DecodeError(f"message of {len(data)} bytes is shorter than the 5-byte header")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC:
        # The byte itself is not quoted: it is the first byte of whatever was sent.
        raise DecodeError(f"the first byte is not the magic byte {MAGIC} of the Confluent "
                          "wire format")
    return schema_id, memoryview(data)[_HEADER.size :]


class AvroCodec:
    """Encode and decode records of one schema (the reader schema when decoding).

    ``limits``: the schema is not trusted (a writer schema from a registry), so bytes
    written with it are decoded under these bounds (:mod:`sealtrail.core.avro_bounds`);
    LimitError here when the schema itself nests deeper than they allow."""

    def __init__(self, schema: dict[str, Any], limits: DecodeLimits | None = None) -> None:
        self.schema = schema
        self._guard: Guard | None = None
        # The shape before fastavro sees the schema (it recurses on nesting), the guard after
        # (which then only meets valid names).
        linear = shape(schema, limits).linear if limits is not None else True
        self.parsed = fastavro.parse_schema(strip_logical_types(schema))  # parsed once: hinted
        if limits is not None and not linear:
            self._guard = Guard(strip_logical_types(schema), limits)
        self.name = str(schema.get("name", "?"))
        self._records = _record_paths(schema, ())

    def validate(self, record: dict[str, Any]) -> None:
        """Raise EventValidationError naming the first field that does not fit the schema.

        Keys that are not fields of the schema are errors too: fastavro accepts them and
        the encoder would drop them without a word.
        """
        if fastavro.validate(record, self.parsed, raise_errors=False):
            problem = self._unknown_field(record)
            if problem is None:
                return
            raise EventValidationError(*problem)
        problem = _first_problem(self.schema, record, "")
        field, message = problem or ("?", "does not match the schema")
        raise EventValidationError(field, message)

    def _unknown_field(self, record: dict[str, Any]) -> tuple[str, str] | None:
        for path, names, record_name in self._records:
            value: Any = record
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, dict):
                extra = value.keys() - names
                if extra:
                    return ".".join((*path, sorted(extra)[0])), f"is not a field of {record_name}"
        return None

    def encode(self, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self.parsed, record)
        return buf.getvalue()

    def decode(self, body: bytes | memoryview, writer: AvroCodec | None = None) -> Any:
        """Decode ``body`` written with ``writer`` (this schema when None), resolved to this
        schema; DecodeError when the bytes do not parse, LimitError (one) when decoding them
        would go beyond the writer's limits."""
        guard = (writer or self)._guard
        if guard is not None:
            guard.check(body)
        buf = io.BytesIO(body)
        try:
            record = fastavro.schemaless_reader(buf, (writer or self).parsed, self.parsed)
        except SchemaResolutionError as exc:
            raise SchemaMismatchError(f"writer schema cannot be read as {self.name}: {exc}") \
                from None
        except Exception as exc:  # fastavro raises many types on corrupt input
            # Its messages may quote the bytes (a string that is not UTF-8, say): the type
            # and where it stopped are what a reader can act on, without the content.
            raise DecodeError(f"Avro body does not decode ({type(exc).__name__} after byte "
                              f"{buf.tell()} of {len(body)})") from None
        trailing = len(body) - buf.tell()
        if trailing:
            raise DecodeError(f"{trailing} bytes follow the Avro body")
        return record


_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "string": (str,), "bytes": (bytes,), "int": (int,), "long": (int,),
    "boolean": (bool,), "float": (float, int), "double": (float, int), "null": (type(None),),
}

_INT_BITS = {"int": 31, "long": 63}


def _record_paths(
    schema: Any, path: tuple[str, ...]
) -> list[tuple[tuple[str, ...], frozenset[str], str]]:
    """(path, field names, record name) of every record reachable through record fields and
    unions with a single record branch (records inside arrays and maps are not listed)."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return []
    found = [(path, frozenset(f["name"] for f in schema["fields"]), str(schema["name"]))]
    for field in schema["fields"]:
        ftype = field["type"]
        branches = ftype if isinstance(ftype, list) else [ftype]
        records = [b for b in branches if isinstance(b, dict) and b.get("type") == "record"]
        if len(records) == 1:
            found += _record_paths(records[0], (*path, field["name"]))
    return found


def _type_name(schema: Any) -> str:
    if isinstance(schema, list):
        return " or ".join(_type_name(s) for s in schema)
    if isinstance(schema, dict):
        return str(schema.get("name") or schema["type"])
    return str(schema).rsplit(".", 1)[-1]


def _got(value: Any) -> str:
    """What was found instead, without the value: its type, and for text its length and
    character classes (messages reach logs; docs/redaction.md)."""
    name = type(value).__name__
    if isinstance(value, str):
        classes = ", ".join(character_classes(value)) or "empty"
        return f"{name} of {len(value)} characters ({classes})"
    return name


def _first_problem(schema: Any, value: Any, path: str) -> tuple[str, str] | None:
    """(path, message) of the first place ``value`` does not fit ``schema``, else None.
    Messages never quote the value."""
    here = path or "(event)"
    if isinstance(schema, list):
        for branch in schema:
            if _first_problem(branch, value, path) is None:
                return None
        records = [b for b in schema if isinstance(b, dict) and b.get("type") == "record"]
        if len(records) == 1 and isinstance(value, dict):
            return _first_problem(records[0], value, path)
        return here, f"expected {_type_name(schema)}, got {_got(value)}"
    if isinstance(schema, str):
        kinds = _PRIMITIVES.get(schema)
        if kinds is None:
            return None  # named type reference: checked where it is defined
        if not isinstance(value, kinds) or (schema != "boolean" and isinstance(value, bool)):
            return here, f"expected {schema}, got {_got(value)}"
        bits = _INT_BITS.get(schema)
        if bits and isinstance(value, int) and not -(1 << bits) <= value < 1 << bits:
            return here, f"does not fit in an Avro {schema} ({bits + 1}-bit signed)"
        return None
    kind = schema["type"]
    if kind == "record":
        if not isinstance(value, dict):
            return here, f"expected a {schema['name']} record (dict), got {type(value).__name__}"
        for field in schema["fields"]:
            name = field["name"]
            sub = f"{path}.{name}" if path else name
            if name not in value and "default" not in field:
                return sub, "is required and missing"
            problem = _first_problem(field["type"], value.get(name, field.get("default")), sub)
            if problem:
                return problem
        unknown = set(value) - {f["name"] for f in schema["fields"]}
        if unknown:
            return f"{path}.{sorted(unknown)[0]}" if path else sorted(unknown)[0], (
                "is not a field of " + schema["name"]
            )
        return None
    if kind == "enum":
        if value not in schema["symbols"]:
            return here, f"is not one of {schema['symbols']} (got {_got(value)})"
        return None
    if kind == "array":
        if not isinstance(value, list | tuple):
            return here, f"expected a list, got {type(value).__name__}"
        for i, item in enumerate(value):
            problem = _first_problem(schema["items"], item, f"{here}[{i}]")
            if problem:
                return problem
        return None
    if kind == "map":
        if not isinstance(value, dict):
            return here, f"expected a map (dict), got {type(value).__name__}"
        for key, item in value.items():
            problem = _first_problem(schema["values"], item, f"{here}.{key}")
            if problem:
                return problem
        return None
    return _first_problem(kind, value, path)
