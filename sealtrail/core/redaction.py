"""Redaction policies: which fields of an event are kept, dropped, masked, truncated,
pseudonymised, encrypted or reduced to a network prefix before it is sealed.

A policy is built from a parsed document (see docs/redaction.md) and validated against
the AuditEvent schema at construction, so a bad policy fails at start-up with the rule
and the reason, never in the middle of a stream. Construction also compiles it: every
regular expression, detector and transform is built once, and the policy is a callable
(``policy(event)``) doing per record only lookups and the transforms themselves.

Per event type, the applicable rules are chosen once (on the first event of the type)
into a plan: for each field path the *first* rule in document order that names it;
for each attribute key the first rule whose path names it (in any case) or whose
``key_pattern`` finds it; detectors for values no rule changed. So a rule limited to
some event types, placed before a general rule, is an exception to it.

What the policy removes is never described by value in ``redaction.fields``: an
attribute no rule names by its path, dropped or transformed, is recorded as
``attributes.*=<action>`` (one entry per attribute: a count, never the key, which may
itself be personal data).

The core does no I/O: keyed operations are done by objects passed in
(:class:`Pseudonymizer` for HMAC pseudonyms, :class:`FieldEncryptor` for the encrypt
action, whose keys live in a key store), and redaction counts are handed to an
``observer`` callable the shell provides (e.g. to count Prometheus metrics).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from sealtrail.core._redaction_actions import (
    DETECTORS,
    mask_by_pattern,
    mask_by_position,
    mask_ip,
    mask_spans,
)
from sealtrail.core._redaction_plan import (
    UNNAMED_ATTRIBUTE,
    Compiled,
    Decision,
    Detection,
    FieldStep,
    Plan,
    Transform,
    lookup,
    split_path,
)
from sealtrail.core._redaction_rules import (
    ACTIONS,
    ATTR_PREFIX,
    ATTRIBUTES,
    DEFAULT_DETECT_PATHS,
    Rule,
    check_reachable,
    check_rule,
    rule_from,
    string_paths,
)
from sealtrail.errors import PolicyError

__all__ = [
    "ACTIONS",
    "ENC_PREFIX",
    "UNNAMED_ATTRIBUTE",
    "FieldEncryptor",
    "HmacPseudonymizer",
    "Policy",
    "Pseudonymizer",
    "Rule",
    "count_actions",
]

ENC_PREFIX = "enc:v1:"
"""Prefix of a field value the encrypt action produced: ``enc:v1:<key id>:<base64>``."""
DEFAULT_SUBJECT = "actor.id"
_MAX_PLANS = 1024
_MAX_PSEUDONYMS = 4096
_DOC_KEYS = {"id", "version", "rules", "unknown_attributes", "subject_field"}



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
    """``hmac:<key id>:<first 128 bits of HMAC-SHA-256(key, UTF-8(value)) in hex>``.

    The keyed state is computed once (each value only copies it), and the pseudonyms of
    recent values are remembered (the same actors and addresses recur)."""

    __slots__ = ("_base", "_recent", "key_id")

    def __init__(self, key: bytes, key_id: str) -> None:
        if not key:
            raise PolicyError("an HMAC pseudonymisation key must not be empty")
        self._base = hmac.new(key, digestmod=hashlib.sha256)
        self._recent: dict[str, str] = {}
        self.key_id = key_id

    def pseudonym(self, value: str) -> str:
        found = self._recent.get(value)
        if found is not None:
            return found
        mac = self._base.copy()
        mac.update(value.encode("utf-8"))
        found = f"hmac:{self.key_id}:{mac.hexdigest()[:32]}"
        if len(self._recent) >= _MAX_PSEUDONYMS:
            self._recent.clear()
        self._recent[value] = found
        return found

    def __repr__(self) -> str:
        return f"HmacPseudonymizer(key_id={self.key_id!r})"


def count_actions(fields: Sequence[str]) -> dict[str, int]:
    """How many ``path=action`` entries of ``fields`` name each action."""
    counts: dict[str, int] = {}
    for entry in fields:
        action = entry.rpartition("=")[2]
        counts[action] = counts.get(action, 0) + 1
    return counts


class Policy:
    """A validated, compiled redaction policy: call it on each decoded event."""

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
        paths = string_paths(event_schema)
        if subject_field not in paths and not subject_field.startswith(ATTR_PREFIX):
            raise PolicyError(
                f"policy: 'subject_field' {subject_field!r} is not a string field; use one of "
                f"{sorted(paths)} or attributes.<key>"
            )
        self._pseudonymizer = pseudonymizer
        self._encryptor = encryptor
        self._paths = dict(paths)
        checked: list[Rule] = []
        for i, rule in enumerate(rules):
            where = f"policy rule {i + 1} ({rule.selector})"
            check_rule(where, rule, paths, can_pseudonymize=pseudonymizer is not None,
                       can_encrypt=encryptor is not None)
            if rule.action == "encrypt" and rule.subject is None:
                rule = dataclasses.replace(rule, subject=subject_field)
            check_reachable(where, rule, checked)
            checked.append(rule)
        self.policy_id = policy_id
        self.version = version
        self.rules = tuple(checked)
        self.unknown_attributes = unknown_attributes
        self.subject_field = subject_field
        self._observer = observer
        self._compiled = tuple(self._compile(i, r) for i, r in enumerate(self.rules))
        self._drop = self._transform_for(Rule("attributes.*", "drop"), nullable=True)
        self._plans: dict[str, Plan] = {}

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
        unknown = set(doc) - _DOC_KEYS
        if unknown:
            raise PolicyError(f"policy: unknown keys {sorted(unknown)}")
        raw_rules = doc.get("rules") or []
        if not isinstance(raw_rules, list | tuple):
            raise PolicyError("policy: 'rules' must be a list of rules")
        rules = [rule_from(i, raw) for i, raw in enumerate(raw_rules)]
        try:
            version = int(doc.get("version", 0))
        except (TypeError, ValueError):
            raise PolicyError("policy: 'version' must be an integer >= 1") from None
        subject_field = doc.get("subject_field", DEFAULT_SUBJECT)
        if not isinstance(subject_field, str):
            raise PolicyError("policy: 'subject_field' must be a field path such as actor.id")
        return cls(
            str(doc.get("id") or ""), version, rules, event_schema=event_schema,
            hmac_key=hmac_key, hmac_key_id=hmac_key_id,
            unknown_attributes=str(doc.get("unknown_attributes", "keep")),
            subject_field=subject_field, pseudonymizer=pseudonymizer, encryptor=encryptor,
            observer=observer,
        )

    # -- compiling -------------------------------------------------------------------

    def _compile(self, index: int, rule: Rule) -> Compiled:
        regex = re.compile(rule.key_pattern, re.IGNORECASE) if rule.key_pattern else None
        if rule.detect is not None:
            detector = DETECTORS[rule.detect]
            masker = mask_spans(detector, rule.mask_char, rule.keep_last)
            return Compiled(index, rule, None, None, masker)
        transform = None
        if rule.action != "keep":
            nullable = (rule.is_attribute or rule.key_pattern is not None
                        or self._paths.get(rule.path, False))
            transform = self._transform_for(rule, nullable)
        return Compiled(index, rule, transform, regex, None)

    def _transform_for(self, rule: Rule, nullable: bool) -> Transform:
        action = rule.action
        mask_all = mask_by_position(0, 0, rule.mask_char, False)
        if action == "drop":
            return lambda v, s: (None, "drop")
        if action == "mask":
            mask = (mask_by_pattern(rule.pattern, rule.mask_char) if rule.pattern is not None
                    else mask_by_position(rule.keep_first, rule.keep_last, rule.mask_char,
                                          rule.short == "mask_half"))
            return lambda v, s: (mask(v), "mask")
        if action == "truncate":
            n = rule.max_length
            return lambda v, s: (v[:n], "truncate")
        if action == "pseudonymize":
            assert self._pseudonymizer is not None  # checked at construction
            pseudonym = self._pseudonymizer.pseudonym
            return lambda v, s: (pseudonym(v), "pseudonymize")
        if action == "mask_ip":
            network = mask_ip(rule.ipv4_prefix, rule.ipv6_prefix)
            # Not an address: nothing of it is kept (drop where the schema allows).
            fallback = (None, "drop") if nullable and rule.not_ip == "drop" else None

            def mask_ip_step(value: str, subjects: Mapping[str, Any]) -> tuple[str | None, str]:
                net = network(value)
                if net is not None:
                    return net, "mask_ip"
                return fallback or (mask_all(value), "mask")

            return mask_ip_step
        assert self._encryptor is not None and rule.subject is not None
        encrypt, subject_path, path = self._encryptor.encrypt, rule.subject, rule.path

        def encrypt_step(value: str, subjects: Mapping[str, Any]) -> tuple[str | None, str]:
            subject = subjects.get(subject_path)
            if not isinstance(subject, str) or not subject:
                # No subject to key the value to: it could never be erased on request, so
                # fail closed and keep nothing of it.
                return (None, "drop") if nullable else (mask_all(value), "mask")
            return encrypt(subject, value, path=path), "encrypt"

        return encrypt_step

    def _plan(self, event_type: str) -> Plan:
        seen: set[str] = set()
        steps: list[FieldStep] = []
        exact: dict[str, Compiled] = {}
        patterns: list[Compiled] = []
        detectors: list[Compiled] = []
        subjects: set[str] = set()
        for compiled in self._compiled:
            rule = compiled.rule
            if not rule.applies_to(event_type):
                continue
            if rule.subject is not None:
                subjects.add(rule.subject)
            if rule.detect is not None:
                detectors.append(compiled)
            elif rule.key_pattern is not None:
                patterns.append(compiled)
            elif rule.is_attribute:
                exact.setdefault(rule.attribute_key, compiled)
            elif rule.path not in seen:
                seen.add(rule.path)
                if compiled.transform is not None:
                    parents, key = split_path(rule.path)
                    steps.append(FieldStep(compiled.index, parents, key, rule.path,
                                            compiled.transform))
        unknown = Decision(UNNAMED_ATTRIBUTE,
                            self._drop if self.unknown_attributes == "drop" else None,
                            len(self._compiled))
        detect_fields = self._detect_fields(detectors, seen)
        detect_attributes = tuple(c for c in detectors
                                  if "attributes.*" in (c.rule.paths or DEFAULT_DETECT_PATHS))
        plan = Plan(tuple(steps), exact, tuple(patterns), unknown, detect_fields,
                     detect_attributes, tuple(sorted(subjects)))
        if len(self._plans) >= _MAX_PLANS:
            self._plans.clear()
        self._plans[event_type] = plan
        return plan

    def _detect_fields(self, detectors: list[Compiled], transformed: set[str]
                       ) -> tuple[tuple[tuple[str, ...], str, Detection], ...]:
        """Per field path (not attributes) that no rule for this event type changed: the
        detectors looking at it."""
        by_path: dict[str, list[Compiled]] = {}
        for compiled in detectors:
            for path in compiled.rule.paths or DEFAULT_DETECT_PATHS:
                if path != "attributes.*" and path not in transformed:
                    by_path.setdefault(path, []).append(compiled)
        out = []
        for path, found in by_path.items():
            pairs = tuple((c.detect, c.rule.action == "drop") for c in found
                          if c.detect is not None)
            out.append((*split_path(path), Detection(path, pairs, self._paths[path])))
        return tuple(out)

    # -- applying ----------------------------------------------------------------------

    def __call__(self, event: dict[str, Any]) -> list[str]:
        """Redact ``event`` in place; returns what changed as ``path=action`` entries (the
        action actually applied) in the order of the rules that did it (attributes one
        rule selected in the event's order; a detector's findings in attributes at its
        rule's place), then attributes no rule selects, then detectors' findings in
        fields."""
        event_type = event["event_type"]
        plan = self._plans.get(event_type) or self._plan(event_type)
        subjects = {p: lookup(event, p) for p in plan.subjects} if plan.subjects else {}
        changed: list[tuple[int, str]] = []
        for step in plan.fields:
            parent: Any = event
            for part in step.parents:
                parent = parent.get(part) if isinstance(parent, dict) else None
            if not isinstance(parent, dict):
                continue
            value = parent.get(step.key)
            if value is None:
                continue
            parent[step.key], done = step.transform(value, subjects)
            changed.append((step.index, f"{step.label}={done}"))
        attributes = event.get(ATTRIBUTES)
        if attributes:
            self._attributes(plan, attributes, subjects, changed)
        found: list[str] = []
        for parents, key, detection in plan.detect_fields:
            self._detect_field(event, parents, key, detection, found)
        fields = [entry for _, entry in changed] + found
        if self._observer is not None and fields:
            self._observer(event_type, fields)
        return fields

    apply = __call__

    @staticmethod
    def _attributes(plan: Plan, attributes: dict[str, str], subjects: Mapping[str, Any],
                    changed: list[tuple[int, str]]) -> None:
        """Apply each attribute's decision; its entries join ``changed`` in rule order."""
        decide, detectors = plan.decide, plan.detect_attributes
        mine: list[tuple[int, str]] = []
        for key in list(attributes):
            decision = decide(key)
            if decision.transform is not None:
                new, done = decision.transform(attributes[key], subjects)
                if new is None:
                    del attributes[key]
                else:
                    attributes[key] = new
                mine.append((decision.index, f"{decision.label}={done}"))
                continue
            for compiled in detectors:
                assert compiled.detect is not None
                found = compiled.detect(attributes[key])
                if found is None:
                    continue
                if compiled.rule.action == "drop":
                    del attributes[key]
                    mine.append((compiled.index, f"{decision.label}=drop"))
                    break
                attributes[key] = found
                mine.append((compiled.index, f"{decision.label}=mask"))
        if mine:
            changed.extend(mine)
            if len(changed) > 1:  # by rule; the sort is stable, so event order within one
                changed.sort(key=_first)

    @staticmethod
    def _detect_field(event: dict[str, Any], parents: tuple[str, ...], key: str,
                      detection: Detection, changed: list[str]) -> None:
        parent: Any = event
        for part in parents:
            parent = parent.get(part) if isinstance(parent, dict) else None
        value = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(value, str) or not value:
            return
        for mask, drop in detection.detectors:
            found = mask(value)
            if found is None:
                continue
            if drop:
                if detection.nullable:
                    parent[key] = None
                    changed.append(f"{detection.label}=drop")
                    return
                found = "*" * len(value)  # a required field: nothing of it is kept
            parent[key] = value = found
            changed.append(f"{detection.label}=mask")


def _first(entry: tuple[int, str]) -> int:
    return entry[0]
