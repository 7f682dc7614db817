"""Reading a segment straight to canonical JSON, for replay and verify at archive speed.

The reference way to check a segment decodes every record with fastavro and computes its
canonical bytes in Python (:mod:`sealtrail.archive.segments`, :mod:`sealtrail.core.canonical`).
This module does the same in one native pass (``sealtrail._canonical_avro``, built from
``sealtrail/_canonical_avro.c`` when sealtrail is installed): for each record, the
canonical JSON of the whole record (what replay writes as a JSON line), the canonical
bytes of its entry body (what ``entry_hash`` covers) and the fields a chain check needs.

It is only an accelerator. :func:`transcode_segment` returns None, never an answer of its
own, whenever it cannot reproduce the reference exactly: the extension is not built, the
file is not a plain SealedRecord segment, or a record holds anything the native code does
not take (floats, invalid UTF-8, duplicate map keys, ...). Callers then take the reference
path, which names the problem. tests/integration/native/test_fast_segments.py holds the two
to the same bytes.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import fastavro

from sealtrail.archive.segments import Container, check_schema, open_container
from sealtrail.core.avro import AvroCodec
from sealtrail.core.canonical import ENTRY_FIELDS
from sealtrail.core.envelope import strip_logical_types
from sealtrail.core.rows import (  # noqa: F401  (re-exported: callers index rows with them)
    BODY,
    CAPTURED,
    CHAIN_ID,
    ENTRY_HASH,
    EPOCH,
    EVENT,
    INGESTED_AT,
    KEY_ID,
    OFFSET,
    PARTITION,
    PREV_HASH,
    RECORD_JSON,
    SEQ,
    SIGNATURE,
    Row,
)
from sealtrail.errors import NativeUnsupportedError

try:
    from sealtrail import _canonical_avro as native  # type: ignore[attr-defined]
except ImportError:  # not built (no C compiler at install time): the reference path only
    native = None

__all__ = ["AVAILABLE", "NOT_BUILT", "Row", "decode_segment", "transcode_segment"]
# (and the Row field indices)

log = logging.getLogger(__name__)

AVAILABLE = native is not None
NOT_BUILT = ("the native segment reader (sealtrail._canonical_avro) is not built, so segments "
             "are read on the Python path, about 7x slower; reinstall sealtrail where a C "
             "compiler and the Python headers are present")

# The row layout is named in the verification core (:mod:`sealtrail.core.rows`).


def transcode_segment(data: bytes) -> list[Row] | None:
    """The records of segment ``data`` as :data:`Row` tuples, or None when the reference path
    must be taken (see the module docstring)."""
    if native is None:
        return None
    try:
        container = _opened(data)  # the bounded parser of the reference path
        program, seal, captures = _program(container.schema_text)
        rows: list[Row] = []
        for count, block in container.blocks:
            rows.extend(native.transcode(program, block, count, seal, captures))
        return rows
    except Exception as exc:  # whatever it is, the reference path reads (or names) it
        log.debug("segment takes the reference path: %s", exc)
        return None


_codecs: dict[str, AvroCodec | None] = {}
# The last segment opened: a segment that is checked (transcoded) and then decoded is
# parsed and inflated once. Keyed by the identity of the segment's bytes object.
_last: tuple[bytes, Container] | None = None


def _opened(data: bytes) -> Container:
    global _last
    if _last is not None and _last[0] is data:
        return _last[1]
    container = open_container(data)
    _last = (data, container)
    return container


def decode_segment(data: bytes) -> list[dict[str, Any]] | None:
    """The records of segment ``data`` as :func:`sealtrail.archive.segments.read_segment` gives them
    (dicts, decoded with the file's own schema), through the native Avro codec
    (sealtrail.core.avro_program), or None when the reference path must be taken: the same
    conditions as :func:`transcode_segment`, and a schema with logical types (which
    fastavro turns into other Python types)."""
    try:
        container = _opened(data)
        _program(container.schema_text)  # what the reference accepts, and nothing else
        decoder = _decoder(container.schema_text)
        if decoder is None:
            return None
        records: list[dict[str, Any]] = []
        for count, block in container.blocks:
            found = decoder.decode_block(block, count)
            if found is None:
                return None
            records.extend(found)
        return records
    except Exception as exc:  # whatever it is, the reference path reads (or names) it
        log.debug("segment takes the reference path: %s", exc)
        return None


def _decoder(text: str) -> AvroCodec | None:
    if text not in _codecs:
        schema = json.loads(text)
        found = AvroCodec(schema) if strip_logical_types(schema) == schema else None
        if len(_codecs) >= 64:
            _codecs.clear()
        _codecs[text] = found
    return _codecs[text]
# ---------------------------------------------------------------- schema programs

_programs: dict[str, tuple[Any, tuple[int, ...], tuple[tuple[int, ...], ...]]] = {}
_PRIMITIVE = {"null": "T_NULL", "boolean": "T_BOOL", "int": "T_LONG", "long": "T_LONG",
              "string": "T_STRING", "bytes": "T_BYTES"}


def _program(text: str) -> tuple[Any, tuple[int, ...], tuple[tuple[int, ...], ...]]:
    """The compiled program of a SealedRecord schema text (cached), the indices of its seal
    fields and the field paths of :data:`CAPTURED`."""
    found = _programs.get(text)
    if found is None:
        schema = json.loads(text)
        try:  # what the reference reader accepts as a segment's schema, and nothing else
            fastavro.parse_schema(schema, _write_hint=False)
            check_schema(schema)
        except Exception as exc:
            raise NativeUnsupportedError(f"schema refused: {exc}") from None
        nodes = _compile(schema)
        fields = [f["name"] for f in schema["fields"]]
        if set(fields) != {*ENTRY_FIELDS, "entry_hash", "signature"}:
            raise NativeUnsupportedError("not a SealedRecord: fields " + ", ".join(fields))
        source = [f["name"] for f in _named(schema)["source"]["fields"]]
        paths = []
        for name in CAPTURED:
            top, _, sub = name.partition(".")
            paths.append((fields.index(top), *((source.index(sub),) if sub else ())))
        found = (native.compile(nodes), (fields.index("entry_hash"), fields.index("signature")),
                 tuple(paths))
        if len(_programs) < 64:
            _programs[text] = found
    return found


def _named(schema: dict[str, Any]) -> dict[str, Any]:
    """The top-level record's field types by name (the source field's record, for paths)."""
    out = {}
    for field in schema["fields"]:
        ftype = field["type"]
        if isinstance(ftype, dict) and ftype.get("type") == "record":
            out[field["name"]] = ftype
    if "source" not in out:
        raise NativeUnsupportedError("source is not a plain record")
    return out


def _json_text(name: str) -> bytes:
    """A field name or symbol as a canonical JSON string (Python's json is the reference)."""
    return json.dumps(name, ensure_ascii=False).encode("utf-8")


def _compile(schema: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The node list of ``schema`` for the native transcoder (node 0 the top record)."""
    nodes: list[tuple[Any, ...]] = []
    names: dict[str, int] = {}

    def add(kind: str, *rest: Any) -> int:
        nodes.append((getattr(native, kind), *rest))
        return len(nodes) - 1

    def fullname(name: str, namespace: str) -> str:
        return name if "." in name or not namespace else f"{namespace}.{name}"

    def node(t: Any, namespace: str) -> int:
        if isinstance(t, str):
            if t in _PRIMITIVE:
                return add(_PRIMITIVE[t])
            if t in ("float", "double"):
                raise NativeUnsupportedError("floats have no canonical form")
            ref = names.get(fullname(t, namespace), names.get(t))
            if ref is None:
                raise NativeUnsupportedError(f"unknown type {t!r}")
            return ref
        if isinstance(t, list):
            at = add("T_UNION", ())
            nodes[at] = (native.T_UNION, tuple(node(b, namespace) for b in t))
            return at
        kind = t["type"]
        if kind == "array":
            at = add("T_ARRAY", 0)
            nodes[at] = (native.T_ARRAY, node(t["items"], namespace))
            return at
        if kind == "map":
            at = add("T_MAP", 0)
            nodes[at] = (native.T_MAP, node(t["values"], namespace))
            return at
        if kind in ("record", "error", "enum", "fixed"):
            name = fullname(t["name"], t.get("namespace", namespace))
            inner = name.rpartition(".")[0]
            if kind == "fixed":
                names[name] = at = add("T_FIXED", int(t["size"]))
                return at
            if kind == "enum":
                symbols = tuple(_json_text(s) for s in t["symbols"])
                names[name] = at = add("T_ENUM", symbols)
                return at
            names[name] = at = add("T_RECORD", (), ())  # placeholder: may refer to itself
            fields = tuple((_json_text(f["name"]) + b":", node(f["type"], inner))
                           for f in t["fields"])
            order = tuple(sorted(range(len(fields)),
                                 key=lambda i: t["fields"][i]["name"].encode("utf-8")))
            nodes[at] = (native.T_RECORD, fields, order)
            return at
        return node(kind, namespace)  # {"type": "long", "logicalType": ...} and the like

    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise NativeUnsupportedError("the top-level schema is not a record")
    node(schema, schema.get("namespace", ""))
    return nodes
