"""Redaction rules: the model, reading one from a policy document, and the checks that
make a bad rule fail at start-up with its number and the reason."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import translate
from typing import Any

from sealtrail.core._redaction_actions import DETECTORS
from sealtrail.errors import PolicyError

__all__ = [
    "ACTIONS",
    "ATTRIBUTES",
    "ATTR_PREFIX",
    "DETECT_ACTIONS",
    "PROTECTED",
    "Rule",
    "check_reachable",
    "check_rule",
    "rule_from",
    "string_paths",
]

ACTIONS = ("keep", "drop", "mask", "truncate", "pseudonymize", "encrypt", "mask_ip")
DETECT_ACTIONS = ("mask", "drop")
SHORT_MODES = ("mask_all", "mask_half")
NOT_IP = ("drop", "mask")
ATTRIBUTES = "attributes"
ATTR_PREFIX = ATTRIBUTES + "."
DEFAULT_DETECT_PATHS = ("attributes.*", "reason")
# Fields the sealer itself needs as sent: event_id (deduplication, also after recovery
# from the chain) and event_type (it selects the rules).
PROTECTED = frozenset({"event_id", "event_type"})
_SELECTORS = ("path", "key_pattern", "detect")
_RULE_KEYS: dict[str, set[str]] = {
    "keep": set(),
    "drop": set(),
    "mask": {"keep_first", "keep_last", "mask_char", "pattern", "short"},
    "truncate": {"max_length"},
    "pseudonymize": set(),
    "encrypt": {"subject"},
    "mask_ip": {"ipv4_prefix", "ipv6_prefix", "not_ip"},
}
_COMMON_KEYS = {*_SELECTORS, "action", "event_types", "paths"}
_INT_KEYS = ("keep_first", "keep_last", "max_length", "ipv4_prefix", "ipv6_prefix")
_STR_KEYS = ("pattern", "subject", "short", "mask_char", "not_ip", "key_pattern", "detect",
             "path")


@dataclass(frozen=True)
class Rule:
    """One rule. It selects what it applies to in one of three ways:

    * ``path``: one string field, or one attribute ``attributes.<key>`` (the key compared
      without regard to case);
    * ``key_pattern``: every attribute whose key this regular expression finds (searched,
      case-insensitive);
    * ``detect``: what a detector (card_number, email, credential) finds inside the
      values of ``paths`` that no other rule changed.

    ``event_types`` limits it to some event types (all when empty; ``*`` and ``?`` are
    wildcards, e.g. ``auth.*``)."""

    path: str = ""
    action: str = "keep"
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
    key_pattern: str | None = None
    detect: str | None = None
    paths: tuple[str, ...] = ()
    """detect: where to look (default: every attribute and ``reason``)."""
    ipv4_prefix: int = 24
    ipv6_prefix: int = 48
    not_ip: str = "drop"
    """mask_ip: a value that is not an IP address is dropped (a required field: masked
    whole) or masked whole."""
    _types: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        globs = [t for t in self.event_types if "*" in t or "?" in t]
        if globs:
            object.__setattr__(self, "_types", re.compile("|".join(translate(g)
                                                                   for g in globs)))

    def applies_to(self, event_type: str) -> bool:
        if not self.event_types or event_type in self.event_types:
            return True
        return self._types is not None and self._types.match(event_type) is not None

    @property
    def is_attribute(self) -> bool:
        """Whether the rule names one attribute by its path."""
        return self.path.startswith(ATTR_PREFIX) and len(self.path) > len(ATTR_PREFIX)

    @property
    def attribute_key(self) -> str:
        """The attribute key a path rule names, case-folded (it matches in any case)."""
        return self.path[len(ATTR_PREFIX):].casefold()

    @property
    def selector(self) -> str:
        """How the rule selects, in words: its path, /key pattern/ or detector."""
        if self.key_pattern is not None:
            return f"attributes with keys matching /{self.key_pattern}/"
        if self.detect is not None:
            return f"detect {self.detect}"
        return self.path

    def describe(self) -> str:
        """The rule's options in words, for ``sealtrail policy check``."""
        if self.detect is not None:
            where = ", ".join(self.paths or DEFAULT_DETECT_PATHS)
            what = DETECTORS[self.detect].what
            if self.action == "drop":
                return f"drop values of {where} holding {what}"
            keep = f", keeping the last {self.keep_last} characters" if self.keep_last else ""
            return f"mask {what} inside values of {where}{keep}"
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
        if self.action == "mask_ip":
            return (f"network prefix: IPv4 /{self.ipv4_prefix}, IPv6 /{self.ipv6_prefix} "
                    f"(e.g. 203.0.113.0/24); not an IP address: {self.not_ip}")
        if self.action == "drop":
            return "remove the value"
        return "keep as sent (and name the attribute, so unknown_attributes keeps it)"


def string_paths(schema: Mapping[str, Any], prefix: str = "") -> dict[str, bool]:
    """Every path to a string field in ``schema``, mapped to whether it is nullable."""
    out: dict[str, bool] = {}
    for f in schema["fields"]:
        path = prefix + f["name"]
        ftype = f["type"]
        nullable = isinstance(ftype, list) and "null" in ftype
        branches = [t for t in ftype if t != "null"] if isinstance(ftype, list) else [ftype]
        for branch in branches:
            if branch == "string":
                out[path] = nullable
            elif isinstance(branch, dict) and branch.get("type") == "record":
                out.update(string_paths(branch, path + "."))
    return out


def _check_regex(where: str, name: str, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise PolicyError(f"{where}: {name!r} is not a valid regular expression: {exc}") \
            from None


def _check_path(where: str, path: str, paths: Mapping[str, bool]) -> None:
    is_attr = path.startswith(ATTR_PREFIX) and len(path) > len(ATTR_PREFIX)
    if not is_attr and path not in paths:
        raise PolicyError(
            f"{where}: no string field at this path ({path}); redactable paths are "
            f"{sorted(paths)} and attributes.<key>")


def _check_detect(where: str, rule: Rule, paths: Mapping[str, bool]) -> None:
    if rule.detect not in DETECTORS:
        raise PolicyError(f"{where}: unknown detector {rule.detect!r}; use one of "
                          f"{sorted(DETECTORS)}")
    if rule.action not in DETECT_ACTIONS:
        raise PolicyError(f"{where}: a detect rule can only {' or '.join(DETECT_ACTIONS)}")
    for path in rule.paths:
        if path in PROTECTED:
            raise PolicyError(f"{where}: {path} is needed by the sealer as sent")
        if path != "attributes.*":
            _check_path(where, path, paths)


def _check_mask(where: str, rule: Rule) -> None:
    if rule.keep_first < 0 or rule.keep_last < 0:
        raise PolicyError(f"{where}: keep_first and keep_last must be >= 0")
    if rule.short not in SHORT_MODES:
        raise PolicyError(f"{where}: 'short' must be one of {SHORT_MODES}")
    if len(rule.mask_char) != 1:
        raise PolicyError(f"{where}: 'mask_char' must be one character")
    if rule.pattern is not None:
        if rule.keep_first or rule.keep_last:
            raise PolicyError(f"{where}: use either 'pattern' or keep_first/keep_last")
        _check_regex(where, "pattern", rule.pattern)


def check_rule(where: str, rule: Rule, paths: Mapping[str, bool], *, can_pseudonymize: bool,
               can_encrypt: bool) -> None:
    """Raise PolicyError (prefixed with ``where``) when ``rule`` cannot work."""
    chosen = [s for s in _SELECTORS if getattr(rule, s)]
    if len(chosen) != 1:
        raise PolicyError(f"{where}: give exactly one of 'path', 'key_pattern', 'detect'")
    if rule.action not in ACTIONS:
        raise PolicyError(f"{where}: unknown action {rule.action!r}; use one of {ACTIONS}")
    if any(not t for t in rule.event_types):
        raise PolicyError(f"{where}: 'event_types' holds an empty event type")
    if rule.paths and rule.detect is None:
        raise PolicyError(f"{where}: 'paths' belongs to detect rules")
    if rule.detect is not None:
        _check_detect(where, rule, paths)
    elif rule.key_pattern is not None:
        _check_regex(where, "key_pattern", rule.key_pattern)
    else:
        _check_path(where, rule.path, paths)
        if rule.action == "drop" and not rule.is_attribute and not paths[rule.path]:
            raise PolicyError(f"{where}: the field is required by the schema and cannot be "
                              "dropped; use mask or pseudonymize")
        if rule.action != "keep" and rule.path in PROTECTED:
            raise PolicyError(f"{where}: {rule.path} is needed by the sealer as sent "
                              "(deduplication, rule selection); only keep is allowed")
    if rule.action == "pseudonymize" and not can_pseudonymize:
        raise PolicyError(f"{where}: pseudonymize needs an HMAC key (keys.hmac_key_file)")
    if rule.action == "encrypt":
        if not can_encrypt:
            raise PolicyError(f"{where}: encrypt needs a key store for subject data keys")
        subject = rule.subject
        if subject is not None and subject not in paths and not subject.startswith(
                ATTR_PREFIX):
            raise PolicyError(f"{where}: 'subject' {subject!r} is not a string field path")
    if rule.action == "truncate" and rule.max_length < 1:
        raise PolicyError(f"{where}: truncate needs max_length >= 1")
    if rule.action == "mask":
        _check_mask(where, rule)
    if rule.action == "mask_ip":
        if not 0 <= rule.ipv4_prefix <= 32 or not 0 <= rule.ipv6_prefix <= 128:
            raise PolicyError(f"{where}: ipv4_prefix must be 0..32 and ipv6_prefix 0..128")
        if rule.not_ip not in NOT_IP:
            raise PolicyError(f"{where}: 'not_ip' must be one of {NOT_IP}")


def rule_from(i: int, raw: Any) -> Rule:
    """Rule ``i`` (0-based) of a policy document; PolicyError naming it when malformed."""
    if not isinstance(raw, dict) or "action" not in raw or not any(s in raw for s in _SELECTORS):
        raise PolicyError(f"policy rule {i + 1}: needs 'action' and one of 'path', "
                          "'key_pattern', 'detect'")
    selector = next(str(raw[s]) for s in _SELECTORS if s in raw)
    where = f"policy rule {i + 1} ({selector})"
    action = str(raw["action"])
    allowed = _COMMON_KEYS | _RULE_KEYS.get(action, set().union(*_RULE_KEYS.values()))
    extra = set(raw) - allowed
    if extra:
        known = set().union(_COMMON_KEYS, *_RULE_KEYS.values())
        if extra <= known:
            raise PolicyError(f"{where}: {sorted(extra)} do not apply to action {action!r}")
        raise PolicyError(f"{where}: unknown keys {sorted(extra)}")
    # A bare string would otherwise become a set of its characters, and the rule
    # would silently apply to no event at all.
    lists = {}
    for name in ("event_types", "paths"):
        value = raw.get(name) or []
        if not isinstance(value, list | tuple | set | frozenset) or not all(
                isinstance(t, str) for t in value):
            raise PolicyError(f"{where}: {name!r} must be a list of strings")
        lists[name] = value
    for name in _STR_KEYS:
        if name in raw and not isinstance(raw[name], str):
            raise PolicyError(f"{where}: {name!r} must be a string")
    for name in _INT_KEYS:
        if name in raw and (not isinstance(raw[name], int) or isinstance(raw[name], bool)):
            raise PolicyError(f"{where}: {name!r} must be an integer")
    return Rule(
        path=str(raw.get("path", "")), action=action,
        event_types=frozenset(lists["event_types"]),
        keep_first=raw.get("keep_first", 0), keep_last=raw.get("keep_last", 0),
        mask_char=raw.get("mask_char", "*"), max_length=raw.get("max_length", 0),
        pattern=raw.get("pattern"), short=raw.get("short", "mask_all"),
        subject=raw.get("subject"), key_pattern=raw.get("key_pattern"),
        detect=raw.get("detect"), paths=tuple(lists["paths"]),
        ipv4_prefix=raw.get("ipv4_prefix", 24), ipv6_prefix=raw.get("ipv6_prefix", 48),
        not_ip=raw.get("not_ip", "drop"),
    )


def check_reachable(where: str, rule: Rule, earlier: list[Rule]) -> None:
    """A rule that an earlier all-event-types rule always pre-empts could never apply."""
    for j, prev in enumerate(earlier):
        if prev.event_types or prev.detect is not None or rule.detect is not None:
            continue
        covered = False
        if rule.path and prev.path:
            covered = (prev.attribute_key == rule.attribute_key if rule.is_attribute
                       and prev.is_attribute else prev.path == rule.path)
        elif rule.is_attribute and prev.key_pattern is not None:
            covered = re.search(prev.key_pattern, rule.path[len(ATTR_PREFIX):],
                                re.IGNORECASE) is not None
        if covered:
            raise PolicyError(
                f"{where}: never applies: rule {j + 1} ({prev.selector}) already covers this "
                "for all event types (the first matching rule wins; put rules limited to "
                "event types, and exceptions, first)")
