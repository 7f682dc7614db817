"""The compiled form of a redaction policy for one event type (used by
:class:`sealtrail.core.redaction.Policy`): which transform each field gets, how an
attribute key is decided (once per key), and what the detectors look at."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sealtrail.core._redaction_rules import ATTR_PREFIX, ATTRIBUTES, Rule

__all__ = ["UNNAMED_ATTRIBUTE", "Compiled", "Decision", "Detection", "FieldStep", "Plan",
           "Transform", "lookup", "split_path"]

UNNAMED_ATTRIBUTE = "attributes.*"
"""The label of an attribute no rule names by its path, in ``redaction.fields``."""
MAX_KEYS = 512
"""Per plan: attribute keys whose decision is remembered."""

Transform = Callable[[str, Mapping[str, Any]], tuple[str | None, str]]
"""value, subjects -> (new value or None to delete, the action actually applied)."""


def split_path(path: str) -> tuple[tuple[str, ...], str]:
    """(parent keys, last key); an attribute key may itself contain dots."""
    if path.startswith(ATTR_PREFIX):
        return (ATTRIBUTES,), path[len(ATTR_PREFIX):]
    *parents, last = path.split(".")
    return tuple(parents), last


def lookup(event: Mapping[str, Any], path: str) -> Any:
    parents, last = split_path(path)
    node: Any = event
    for part in (*parents, last):
        node = node.get(part) if isinstance(node, dict) else None
    return node


@dataclass(frozen=True)
class Compiled:
    """A rule with its transform built, and its attribute-key matcher if any."""

    index: int
    rule: Rule
    transform: Transform | None  # None: keep
    key_regex: re.Pattern[str] | None
    detect: Callable[[str], str | None] | None


@dataclass(frozen=True)
class FieldStep:
    index: int  # of the rule, to report in rule order
    parents: tuple[str, ...]
    key: str
    label: str
    transform: Transform


@dataclass(frozen=True)
class Decision:
    """What happens to one attribute key under one plan."""

    label: str
    transform: Transform | None  # None: kept as sent (detectors still look at it)
    index: int  # of the rule deciding (after every rule when none does)


@dataclass(frozen=True)
class Detection:
    """The detectors looking at one field: (find-and-mask, whether the rule drops)."""

    label: str
    detectors: tuple[tuple[Callable[[str], str | None], bool], ...]
    nullable: bool


class Plan:
    """The rules for one event type, chosen once."""

    def __init__(self, fields: tuple[FieldStep, ...], exact: dict[str, Compiled],
                 patterns: tuple[Compiled, ...], unknown: Decision,
                 detect_fields: tuple[tuple[tuple[str, ...], str, Detection], ...],
                 detect_attributes: tuple[Compiled, ...], subjects: tuple[str, ...]) -> None:
        self.fields = fields
        self._exact = exact
        self._patterns = patterns
        self._unknown = unknown
        self.detect_fields = detect_fields
        self.detect_attributes = detect_attributes
        self.subjects = subjects
        self._decisions: dict[str, Decision] = {}

    def decide(self, key: str) -> Decision:
        """The decision for attribute ``key``: the first rule (document order) naming it
        by path, in any case, or finding it by key pattern; else unknown_attributes."""
        found = self._decisions.get(key)
        if found is not None:
            return found
        best = self._exact.get(key.casefold())
        for compiled in self._patterns:
            if best is not None and compiled.index > best.index:
                break
            assert compiled.key_regex is not None
            if compiled.key_regex.search(key):
                best = compiled
                break
        if best is None:
            decision = self._unknown
        else:
            named = best.rule.is_attribute
            decision = Decision(best.rule.path if named else UNNAMED_ATTRIBUTE,
                                 best.transform, best.index)
        if len(self._decisions) >= MAX_KEYS:
            self._decisions.clear()
        self._decisions[key] = decision
        return decision
