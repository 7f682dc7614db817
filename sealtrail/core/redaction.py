"""Redaction policies: which fields of an event are dropped, masked, truncated or
pseudonymised before it is sealed.

A policy is built from a parsed document (see docs/redaction.md) and validated
against the AuditEvent schema at construction, so a bad policy fails at start-up
with the rule and the reason, never in the middle of a stream.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sealtrail.errors import PolicyError

__all__ = ["ACTIONS", "Policy", "Rule"]

ACTIONS = ("keep", "drop", "mask", "truncate", "pseudonymize")
_ATTRIBUTES = "attributes"


@dataclass(frozen=True)
class Rule:
    """One rule: apply ``action`` to the string at ``path`` for the listed event types
    (all types when empty)."""

    path: str
    action: str
    event_types: frozenset[str] = frozenset()
    keep_first: int = 0
    keep_last: int = 0
    mask_char: str = "*"
    max_length: int = 0

    def applies_to(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


def _string_paths(schema: Mapping[str, Any], prefix: str = "") -> dict[str, bool]:
    """Every path to a string field in ``schema``, mapped to whether it is nullable."""
    out: dict[str, bool] = {}
    for field in schema["fields"]:
        path = prefix + field["name"]
        ftype = field["type"]
        nullable = isinstance(ftype, list) and "null" in ftype
        branches = [t for t in ftype if t != "null"] if isinstance(ftype, list) else [ftype]
        for branch in branches:
            if branch == "string":
                out[path] = nullable
            elif isinstance(branch, dict) and branch.get("type") == "record":
                out.update(_string_paths(branch, path + "."))
    return out


class Policy:
    """A validated redaction policy; call :meth:`apply` on each decoded event."""

    def __init__(
        self,
        policy_id: str,
        version: int,
        rules: list[Rule],
        *,
        event_schema: Mapping[str, Any],
        hmac_key: bytes | None = None,
        hmac_key_id: str = "k1",
        unknown_attributes: str = "keep",
    ) -> None:
        if not policy_id:
            raise PolicyError("policy: 'id' must be a non-empty string")
        if version < 1:
            raise PolicyError("policy: 'version' must be an integer >= 1")
        if unknown_attributes not in ("keep", "drop"):
            raise PolicyError("policy: 'unknown_attributes' must be keep or drop")
        paths = _string_paths(event_schema)
        for i, rule in enumerate(rules):
            where = f"policy rule {i + 1} ({rule.path})"
            if rule.action not in ACTIONS:
                raise PolicyError(f"{where}: unknown action {rule.action!r}; use one of {ACTIONS}")
            is_attr = rule.path.startswith(_ATTRIBUTES + ".") and len(rule.path) > 11
            if not is_attr and rule.path not in paths:
                raise PolicyError(
                    f"{where}: no string field at this path; redactable paths are "
                    f"{sorted(paths)} and attributes.<key>"
                )
            if rule.action == "drop" and not is_attr and not paths[rule.path]:
                raise PolicyError(
                    f"{where}: the field is required by the schema and cannot be dropped; "
                    "use mask or pseudonymize"
                )
            if rule.action == "pseudonymize" and not hmac_key:
                raise PolicyError(f"{where}: pseudonymize needs an HMAC key (keys.hmac_key_file)")
            if rule.action == "truncate" and rule.max_length < 1:
                raise PolicyError(f"{where}: truncate needs max_length >= 1")
            if rule.action == "mask" and (rule.keep_first < 0 or rule.keep_last < 0):
                raise PolicyError(f"{where}: keep_first and keep_last must be >= 0")
        self.policy_id = policy_id
        self.version = version
        self.rules = tuple(rules)
        self.unknown_attributes = unknown_attributes
        self._hmac_key = hmac_key
        self._hmac_key_id = hmac_key_id
        self._named_attributes = frozenset(
            r.path[len(_ATTRIBUTES) + 1 :] for r in rules if r.path.startswith(_ATTRIBUTES + ".")
        )

    @classmethod
    def from_document(
        cls,
        doc: Any,
        *,
        event_schema: Mapping[str, Any],
        hmac_key: bytes | None = None,
        hmac_key_id: str = "k1",
    ) -> Policy:
        """Build from a parsed YAML/JSON document; raises PolicyError naming the problem."""
        if not isinstance(doc, dict):
            raise PolicyError("policy: the document must be a mapping with id, version, rules")
        unknown = set(doc) - {"id", "version", "rules", "unknown_attributes"}
        if unknown:
            raise PolicyError(f"policy: unknown keys {sorted(unknown)}")
        raw_rules = doc.get("rules") or []
        if not isinstance(raw_rules, list | tuple):
            raise PolicyError("policy: 'rules' must be a list of rules")
        rules = []
        for i, raw in enumerate(raw_rules):
            if not isinstance(raw, dict) or "path" not in raw or "action" not in raw:
                raise PolicyError(f"policy rule {i + 1}: needs 'path' and 'action'")
            where = f"policy rule {i + 1} ({raw['path']})"
            extra = set(raw) - {"path", "action", "event_types", "keep_first", "keep_last",
                                "mask_char", "max_length"}
            if extra:
                raise PolicyError(f"{where}: unknown keys {sorted(extra)}")
            event_types = raw.get("event_types") or []
            # A bare string would otherwise become a set of its characters, and the rule
            # would silently apply to no event at all.
            if not isinstance(event_types, list | tuple | set | frozenset) or not all(
                isinstance(t, str) for t in event_types
            ):
                raise PolicyError(f"{where}: 'event_types' must be a list of event types")
            try:
                rules.append(
                    Rule(
                        path=str(raw["path"]),
                        action=str(raw["action"]),
                        event_types=frozenset(event_types),
                        keep_first=int(raw.get("keep_first", 0)),
                        keep_last=int(raw.get("keep_last", 0)),
                        mask_char=str(raw.get("mask_char", "*"))[:1] or "*",
                        max_length=int(raw.get("max_length", 0)),
                    )
                )
            except (TypeError, ValueError) as exc:
                raise PolicyError(f"{where}: {exc}") from None
        try:
            version = int(doc.get("version", 0))
        except (TypeError, ValueError):
            raise PolicyError("policy: 'version' must be an integer >= 1") from None
        return cls(
            str(doc.get("id") or ""),
            version,
            rules,
            event_schema=event_schema,
            hmac_key=hmac_key,
            hmac_key_id=hmac_key_id,
            unknown_attributes=str(doc.get("unknown_attributes", "keep")),
        )

    def _transform(self, rule: Rule, value: str) -> str | None:
        if rule.action == "drop":
            return None
        if rule.action == "mask":
            n = len(value)
            head = min(rule.keep_first, n)
            tail = min(rule.keep_last, n - head)
            return value[:head] + rule.mask_char * (n - head - tail) + value[n - tail :]
        if rule.action == "truncate":
            return value[: rule.max_length]
        assert self._hmac_key is not None  # checked at construction
        digest = hmac.new(self._hmac_key, value.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"hmac:{self._hmac_key_id}:{digest[:32]}"

    def apply(self, event: dict[str, Any]) -> list[str]:
        """Redact ``event`` in place; returns the transformed paths as ``path=action``."""
        changed: list[str] = []
        event_type = event["event_type"]
        attributes: dict[str, str] = event.get(_ATTRIBUTES) or {}
        for rule in self.rules:
            if rule.action == "keep" or not rule.applies_to(event_type):
                continue
            parent: Any = event
            *head, last = rule.path.split(".", 1 if rule.path.startswith(_ATTRIBUTES) else -1)
            for part in head:
                parent = parent.get(part) if isinstance(parent, dict) else None
            if not isinstance(parent, dict) or parent.get(last) is None:
                continue
            new = self._transform(rule, parent[last])
            if new is None and parent is attributes:
                del attributes[last]
            else:
                parent[last] = new
            changed.append(f"{rule.path}={rule.action}")
        if self.unknown_attributes == "drop":
            for key in [k for k in attributes if k not in self._named_attributes]:
                del attributes[key]
                changed.append(f"attributes.{key}=drop")
        return changed

