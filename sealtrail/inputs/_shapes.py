"""Checking the structure and types of a decoded JSON document against a small spec.

A spec is a JSON type (``str``, ``int``, ``bool``, ``dict``, ``list``, ``type(None)``, or a
tuple of them), a :class:`Shape` (an object with named members) or a :class:`ListOf`.
``int`` never matches a boolean. Errors name the path and the types, never a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sealtrail.errors import MalformedInputError

__all__ = ["ListOf", "Shape", "check_shape"]


@dataclass(frozen=True)
class Shape:
    """An object whose members ``fields`` maps to their specs. ``exact``: no other member
    may be present; ``optional``: members that may be absent."""

    fields: Mapping[str, Any]
    exact: bool = True
    optional: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class ListOf:
    """An array of at most ``max_items`` items, each of spec ``item``."""

    item: Any
    max_items: int


_NAMES = {str: "a string", int: "an integer", bool: "a boolean", dict: "an object",
          list: "an array", type(None): "null", float: "a number"}


def _name(spec: Any) -> str:
    if isinstance(spec, tuple):
        return " or ".join(_name(s) for s in spec)
    if isinstance(spec, Shape):
        return "an object"
    if isinstance(spec, ListOf):
        return "an array"
    return _NAMES.get(spec, getattr(spec, "__name__", "?"))


def _is(value: Any, kinds: tuple[Any, ...]) -> bool:
    if isinstance(value, bool):
        return bool in kinds
    return any(isinstance(kind, type) and isinstance(value, kind) for kind in kinds)


def check_shape(value: Any, spec: Any, what: str, path: str = "") -> None:
    """MalformedInputError naming ``what`` and the first path where ``value`` does not
    have the structure of ``spec``."""
    here = path or "the top level"
    if isinstance(spec, Shape):
        if not isinstance(value, dict):
            raise MalformedInputError(f"{what}: {here} must be an object, found "
                                      f"{_name(type(value))}")
        missing = sorted(set(spec.fields) - set(value) - spec.optional)
        if missing:
            raise MalformedInputError(f"{what}: {here} lacks member {missing[0]!r}")
        if spec.exact:
            extra = sorted(str(k)[:64] for k in set(value) - set(spec.fields))
            if extra:
                raise MalformedInputError(f"{what}: {here} has an unexpected member "
                                          f"{extra[0]!r}")
        for name, sub in spec.fields.items():
            if name in value:
                check_shape(value[name], sub, what, f"{path}.{name}" if path else name)
        return
    if isinstance(spec, ListOf):
        if not isinstance(value, list):
            raise MalformedInputError(f"{what}: {here} must be an array, found "
                                      f"{_name(type(value))}")
        if len(value) > spec.max_items:
            raise MalformedInputError(f"{what}: {here} holds {len(value)} items, at most "
                                      f"{spec.max_items}")
        for i, item in enumerate(value):
            check_shape(item, spec.item, what, f"{here}[{i}]")
        return
    kinds = spec if isinstance(spec, tuple) else (spec,)
    if not _is(value, kinds):
        raise MalformedInputError(f"{what}: {here} must be {_name(spec)}, found "
                                  f"{_name(type(value))}")
