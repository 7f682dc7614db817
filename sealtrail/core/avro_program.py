"""Avro schemas compiled once into programs for the native codec.

``sealtrail.core._avro_native`` (built from ``_avro_native.c`` when sealtrail is
installed) encodes and decodes Avro binary without walking the schema for every record:
fastavro's ``schemaless_writer`` / ``schemaless_reader`` walk it each time, which made the
sealed record's encoding and the raw event's decoding the two largest costs of sealing
after the signature. Nothing here is written per field: a program is generated from
whatever schema it is given, so new schema versions need no code.

It is only an accelerator. :class:`NativeEncoder` and :class:`NativeDecoder` answer None,
never an answer of their own, whenever they cannot give exactly fastavro's: the
extension is not built, the schema uses something the programs do not cover (see
:func:`encoder_for` and :func:`decoder_for`), or a value is not exactly what the schema
names (a subclass, a tuple for an array, a missing key, a number out of range, a union
branch only fastavro can choose, invalid UTF-8, truncated input...). The caller
(:class:`sealtrail.core.avro.AvroCodec`) then takes fastavro, which gives the answer or
the error. tests/integration/native/test_avro_native.py holds the two to the same bytes and values.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

from sealtrail.errors import NativeUnsupportedError

__all__ = ["AVAILABLE", "NativeDecoder", "NativeEncoder", "NativeUnsupportedError", "decoder_for",
           "encoder_for"]


def _load() -> Any:
    try:
        from sealtrail.core import _avro_native
    except ImportError:  # not built (no C compiler at install time): fastavro only
        return None
    return _avro_native


native = _load()
AVAILABLE = native is not None

_PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "string", "bytes")
_NAMED = ("record", "error", "enum", "fixed")


class NativeEncoder:
    """Avro binary of values of one schema, or None where fastavro must decide."""

    __slots__ = ("_encode", "_program")

    def __init__(self, program: Any) -> None:
        self._program = program
        self._encode = native.encode

    def __call__(self, value: Any) -> bytes | None:
        try:
            body: bytes = self._encode(self._program, value)
        except ValueError:
            return None
        return body


class NativeDecoder:
    """(value, bytes used) of data written with one schema and read as another (or the
    same), or None where fastavro must decide."""

    __slots__ = ("_decode", "_program")

    def __init__(self, program: Any) -> None:
        self._program = program
        self._decode = native.decode

    def __call__(self, data: bytes | memoryview) -> tuple[Any, int] | None:
        try:
            found: tuple[Any, int] = self._decode(self._program, data)
        except ValueError:
            return None
        return found

    def many(self, data: bytes | memoryview, count: int) -> list[Any] | None:
        """``count`` values written back to back that fill ``data`` exactly (the records
        of an Avro container block), or None."""
        try:
            found: list[Any] = native.decode_many(self._program, data, count)
        except ValueError:
            return None
        return found


def encoder_for(schema: Any) -> NativeEncoder | None:
    """The native encoder of ``schema`` (logical types already stripped), or None when the
    extension is not built or the schema is recursive or uses a type this does not know.
    Values of unions with two branches of one Python type (int and long, string and an
    enum, a record and a map...) are always left to fastavro."""
    if native is None:
        return None
    try:
        compiler = _Compiler(schema, schema, resolving=False)
        return NativeEncoder(native.compile(compiler.top(), copy.deepcopy))
    except Exception:  # NativeUnsupportedError, or a schema fastavro would refuse: fastavro decides
        return None


def decoder_for(writer: Any, reader: Any, *, resolving: bool = True) -> NativeDecoder | None:
    """The native decoder of data written with ``writer`` resolved to ``reader``, or None
    when the extension is not built or the resolution needs more than: fields matched by
    name, writer fields the reader does not have skipped, reader fields the writer does
    not have set to their defaults, everything else of the same type on both sides
    (no promotions, no aliases, enums with the same symbols, unions with the same
    branches in the same order). ``resolving``: whether fastavro resolves the two (it
    does unless their parsed forms are equal), which changes how it reads unions."""
    if native is None:
        return None
    try:
        compiler = _Compiler(writer, reader, resolving=resolving)
        return NativeDecoder(native.compile(compiler.top(), copy.deepcopy))
    except Exception:  # NativeUnsupportedError, or a schema fastavro would refuse: fastavro decides
        return None


def _fullname(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


class _Names:
    """The named types of one schema by full name, with the namespace inside each."""

    def __init__(self, schema: Any) -> None:
        self.types: dict[str, Any] = {}
        self._walk(schema, "")

    def _walk(self, t: Any, ns: str) -> None:
        if isinstance(t, list):
            for branch in t:
                self._walk(branch, ns)
        elif isinstance(t, dict):
            kind = t["type"]
            if kind in _NAMED:
                full = _fullname(t["name"], t.get("namespace", ns))
                self.types[full] = t
                if kind in ("record", "error"):
                    for field in t["fields"]:
                        self._walk(field["type"], full.rpartition(".")[0])
            elif kind == "array":
                self._walk(t["items"], ns)
            elif kind == "map":
                self._walk(t["values"], ns)
            elif isinstance(kind, dict | list):
                self._walk(kind, ns)

    def resolve(self, t: Any, ns: str) -> tuple[Any, str, str]:
        """(a primitive's name, a union's list or a complex type's dict; the namespace
        names inside it resolve in; its full name, "" when it has none)."""
        while isinstance(t, dict) and not isinstance(t["type"], str):
            t = t["type"]  # {"type": {...}} and {"type": [...]}
        if isinstance(t, dict) and t["type"] in _PRIMITIVES:
            return t["type"], ns, ""  # {"type": "long", "logicalType": ...} and the like
        if isinstance(t, str):
            if t in _PRIMITIVES:
                return t, ns, ""
            full = _fullname(t, ns)
            if full not in self.types:
                full = t
            t = self.types[full]
        elif isinstance(t, dict) and t["type"] in _NAMED:
            full = _fullname(t["name"], t.get("namespace", ns))
        else:
            return t, ns, ""
        return t, full.rpartition(".")[0], full


# What fastavro reads as another type when resolving (writer type, reader type).
_PROMOTIONS = frozenset({("int", "long"), ("int", "float"), ("int", "double"),
                         ("long", "float"), ("long", "double"), ("float", "double"),
                         ("string", "bytes"), ("bytes", "string")})


def _kind(t: Any) -> str:
    """The type name of a resolved type ("union" for a list)."""
    if isinstance(t, list):
        return "union"
    return t if isinstance(t, str) else str(t["type"])


class _Compiler:
    """The node list of data written with ``writer`` read as ``reader`` (the format is in
    _avro_native.c); node 0 is the top-level type."""

    def __init__(self, writer: Any, reader: Any, *, resolving: bool) -> None:
        self._writer, self._reader = writer, reader
        self._resolving = resolving
        self._wnames, self._rnames = _Names(writer), _Names(reader)
        self._nodes: list[tuple[Any, ...]] = []
        self._open: set[str] = set()

    def top(self) -> list[tuple[Any, ...]]:
        self._node(self._writer, "", self._reader, "", self._rnames)
        return self._nodes

    def _add(self, *node: Any) -> int:
        self._nodes.append(node)
        return len(self._nodes) - 1

    def _node(self, w: Any, wns: str, r: Any, rns: str, rnames: _Names) -> int:
        w, wns, wfull = self._wnames.resolve(w, wns)
        r, rns, rfull = rnames.resolve(r, rns)
        if isinstance(w, list) or isinstance(r, list):
            if not (isinstance(w, list) and isinstance(r, list)) or len(w) != len(r):
                raise NativeUnsupportedError("a union resolved to another type")
            if self._resolving:
                self._check_branches(w, wns, r, rns, rnames)
            at = self._add(native.K_UNION, ())
            self._nodes[at] = (native.K_UNION, tuple(
                self._node(a, wns, b, rns, rnames) for a, b in zip(w, r, strict=True)))
            return at
        if isinstance(w, str) or isinstance(r, str):
            if w != r:
                raise NativeUnsupportedError(f"{w} read as {r} (a promotion)")
            return self._add(getattr(native, "K_" + {"boolean": "BOOL"}.get(w, w.upper())))
        kind = w["type"]
        if r["type"] != kind:
            raise NativeUnsupportedError(f"{kind} read as {r['type']}")
        if kind in _NAMED and (wfull != rfull or r.get("aliases")):
            raise NativeUnsupportedError(f"{wfull} read as {rfull}")
        if kind == "enum":
            # A writer index is read as the writer's symbol, which the reader must know
            # (a newer reader adding symbols, as AuditEvent v3 does); a symbol the reader
            # lacks takes the reader's default, which fastavro handles.
            if not set(w["symbols"]) <= set(r["symbols"]):
                raise NativeUnsupportedError("enum symbols the reader does not have")
            symbols = tuple(sys.intern(s) for s in w["symbols"])
            return self._add(native.K_ENUM, symbols, {s: i for i, s in enumerate(symbols)})
        if kind == "fixed":
            if w["size"] != r["size"]:
                raise NativeUnsupportedError("fixed sizes differ")
            return self._add(native.K_FIXED, int(w["size"]))
        if kind in ("array", "map"):
            part = "items" if kind == "array" else "values"
            at = self._add(None)
            self._nodes[at] = (getattr(native, "K_" + kind.upper()),
                               self._node(w[part], wns, r[part], rns, rnames))
            return at
        if kind in ("record", "error"):
            return self._record(w, wns, r, rns, rnames, wfull)
        raise NativeUnsupportedError(f"type {kind!r}")

    def _check_branches(self, w: list[Any], wns: str, r: list[Any], rns: str,
                        rnames: _Names) -> None:
        """When resolving, fastavro reads writer branch i as the *first* reader branch that
        matches it, promotions and unqualified names included (bytes as a string before
        it, a long as a double...). The programs read it as reader branch i: refuse a union
        where an earlier reader branch might match."""
        for i, wb in enumerate(w):
            wkind = _kind(self._wnames.resolve(wb, wns)[0])
            for rb in r[:i]:
                rkind = _kind(rnames.resolve(rb, rns)[0])
                if (wkind == rkind or (wkind in _NAMED and rkind in _NAMED)
                        or (wkind, rkind) in _PROMOTIONS or "union" in (wkind, rkind)):
                    raise NativeUnsupportedError(f"union branch {i} may resolve to an earlier one")

    def _record(self, w: Any, wns: str, r: Any, rns: str, rnames: _Names, name: str) -> int:
        if name in self._open:
            raise NativeUnsupportedError("a recursive record")
        self._open.add(name)
        at = self._add(None)
        wanted = {f["name"]: f for f in r["fields"]}
        if any(f.get("aliases") for f in r["fields"]):
            raise NativeUnsupportedError("field aliases")
        fields: list[tuple[str | None, int]] = []
        for wf in w["fields"]:
            rf = wanted.pop(wf["name"], None)
            if rf is None:  # the reader does not have it: read it (as written) and drop it
                fields.append((None, self._node(wf["type"], wns, wf["type"], wns,
                                                self._wnames)))
            else:
                fields.append((sys.intern(wf["name"]),
                               self._node(wf["type"], wns, rf["type"], rns, rnames)))
        defaults = []
        for fname, rf in wanted.items():  # what fastavro does: the reader's default, after
            if "default" not in rf:
                raise NativeUnsupportedError(f"field {fname} has no default")
            value = rf["default"]
            defaults.append((sys.intern(fname), value, isinstance(value, dict | list)))
        self._nodes[at] = (native.K_RECORD, tuple(fields), tuple(defaults))
        self._open.discard(name)
        return at
