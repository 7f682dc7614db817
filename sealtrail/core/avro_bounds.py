"""Bounds on decoding Avro bytes that an attacker chose, under a schema an attacker may have
registered.

Decoding work is linear in the input for most schemas: every array item and map entry
takes at least one byte, and nesting is as deep as the schema. Two shapes break that:

- an array whose items encode to **zero bytes** (``array<null>``, an array of records
  without fields, of ``fixed`` of size 0): one block header of ten bytes can claim 2^62
  items, and a decoder loops over them forever;
- a **recursive** schema (a record that contains itself through a union or an array):
  nesting depth is chosen by the data, so a decoder recurses until its stack runs out.

:func:`shape` looks at a schema once and says whether it has either. Schemas that have
neither are decoded as they are (no per-record cost). For the others, :class:`Guard` walks
the bytes first, without building values, under :class:`DecodeLimits`: at most
``max_depth`` levels of nesting and ``max_items`` array items and map entries in one
datum; a block of zero-size items is counted, not iterated. A schema nested deeper than
``max_depth`` is refused outright. Whatever the input, the walk does at most
O(len(body) + max_depth) steps, and the decoder that follows it at most O(len(body) +
max_items). The walk must take the path the decoder takes: a decoder skipping a field the
reader schema lacks jumps over a block that states its size in bytes (a negative item
count), so such a block must hold exactly that many bytes, or the decoder would land
elsewhere than the walk did (found by fuzzing: it then met a block of 2^61 empty records).

Errors are :class:`LimitError` naming the rule, the path in the schema and the numbers;
they never quote the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sealtrail.errors import DecodeError

__all__ = ["MAX_DEPTH", "DecodeLimits", "Guard", "LimitError", "Shape", "read_long", "shape"]

MAX_DEPTH = 256  # the most decode_max_depth may be (the walk recurses once per level)
_PRIMITIVE_MIN = {"null": 0, "boolean": 1, "int": 1, "long": 1, "float": 4, "double": 8,
                  "bytes": 1, "string": 1}
_NAMED = ("record", "error", "enum", "fixed")


@dataclass(frozen=True)
class DecodeLimits:
    """What one datum may cost to decode (settings ``decode_max_depth`` and
    ``decode_max_items``)."""

    max_depth: int = 32
    max_items: int = 100_000

    def __post_init__(self) -> None:
        if not 1 <= self.max_depth <= MAX_DEPTH or self.max_items < 1:
            raise ValueError(f"decode limits: max_depth must be 1..{MAX_DEPTH}, max_items >= 1")


class LimitError(DecodeError):
    """A schema or a datum goes beyond :class:`DecodeLimits`. ``rule`` is ``depth``,
    ``items`` or ``schema-depth``; the message names the place and the numbers only."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True)
class Shape:
    """What :func:`shape` found in a schema: its nesting depth (of a non-recursive schema),
    the named types that contain themselves, and the paths of arrays of zero-size items."""

    depth: int
    recursive: tuple[str, ...]
    zero_size_arrays: tuple[str, ...]

    @property
    def linear(self) -> bool:
        """Decoding work is bounded by the input's length (and the schema's depth)."""
        return not self.recursive and not self.zero_size_arrays


class _Analysis:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.named: dict[str, Any] = {}
        self.open: set[str] = set()  # named types being analysed (a reference back = recursion)
        self.recursive: set[str] = set()
        self.zero_arrays: list[str] = []
        self.min_size: dict[str, int] = {}

    def visit(self, t: Any, namespace: str, path: str, depth: int) -> tuple[int, int]:
        """(nesting depth below and including ``t``, minimum encoded size of ``t``)."""
        if depth > self.limit:
            raise LimitError("schema-depth", f"schema nests more than {self.limit} levels "
                             f"(at {path or 'the top level'})")
        if isinstance(t, str):
            if t in _PRIMITIVE_MIN:
                return 0, _PRIMITIVE_MIN[t]
            name = _fullname(t, namespace)
            if name not in self.named and t in self.named:
                name = t
            if name in self.open:
                self.recursive.add(name)
                return 0, 1  # the data chooses how deep: bounded by the walk, not here
            if name in self.min_size:
                return 0, self.min_size[name]
            raise DecodeError(f"schema refers to unknown type {t!r} at {path or 'the top'}")
        if isinstance(t, list):
            deepest = 0
            for branch in t:
                d, _ = self.visit(branch, namespace, path, depth + 1)
                deepest = max(deepest, d)
            return deepest + 1, 1
        if not isinstance(t, Mapping):
            raise DecodeError(f"schema element at {path or 'the top'} is not a type")
        kind = t.get("type")
        if kind == "array":
            d, item = self.visit(t.get("items"), namespace, f"{path}[]", depth + 1)
            if item == 0:
                self.zero_arrays.append(path or "(top level)")
            return d + 1, 1
        if kind == "map":
            d, _ = self.visit(t.get("values"), namespace, f"{path}{{}}", depth + 1)
            return d + 1, 1
        if kind in _NAMED:
            return self._named(t, str(kind), namespace, path, depth)
        return self.visit(kind, namespace, path, depth)  # {"type": "long", ...} and the like

    def _named(self, t: Mapping[str, Any], kind: str, namespace: str, path: str,
               depth: int) -> tuple[int, int]:
        name = _fullname(str(t.get("name")), str(t.get("namespace") or namespace))
        self.named[name] = t
        if kind == "enum":
            self.min_size[name] = 1
            return 0, 1
        if kind == "fixed":
            size = t.get("size")
            self.min_size[name] = size if isinstance(size, int) and size >= 0 else 1
            return 0, self.min_size[name]
        inner = name.rpartition(".")[0]
        self.open.add(name)
        deepest = total = 0
        for field in t.get("fields") or []:
            sub = f"{path}.{field.get('name')}" if path else str(field.get("name"))
            d, size = self.visit(field.get("type"), inner, sub, depth + 1)
            deepest, total = max(deepest, d), total + size
        self.open.discard(name)
        self.min_size[name] = total
        return deepest + 1, total


def _fullname(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def shape(schema: Any, limits: DecodeLimits) -> Shape:
    """The :class:`Shape` of ``schema`` (Avro JSON). LimitError when it nests deeper than
    ``limits.max_depth``; DecodeError when it is not a schema this can read."""
    analysis = _Analysis(limits.max_depth)
    depth, _ = analysis.visit(schema, "", "", 0)
    return Shape(depth, tuple(sorted(analysis.recursive)), tuple(analysis.zero_arrays))


# -- the walk ------------------------------------------------------------------------------

# Node kinds of a compiled schema (children by index, so recursive types work).
(_NULL, _BOOL, _VARINT, _FLOAT, _DOUBLE, _BYTES, _FIXED, _ENUM, _ARRAY, _MAP, _RECORD,
 _UNION) = range(12)
_SIMPLE = {"null": _NULL, "boolean": _BOOL, "int": _VARINT, "long": _VARINT, "float": _FLOAT,
           "double": _DOUBLE, "bytes": _BYTES, "string": _BYTES}


class _Budget:
    __slots__ = ("items",)

    def __init__(self, items: int) -> None:
        self.items = items


class Guard:
    """Walks a datum's bytes under ``limits`` before a decoder builds it. Built once per
    schema (only for schemas whose :class:`Shape` is not linear)."""

    def __init__(self, schema: Any, limits: DecodeLimits) -> None:
        self.limits = limits
        self._nodes: list[tuple[Any, ...]] = []
        self._names: dict[str, int] = {}
        self._compile(schema, "", "")

    def _add(self, node: tuple[Any, ...]) -> int:
        self._nodes.append(node)
        return len(self._nodes) - 1

    def _compile(self, t: Any, namespace: str, path: str) -> int:
        if isinstance(t, str):
            if t in _SIMPLE:
                return self._add((_SIMPLE[t], path))
            found = self._names.get(_fullname(t, namespace), self._names.get(t))
            if found is None:
                raise DecodeError(f"schema refers to unknown type {t!r}")
            return found
        if isinstance(t, list):
            at = self._add((_UNION, path, ()))
            self._nodes[at] = (_UNION, path, tuple(self._compile(b, namespace, path) for b in t))
            return at
        kind = t.get("type")
        if kind in ("array", "map"):
            at = self._add((_ARRAY, path, 0, False))
            sub = f"{path}[]" if kind == "array" else f"{path}{{}}"
            child = self._compile(t["items" if kind == "array" else "values"], namespace, sub)
            zero = kind == "array" and self._zero_size(child, set())
            self._nodes[at] = (_ARRAY if kind == "array" else _MAP, path or "(top level)", child,
                               zero)
            return at
        if kind in _NAMED:
            name = _fullname(str(t["name"]), str(t.get("namespace") or namespace))
            if kind == "enum":
                self._names[name] = at = self._add((_ENUM, path, len(t["symbols"])))
                return at
            if kind == "fixed":
                self._names[name] = at = self._add((_FIXED, path, int(t["size"])))
                return at
            self._names[name] = at = self._add((_RECORD, path, ()))
            inner = name.rpartition(".")[0]
            fields = tuple(
                self._compile(f["type"], inner, f"{path}.{f['name']}" if path else f["name"])
                for f in t["fields"])
            self._nodes[at] = (_RECORD, path, fields)
            return at
        return self._compile(kind, namespace, path)

    def _zero_size(self, index: int, seen: set[int]) -> bool:
        node = self._nodes[index]
        if node[0] == _NULL:
            return True
        if node[0] == _FIXED:
            return bool(node[2] == 0)
        if node[0] == _RECORD and index not in seen:
            seen.add(index)
            return all(self._zero_size(child, seen) for child in node[2])
        return False

    def check(self, body: bytes | memoryview) -> None:
        """Raise LimitError when decoding ``body`` would go beyond the limits (DecodeError
        when the walk meets bytes that cannot be the schema's; the decoder says more)."""
        data = bytes(body)
        self._value(0, data, 0, 1, _Budget(self.limits.max_items))

    def _value(self, index: int, data: bytes, at: int, depth: int, budget: _Budget) -> int:
        node = self._nodes[index]
        kind = node[0]
        if depth > self.limits.max_depth:
            raise LimitError("depth", f"value at {node[1] or 'the top level'} is nested more "
                             f"than {self.limits.max_depth} levels deep")
        if kind == _NULL:
            return at
        if kind == _BOOL:
            return _need(data, at, 1)
        if kind in (_VARINT, _ENUM):
            return read_long(data, at)[1]
        if kind == _FLOAT:
            return _need(data, at, 4)
        if kind == _DOUBLE:
            return _need(data, at, 8)
        if kind == _BYTES:
            size, at = read_long(data, at)
            if size < 0:
                raise DecodeError("negative length")
            return _need(data, at, size)
        if kind == _FIXED:
            return _need(data, at, node[2])
        if kind == _RECORD:
            for child in node[2]:
                at = self._value(child, data, at, depth + 1, budget)
            return at
        if kind == _UNION:
            branch, at = read_long(data, at)
            if not 0 <= branch < len(node[2]):
                raise DecodeError("union branch out of range")
            return self._value(node[2][branch], data, at, depth + 1, budget)
        return self._blocks(node, data, at, depth, budget)

    def _blocks(self, node: tuple[Any, ...], data: bytes, at: int, depth: int,
                budget: _Budget) -> int:
        kind, path, child, zero = node
        while True:
            count, at = read_long(data, at)
            if count == 0:
                return at
            size = None
            if count < 0:  # a block with its size in bytes: a decoder that skips the
                count = -count  # field jumps by that size, so it must be the items' size
                size, at = read_long(data, at)
            budget.items -= count
            if budget.items < 0:
                raise LimitError("items", f"{'array' if kind == _ARRAY else 'map'} at {path} "
                                 f"takes the datum beyond {self.limits.max_items} items "
                                 f"(a block claims {count})")
            start = at
            if zero:
                self._value(child, data, at, depth + 1, budget)  # checks the depth, once
            else:
                for _ in range(count):
                    if kind == _MAP:
                        key, at = read_long(data, at)
                        at = _need(data, at, key) if key >= 0 else _negative()
                    at = self._value(child, data, at, depth + 1, budget)
            if size is not None and size != at - start:
                raise DecodeError(f"a block at {path} states {size} bytes and holds "
                                  f"{at - start}")


def _negative() -> int:
    raise DecodeError("negative length")


def _need(data: bytes, at: int, size: int) -> int:
    end = at + size
    if end > len(data):
        raise DecodeError("truncated")
    return end


def read_long(data: bytes, at: int) -> tuple[int, int]:
    """The Avro long (zigzag varint) at ``at`` and the position after it; DecodeError when
    it is truncated or longer than 64 bits."""
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise DecodeError("truncated or overlong varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1), at
        shift += 7
