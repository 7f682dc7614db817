"""Redaction policies: which fields of an event are kept, dropped, masked, truncated,
pseudonymised or encrypted before it is sealed.

A policy is built from a parsed document (see docs/redaction.md) and validated
against the AuditEvent schema at construction, so a bad policy fails at start-up
with the rule and the reason, never in the middle of a stream.

The core does no I/O: keyed operations are done by objects passed in
(:class:`Pseudonymizer` for HMAC pseudonyms, :class:`FieldEncryptor` for the
encrypt action, whose keys live in a key store), and redaction counts are handed to
an ``observer`` callable the shell provides (e.g. to count Prometheus metrics).

Per event type, the policy compiles once a plan: for each field path the *first*
rule (in document order) that names the path and applies to the event type; later
rules for that path are ignored for that event type. So a rule limited to some event
types placed before a general rule is an exception to it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Protocol

from sealtrail.errors import PolicyError

__all__ = [
    "ACTIONS",
    "ENC_PREFIX",
    "FieldEncryptor",
    "HmacPseudonymizer",
    "Policy",
    "Pseudonymizer",
    "Rule",
    "count_actions",
]

ACTIONS = ("keep", "drop", "mask", "truncate", "pseudonymize", "encrypt")
SHORT_MODES = ("mask_all", "mask_half")
ENC_PREFIX = "enc:v1:"
"""Prefix of a field value the encrypt action produced: ``enc:v1:<key id>:<base64>``."""
DEFAULT_SUBJECT = "actor.id"
_ATTRIBUTES = "attributes"
_ATTR_PREFIX = _ATTRIBUTES + "."
# Fields the sealer itself needs as sent: event_id (deduplication, also after recovery
# from the chain) and event_type (it selects the rules).
_PROTECTED = frozenset({"event_id", "event_type"})
_MAX_PLANS = 4096
_RULE_KEYS = {
    "keep": set(),
    "drop": set(),
    "mask": {"keep_first", "keep_last", "mask_char", "pattern", "short"},
    "truncate": {"max_length"},
    "pseudonymize": set(),
    "encrypt": {"subject"},
}
_COMMON_KEYS = {"path", "action", "event_types"}


class Pseudonymizer(Protocol):
    """A keyed pseudonym function; ``pseudonym`` names the key it used in its output."""

    def pseudonym(self, value: str) -> str:
        """A stable pseudonym of ``value`` (equal values, equal pseudonyms, per key)."""
        ...


class FieldEncryptor(Protocol):
    """Encrypts a field value under the data key of a data subject (crypto-shredding)."""

    def encrypt(self, subject: str, value: str, *, path: str) -> str:
        """``enc:v1:<key id>:<base64 nonce+ciphertext>``; ``path`` is authenticated."""
        ...


class HmacPseudonymizer:
    """``hmac:<key id>:<first 128 bits of HMAC-SHA-256(key, UTF-8(value)) in hex>``."""

    __slots__ = ("_key", "key_id")

    def __init__(self, key: bytes, key_id: str) -> None:
        if not key:
            raise PolicyError("an HMAC pseudonymisation key must not be empty")
        self._key = key
        self.key_id = key_id

    def pseudonym(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"hmac:{self.key_id}:{digest[:32]}"

    def __repr__(self) -> str:
        return f"HmacPseudonymizer(key_id={self.key_id!r})"


@dataclass(frozen=True)
class Rule:
    """One rule: apply ``action`` to the string at ``path`` for the listed event types
    (all types when empty; ``*`` and ``?`` are wildcards, e.g. ``auth.*``)."""

    path: str
    action: str
    event_types: frozenset[str] = frozenset()
    keep_first: int = 0
    keep_last: int = 0
    mask_char: str = "*"
    max_length: int = 0
    pattern: str | None = None
    """mask: mask every match of this regular expression instead of the middle."""
    short: str = "mask_all"
    """mask: what to do when keep_first + keep_last would reveal the whole value."""
    subject: str | None = None
    """encrypt: the field path holding the data subject (default: the policy's)."""

    def applies_to(self, event_type: str) -> bool:
        if not self.event_types:
            return True
        if event_type in self.event_types:
            return True
        return any(("*" in t or "?" in t) and fnmatchcase(event_type, t)
                   for t in self.event_types)

    @property
    def is_attribute(self) -> bool:
        return self.path.startswith(_ATTR_PREFIX) and len(self.path) > len(_ATTR_PREFIX)

    def describe(self) -> str:
        """The rule's options in words, for ``sealtrail policy check``."""
        if self.action == "mask":
            if self.pattern is not None:
                return f"mask matches of /{self.pattern}/ with {self.mask_char!r}"
            return (f"mask with {self.mask_char!r}, keep first {self.keep_first} and last "
                    f"{self.keep_last}; short values: {self.short}")
        if self.action == "truncate":
            return f"keep the first {self.max_length} characters"
        if self.action == "encrypt":
            return f"encrypt under the data key of the subject at {self.subject}"
        if self.action == "pseudonymize":
            return "keyed pseudonym hmac:<key id>:<32 hex>"
        if self.action == "drop":
            return "remove the value"
        return "keep as sent (and name the attribute, so unknown_attributes keeps it)"


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


def count_actions(fields: Sequence[str]) -> dict[str, int]:
    """How many ``path=action`` entries of ``fields`` name each action."""
    counts: dict[str, int] = {}
    for entry in fields:
        action = entry.rpartition("=")[2]
        counts[action] = counts.get(action, 0) + 1
    return counts


def _split(path: str) -> tuple[tuple[str, ...], str]:
    """(parent keys, last key); an attribute key may itself contain dots."""
    if path.startswith(_ATTR_PREFIX):
        return (_ATTRIBUTES,), path[len(_ATTR_PREFIX):]
    *parents, last = path.split(".")
    return tuple(parents), last


def _lookup(event: Mapping[str, Any], path: str) -> Any:
    parents, last = _split(path)
    node: Any = event
    for part in (*parents, last):
        node = node.get(part) if isinstance(node, dict) else None
    return node


@dataclass(frozen=True)
class _Step:
    parents: tuple[str, ...]
    key: str
    label: str
    transform: Callable[[str, Mapping[str, Any]], tuple[str | None, str]]
    is_attribute: bool


@dataclass(frozen=True)
class _Plan:
    steps: tuple[_Step, ...]
    named_attributes: frozenset[str]
    subjects: tuple[str, ...]


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
        subject_field: str = DEFAULT_SUBJECT,
        pseudonymizer: Pseudonymizer | None = None,
        encryptor: FieldEncryptor | None = None,
        observer: Callable[[str, Sequence[str]], None] | None = None,
    ) -> None:
        if not policy_id:
            raise PolicyError("policy: 'id' must be a non-empty string")
        if version < 1:
            raise PolicyError("policy: 'version' must be an integer >= 1")
        if unknown_attributes not in ("keep", "drop"):
            raise PolicyError("policy: 'unknown_attributes' must be keep or drop")
        if pseudonymizer is None and hmac_key:
            pseudonymizer = HmacPseudonymizer(hmac_key, hmac_key_id)
        paths = _string_paths(event_schema)
        if subject_field not in paths and not subject_field.startswith(_ATTR_PREFIX):
            raise PolicyError(
                f"policy: 'subject_field' {subject_field!r} is not a string field; use one of "
                f"{sorted(paths)} or attributes.<key>"
            )
        checked: list[Rule] = []
        for i, rule in enumerate(rules):
            where = f"policy rule {i + 1} ({rule.path})"
            self._check_rule(where, rule, paths, pseudonymizer, encryptor)
            if rule.action == "encrypt" and rule.subject is None:
                rule = dataclasses.replace(rule, subject=subject_field)
            for j, earlier in enumerate(checked):
                if earlier.path == rule.path and not earlier.event_types:
                    raise PolicyError(
                        f"{where}: never applies: rule {j + 1} already covers this path for "
                        "all event types (the first matching rule per path wins; put "
                        "rules limited to event types first)"
                    )
            checked.append(rule)
        self.policy_id = policy_id
        self.version = version
        self.rules = tuple(checked)
        self.unknown_attributes = unknown_attributes
        self.subject_field = subject_field
        self._pseudonymizer = pseudonymizer
        self._encryptor = encryptor
        self._observer = observer
        self._paths = dict(paths)
        self._plans: dict[str, _Plan] = {}

    @staticmethod
    def _check_rule(where: str, rule: Rule, paths: Mapping[str, bool],
                    pseudonymizer: Pseudonymizer | None,
                    encryptor: FieldEncryptor | None) -> None:
        if rule.action not in ACTIONS:
            raise PolicyError(f"{where}: unknown action {rule.action!r}; use one of {ACTIONS}")
        if not rule.is_attribute and rule.path not in paths:
            raise PolicyError(
                f"{where}: no string field at this path; redactable paths are "
                f"{sorted(paths)} and attributes.<key>"
            )
        if rule.action == "drop" and not rule.is_attribute and not paths[rule.path]:
            raise PolicyError(
                f"{where}: the field is required by the schema and cannot be dropped; "
                "use mask or pseudonymize"
            )
        if rule.action != "keep" and rule.path in _PROTECTED:
            raise PolicyError(f"{where}: {rule.path} is needed by the sealer as sent "
                              "(deduplication, rule selection); only keep is allowed")
        if any(not t for t in rule.event_types):
            raise PolicyError(f"{where}: 'event_types' holds an empty event type")
        if rule.action == "pseudonymize" and pseudonymizer is None:
            raise PolicyError(f"{where}: pseudonymize needs an HMAC key (keys.hmac_key_file)")
        if rule.action == "encrypt":
            if encryptor is None:
                raise PolicyError(f"{where}: encrypt needs a key store for subject data keys")
            subject = rule.subject
            if subject is not None and subject not in paths and not subject.startswith(
                    _ATTR_PREFIX):
                raise PolicyError(f"{where}: 'subject' {subject!r} is not a string field path")
        if rule.action == "truncate" and rule.max_length < 1:
            raise PolicyError(f"{where}: truncate needs max_length >= 1")
        if rule.action == "mask":
            if rule.keep_first < 0 or rule.keep_last < 0:
                raise PolicyError(f"{where}: keep_first and keep_last must be >= 0")
            if rule.short not in SHORT_MODES:
                raise PolicyError(f"{where}: 'short' must be one of {SHORT_MODES}")
            if len(rule.mask_char) != 1:
                raise PolicyError(f"{where}: 'mask_char' must be one character")
            if rule.pattern is not None:
                if rule.keep_first or rule.keep_last:
                    raise PolicyError(f"{where}: use either 'pattern' or keep_first/keep_last")
                try:
                    re.compile(rule.pattern)
                except re.error as exc:
                    raise PolicyError(f"{where}: 'pattern' is not a valid regular expression: "
                                      f"{exc}") from None

    @classmethod
    def from_document(
        cls,
        doc: Any,
        *,
        event_schema: Mapping[str, Any],
        hmac_key: bytes | None = None,
        hmac_key_id: str = "k1",
        pseudonymizer: Pseudonymizer | None = None,
        encryptor: FieldEncryptor | None = None,
        observer: Callable[[str, Sequence[str]], None] | None = None,
    ) -> Policy:
        """Build from a parsed YAML/JSON document; raises PolicyError naming the problem."""
        if not isinstance(doc, dict):
            raise PolicyError("policy: the document must be a mapping with id, version, rules")
        unknown = set(doc) - {"id", "version", "rules", "unknown_attributes", "subject_field"}
        if unknown:
            raise PolicyError(f"policy: unknown keys {sorted(unknown)}")
        raw_rules = doc.get("rules") or []
        if not isinstance(raw_rules, list | tuple):
            raise PolicyError("policy: 'rules' must be a list of rules")
        rules = [_rule_from(i, raw) for i, raw in enumerate(raw_rules)]
        try:
            version = int(doc.get("version", 0))
        except (TypeError, ValueError):
            raise PolicyError("policy: 'version' must be an integer >= 1") from None
        subject_field = doc.get("subject_field", DEFAULT_SUBJECT)
        if not isinstance(subject_field, str):
            raise PolicyError("policy: 'subject_field' must be a field path such as actor.id")
        return cls(
            str(doc.get("id") or ""),
            version,
            rules,
            event_schema=event_schema,
            hmac_key=hmac_key,
            hmac_key_id=hmac_key_id,
            unknown_attributes=str(doc.get("unknown_attributes", "keep")),
            subject_field=subject_field,
            pseudonymizer=pseudonymizer,
            encryptor=encryptor,
            observer=observer,
        )

    # -- transforms ------------------------------------------------------------------

    @staticmethod
    def _mask(rule: Rule) -> Callable[[str], str]:
        char = rule.mask_char
        if rule.pattern is not None:
            regex = re.compile(rule.pattern)

            def by_pattern(value: str) -> str:
                hits = 0

                def hide(m: re.Match[str]) -> str:
                    nonlocal hits
                    hits += len(m.group())
                    return char * len(m.group())

                out = regex.sub(hide, value)
                # Nothing matched: the rule still covers the value, so mask all of it.
                return out if hits else char * len(value)

            return by_pattern
        first, last, half = rule.keep_first, rule.keep_last, rule.short == "mask_half"

        def by_position(value: str) -> str:
            n = len(value)
            head = min(first, n)
            tail = min(last, n - head)
            if head + tail >= n:  # the kept parts would be the whole value
                if not half:
                    return char * n
                allowed = n - (n + 1) // 2  # mask at least half, rounded up
                tail = min(last, allowed // 2)  # share what may be kept between the ends
                head = min(first, allowed - tail)
                tail = min(last, allowed - head)
            return value[:head] + char * (n - head - tail) + value[n - tail:]

        return by_position

    def _transform_for(self, rule: Rule, nullable: bool
                       ) -> Callable[[str, Mapping[str, Any]], tuple[str | None, str]]:
        """value, subjects -> (new value or None to delete, action actually applied)."""
        action = rule.action
        if action == "drop":
            return lambda v, s: (None, "drop")
        if action == "mask":
            mask = self._mask(rule)
            return lambda v, s: (mask(v), "mask")
        if action == "truncate":
            n = rule.max_length
            return lambda v, s: (v[:n], "truncate")
        if action == "pseudonymize":
            assert self._pseudonymizer is not None  # checked at construction
            pseudonym = self._pseudonymizer.pseudonym
            return lambda v, s: (pseudonym(v), "pseudonymize")
        assert self._encryptor is not None and rule.subject is not None
        encrypt, subject_path, path = self._encryptor.encrypt, rule.subject, rule.path
        mask_all = self._mask(Rule(path, "mask"))

        def encrypt_step(value: str, subjects: Mapping[str, Any]) -> tuple[str | None, str]:
            subject = subjects.get(subject_path)
            if not isinstance(subject, str) or not subject:
                # No subject to key the value to: it could never be erased on request, so
                # fail closed and keep nothing of it.
                return (None, "drop") if nullable else (mask_all(value), "mask")
            return encrypt(subject, value, path=path), "encrypt"

        return encrypt_step

    def _plan(self, event_type: str) -> _Plan:
        plan = self._plans.get(event_type)
        if plan is not None:
            return plan
        schema_paths = self._paths
        seen: set[str] = set()
        steps: list[_Step] = []
        named: set[str] = set()
        subjects: set[str] = set()
        for rule in self.rules:
            if rule.path in seen or not rule.applies_to(event_type):
                continue
            seen.add(rule.path)
            if rule.is_attribute:
                named.add(rule.path[len(_ATTR_PREFIX):])
            if rule.action == "keep":
                continue
            if rule.subject is not None:
                subjects.add(rule.subject)
            parents, key = _split(rule.path)
            nullable = rule.is_attribute or schema_paths.get(rule.path, False)
            steps.append(_Step(parents, key, rule.path,
                               self._transform_for(rule, nullable), rule.is_attribute))
        plan = _Plan(tuple(steps), frozenset(named), tuple(sorted(subjects)))
        if len(self._plans) >= _MAX_PLANS:
            self._plans.clear()
        self._plans[event_type] = plan
        return plan

    def apply(self, event: dict[str, Any]) -> list[str]:
        """Redact ``event`` in place; returns the transformed paths as ``path=action``
        (the action actually applied), in rule order, then dropped unnamed attributes."""
        event_type = event["event_type"]
        plan = self._plan(event_type)
        subjects = {p: _lookup(event, p) for p in plan.subjects} if plan.subjects else {}
        changed: list[str] = []
        attributes: dict[str, str] = event.get(_ATTRIBUTES) or {}
        for step in plan.steps:
            parent: Any = event
            for part in step.parents:
                parent = parent.get(part) if isinstance(parent, dict) else None
            if not isinstance(parent, dict):
                continue
            value = parent.get(step.key)
            if value is None:
                continue
            new, done = step.transform(value, subjects)
            if new is None and step.is_attribute:
                del parent[step.key]
            else:
                parent[step.key] = new
            changed.append(f"{step.label}={done}")
        if self.unknown_attributes == "drop" and attributes:
            named = plan.named_attributes
            for key in [k for k in attributes if k not in named]:
                del attributes[key]
                changed.append(f"attributes.{key}=drop")
        if self._observer is not None and changed:
            self._observer(event_type, changed)
        return changed


def _rule_from(i: int, raw: Any) -> Rule:
    if not isinstance(raw, dict) or "path" not in raw or "action" not in raw:
        raise PolicyError(f"policy rule {i + 1}: needs 'path' and 'action'")
    where = f"policy rule {i + 1} ({raw['path']})"
    action = str(raw["action"])
    allowed = _COMMON_KEYS | _RULE_KEYS.get(action, set().union(*_RULE_KEYS.values()))
    extra = set(raw) - allowed
    if extra:
        known = set().union(_COMMON_KEYS, *_RULE_KEYS.values())
        if extra <= known:
            raise PolicyError(f"{where}: {sorted(extra)} do not apply to action {action!r}")
        raise PolicyError(f"{where}: unknown keys {sorted(extra)}")
    event_types = raw.get("event_types") or []
    # A bare string would otherwise become a set of its characters, and the rule
    # would silently apply to no event at all.
    if not isinstance(event_types, list | tuple | set | frozenset) or not all(
        isinstance(t, str) for t in event_types
    ):
        raise PolicyError(f"{where}: 'event_types' must be a list of event types")
    for name in ("pattern", "subject", "short", "mask_char"):
        if name in raw and not isinstance(raw[name], str):
            raise PolicyError(f"{where}: {name!r} must be a string")
    try:
        return Rule(
            path=str(raw["path"]),
            action=action,
            event_types=frozenset(event_types),
            keep_first=int(raw.get("keep_first", 0)),
            keep_last=int(raw.get("keep_last", 0)),
            mask_char=str(raw.get("mask_char", "*"))[:1] or "*",
            max_length=int(raw.get("max_length", 0)),
            pattern=raw.get("pattern"),
            short=str(raw.get("short", "mask_all")),
            subject=raw.get("subject"),
        )
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"{where}: {exc}") from None
