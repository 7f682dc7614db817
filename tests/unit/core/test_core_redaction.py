"""Redaction policies: validation of the document, and what each action leaves behind."""

from __future__ import annotations

import copy
import hashlib
import hmac
import re
from importlib import resources
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail import schemas
from sealtrail.core.avro import AvroCodec
from sealtrail.core.canonical import canonical_json
from sealtrail.core.redaction import Policy, Rule
from sealtrail.errors import PolicyError

SCHEMA = schemas.load("AuditEvent")
CODEC = AvroCodec(SCHEMA)
KEY = b"k" * 32
PSEUDONYM = re.compile(r"hmac:k1:[0-9a-f]{32}\Z")


def _event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "e-1", "event_type": "auth.login", "action": "login", "occurred_at": 1,
        "actor": {"id": "u1", "type": "user", "principal": None},
        "origin": {"service": "svc", "instance": "i1", "service_version": None,
                   "environment": None, "source_ip": None, "user_agent": None,
                   "request_id": None, "trace_id": None},
        "resource": {"type": "session", "id": "s1"}, "outcome": "SUCCESS", "reason": None,
        "authorization": None, "tenant": None, "classification": "INTERNAL", "attributes": {},
    }
    event.update(overrides)
    return event


def _policy(*rules: dict[str, Any], key: bytes | None = KEY, **doc: Any) -> Policy:
    return Policy.from_document(
        {"id": "p", "version": 1, "rules": list(rules), **doc},
        event_schema=SCHEMA, hmac_key=key,
    )


def _set(event: dict[str, Any], path: str, value: str) -> None:
    if path.startswith("attributes."):
        event["attributes"][path[len("attributes."):]] = value
        return
    *parents, last = path.split(".")
    target = event
    for part in parents:
        target = target[part]
    target[last] = value


def _get(event: dict[str, Any], path: str) -> Any:
    if path.startswith("attributes."):
        return event["attributes"].get(path[len("attributes."):])
    value: Any = event
    for part in path.split("."):
        value = value[part]
    return value


# -- the property: nothing a rule removes survives -----------------------------------

# Each redacted field draws its value from its own range of code points (U+0800..U+D7FF,
# all three bytes in UTF-8, disjoint per field), with no character repeated: so a removed
# character cannot legitimately appear anywhere else (not in the kept part of the same
# value, not in another field, not in the ASCII rest of the event or the pseudonyms).
TARGETS = [
    ("actor.principal", "drop"),
    ("attributes.token", "drop"),
    ("origin.user_agent", "mask"),
    ("attributes.phone", "mask"),
    ("origin.source_ip", "mask"),
    ("reason", "truncate"),
    ("attributes.note", "truncate"),
    ("resource.id", "pseudonymize"),
    ("attributes.email", "pseudonymize"),
    ("origin.trace_id", "pseudonymize"),
]


def _secret(slot: int) -> st.SearchStrategy[str]:
    width = (0xD800 - 0x0800) // len(TARGETS)
    low = 0x0800 + slot * width
    code_points = st.integers(low, low + width - 1)
    return st.lists(code_points, unique=True, min_size=1, max_size=40).map(
        lambda cps: "".join(map(chr, cps))
    )


@st.composite
def redaction_cases(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, str]]:
    rules: list[dict[str, Any]] = [{"path": "attributes.public", "action": "keep"}]
    values: dict[str, str] = {}
    for slot, (path, action) in enumerate(TARGETS):
        rule: dict[str, Any] = {"path": path, "action": action}
        if action == "mask" and path != "origin.source_ip":
            rule["keep_first"] = draw(st.integers(0, 12))
            rule["keep_last"] = draw(st.integers(0, 12))
        if action == "truncate":
            rule["max_length"] = draw(st.integers(1, 45))
        rules.append(rule)
        values[path] = draw(_secret(slot))
    return draw(st.permutations(rules)), values


def _removed_and_kept(rule: dict[str, Any], value: str) -> tuple[str, list[str]]:
    """What a rule must remove from ``value``, and the parts it must keep."""
    action = rule["action"]
    if action == "mask":
        n = len(value)
        head = min(rule.get("keep_first", 0), n)
        tail = min(rule.get("keep_last", 0), n - head)
        if head + tail >= n:  # a value the kept parts would reveal whole is masked whole
            return value, []
        return value[head : n - tail], [value[:head], value[n - tail :]]
    if action == "truncate":
        return value[rule["max_length"] :], [value[: rule["max_length"]]]
    return value, []


@settings(max_examples=150, deadline=None)
@given(case=redaction_cases(), unknown=st.sampled_from(["keep", "drop"]))
def test_removed_values_appear_nowhere(
    case: tuple[list[dict[str, Any]], dict[str, str]], unknown: str
) -> None:
    """No character a drop/mask/truncate/pseudonymize rule removes appears in the redacted
    event's Avro encoding or canonical JSON; what a rule keeps is still there."""
    rules, values = case
    policy = _policy(*rules, unknown_attributes=unknown)
    event = _event(attributes={"public": "visible", "unnamed": "stays-or-goes"})
    for path, value in values.items():
        _set(event, path, value)
    original = copy.deepcopy(event)

    changed = policy.apply(event)

    CODEC.validate(event)
    avro_bytes = CODEC.encode(event)
    json_bytes = canonical_json(event)
    for rule in rules:
        if rule["action"] == "keep":
            continue
        removed, kept = _removed_and_kept(rule, values[rule["path"]])
        for char in removed:
            assert char.encode() not in avro_bytes, (rule, char)
            assert char.encode() not in json_bytes, (rule, char)
        result = _get(event, rule["path"])
        for part in kept:
            assert part in result
        if rule["action"] == "pseudonymize":
            assert PSEUDONYM.match(result)
        if rule["action"] == "drop":
            assert result is None
            if rule["path"].startswith("attributes."):
                assert rule["path"][len("attributes."):] not in event["attributes"]
    assert event["attributes"]["public"] == "visible"
    assert ("unnamed" in event["attributes"]) is (unknown == "keep")
    # In rule order; an attribute no rule names comes last, counted, never named.
    expected = [f"{r['path']}={r['action']}" for r in rules if r["action"] != "keep"]
    if unknown == "drop":
        expected.append("attributes.*=drop")
    assert changed == expected
    for untouched in ("event_id", "event_type", "action", "occurred_at", "outcome"):
        assert event[untouched] == original[untouched]


@settings(max_examples=100, deadline=None)
@given(value=st.text(max_size=30), other=st.text(max_size=30),
       key=st.binary(min_size=1, max_size=40), other_key=st.binary(min_size=1, max_size=40))
def test_pseudonyms_stable_and_keyed(value: str, other: str, key: bytes, other_key: bytes
                                     ) -> None:
    """Equal inputs give equal pseudonyms (joinable), different inputs or a different key give
    different ones; the pseudonym is the first 128 bits of HMAC-SHA-256 under the key."""
    rule = {"path": "attributes.email", "action": "pseudonymize"}

    def pseudonym(v: str, k: bytes) -> str:
        event = _event(attributes={"email": v})
        _policy(rule, key=k).apply(event)
        result: str = event["attributes"]["email"]
        return result

    first = pseudonym(value, key)
    assert first == pseudonym(value, key)
    digest = hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]
    assert first == f"hmac:k1:{digest}"
    if other != value:
        assert pseudonym(other, key) != first
    if other_key != key:
        assert pseudonym(value, other_key) != first


def test_pseudonym_names_the_key_id() -> None:
    """The pseudonym carries the HMAC key id, so values under a rotated key are told apart."""
    policy = Policy.from_document(
        {"id": "p", "version": 1, "rules": [{"path": "actor.id", "action": "pseudonymize"}]},
        event_schema=SCHEMA, hmac_key=KEY, hmac_key_id="h2024",
    )
    event = _event()
    policy.apply(event)
    assert event["actor"]["id"].startswith("hmac:h2024:")


# -- actions in detail ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("keep_first", "keep_last", "value", "expected"),
    [
        (0, 0, "secret", "******"),
        (2, 0, "secret", "se****"),
        (0, 2, "secret", "****et"),
        (2, 2, "secret", "se**et"),
        (4, 4, "secret", "******"),
        (10, 0, "abc", "***"),
        (0, 0, "", ""),
    ],
)
def test_mask_keeps_first_and_last(keep_first: int, keep_last: int, value: str,
                                   expected: str) -> None:
    """mask replaces every character but the first keep_first and last keep_last; a value no
    longer than keep_first + keep_last is masked whole (never revealed whole)."""
    event = _event(origin={**_event()["origin"], "user_agent": value})
    _policy({"path": "origin.user_agent", "action": "mask", "keep_first": keep_first,
             "keep_last": keep_last}).apply(event)
    assert event["origin"]["user_agent"] == expected


def test_mask_char_is_configurable() -> None:
    """mask_char sets the replacement character; more than one character is an error."""
    event = _event(attributes={"card": "4111111111111111"})
    _policy({"path": "attributes.card", "action": "mask", "keep_last": 4,
             "mask_char": "#"}).apply(event)
    assert event["attributes"]["card"] == "############1111"
    with pytest.raises(PolicyError, match="one character"):
        _policy({"path": "attributes.card", "action": "mask", "mask_char": "#?"})


def test_truncate_keeps_prefix() -> None:
    """truncate keeps the first max_length characters and leaves shorter values alone."""
    event = _event(reason="x" * 10, attributes={"short": "ab"})
    changed = _policy({"path": "reason", "action": "truncate", "max_length": 3},
                      {"path": "attributes.short", "action": "truncate",
                       "max_length": 3}).apply(event)
    assert event["reason"] == "xxx" and event["attributes"]["short"] == "ab"
    assert changed == ["reason=truncate", "attributes.short=truncate"]


def test_drop_nullable_field_sets_null_and_drop_attribute_deletes_it() -> None:
    """drop sets a nullable field to null and deletes an attribute key; both stay schema-valid."""
    event = _event(actor={"id": "u", "type": "user", "principal": "alice"},
                   attributes={"token": "t0k3n", "other": "x"})
    changed = _policy({"path": "actor.principal", "action": "drop"},
                      {"path": "attributes.token", "action": "drop"}).apply(event)
    assert event["actor"]["principal"] is None
    assert event["attributes"] == {"other": "x"}
    assert changed == ["actor.principal=drop", "attributes.token=drop"]
    CODEC.validate(event)


def test_rules_skip_absent_and_null_values() -> None:
    """A rule whose field is null, absent, or under a null record changes and reports nothing."""
    event = _event()
    changed = _policy({"path": "actor.principal", "action": "pseudonymize"},
                      {"path": "attributes.email", "action": "drop"},
                      {"path": "authorization.policy", "action": "mask"}).apply(event)
    assert changed == []
    assert event == _event()


def test_nested_nullable_record_field_is_redacted() -> None:
    """A string inside a nullable record (authorization.policy) is redacted when present."""
    authz = {"decision": "ALLOW", "policy": "secret-policy", "permissions": []}
    event = _event(authorization=authz)
    _policy({"path": "authorization.policy", "action": "truncate", "max_length": 6}).apply(event)
    assert event["authorization"]["policy"] == "secret"


def test_event_types_limit_a_rule() -> None:
    """A rule with event_types applies to those event types only."""
    policy = _policy({"path": "actor.id", "action": "mask", "event_types": ["auth.login"]})
    login, read = _event(), _event(event_type="record.read")
    assert policy.apply(login) == ["actor.id=mask"] and login["actor"]["id"] == "**"
    assert policy.apply(read) == [] and read["actor"]["id"] == "u1"


def test_keep_rule_changes_nothing() -> None:
    """keep leaves the value and is not reported as a transformation."""
    event = _event(attributes={"public": "v"})
    assert _policy({"path": "attributes.public", "action": "keep"}).apply(event) == []
    assert event["attributes"] == {"public": "v"}


def test_attribute_keys_may_contain_dots() -> None:
    """attributes.<key> takes everything after the first dot as the key."""
    event = _event(attributes={"a.b": "secret", "a": "other"})
    _policy({"path": "attributes.a.b", "action": "drop"}).apply(event)
    assert event["attributes"] == {"a": "other"}


def test_unknown_attributes_drop_keeps_only_named_ones() -> None:
    """unknown_attributes: drop removes every attribute no rule names and counts each,
    without naming it (a key may itself be personal data)."""
    event = _event(attributes={"kept": "1", "email": "a@b", "x": "2", "ada@example.com": "3"})
    changed = _policy({"path": "attributes.kept", "action": "keep"},
                      {"path": "attributes.email", "action": "pseudonymize"},
                      unknown_attributes="drop").apply(event)
    assert sorted(event["attributes"]) == ["email", "kept"]
    assert changed == ["attributes.email=pseudonymize", "attributes.*=drop",
                       "attributes.*=drop"]


def test_policy_attributes_exposed() -> None:
    """A built policy exposes its id, version, rules and unknown-attribute mode."""
    policy = _policy({"path": "reason", "action": "drop", "event_types": ["a.b"]},
                     unknown_attributes="drop")
    assert (policy.policy_id, policy.version, policy.unknown_attributes) == ("p", 1, "drop")
    assert policy.rules == (Rule("reason", "drop", frozenset({"a.b"})),)


def test_shipped_default_policy_is_valid() -> None:
    """The default policy shipped in sealtrail/data validates against the AuditEvent schema."""
    text = resources.files("sealtrail").joinpath("data", "default-policy.yaml").read_text()
    policy = Policy.from_document(yaml.safe_load(text), event_schema=SCHEMA, hmac_key=KEY)
    assert policy.rules


# -- policy document errors ----------------------------------------------------------

GOOD = {"path": "reason", "action": "drop"}


@pytest.mark.parametrize(
    ("rule", "key", "reason"),
    [
        ({"path": "actor.id", "action": "shred"}, KEY, "unknown action 'shred'"),
        ({"path": "actor.nickname", "action": "mask"}, KEY, "no string field at this path"),
        ({"path": "occurred_at", "action": "mask"}, KEY, "no string field at this path"),
        ({"path": "attributes", "action": "mask"}, KEY, "no string field at this path"),
        ({"path": "actor.id", "action": "drop"}, KEY, "required by the schema"),
        ({"path": "event_id", "action": "drop"}, KEY, "required by the schema"),
        ({"path": "actor.id", "action": "pseudonymize"}, None, "needs an HMAC key"),
        ({"path": "actor.id", "action": "pseudonymize"}, b"", "needs an HMAC key"),
        ({"path": "reason", "action": "truncate"}, KEY, "truncate needs max_length"),
        ({"path": "reason", "action": "truncate", "max_length": 0}, KEY, "max_length >= 1"),
        ({"path": "reason", "action": "mask", "keep_first": -1}, KEY, "must be >= 0"),
        ({"path": "reason", "action": "mask", "colour": "red"}, KEY, r"unknown keys \['colour'\]"),
        ({"path": "reason", "action": "mask", "keep_first": "two"}, KEY, "must be an integer"),
        ({"path": "reason", "action": "mask", "event_types": "auth.login"}, KEY,
         "'event_types' must be a list"),
        ({"path": "reason", "action": "mask", "event_types": [1]}, KEY,
         "'event_types' must be a list"),
    ],
    ids=["unknown-action", "unknown-path", "non-string-path", "map-path", "drop-required",
         "drop-required-top", "pseudonymize-no-key", "pseudonymize-empty-key",
         "truncate-no-max", "truncate-zero", "mask-negative", "unknown-keys", "bad-int",
         "event-types-string", "event-types-not-str"],
)
def test_rule_errors_name_rule_number_and_path(
    rule: dict[str, Any], key: bytes | None, reason: str
) -> None:
    """Every rule error says which rule (1-based) and which path is wrong, and why."""
    with pytest.raises(PolicyError, match=reason) as caught:
        _policy(GOOD, rule, key=key)
    assert str(caught.value).startswith(f"policy rule 2 ({rule['path']}): ")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "must be a mapping"),
        (None, "must be a mapping"),
        ({"id": "p", "version": 1, "rules": [], "colour": 1}, r"unknown keys \['colour'\]"),
        ({"version": 1, "rules": []}, "'id' must be a non-empty string"),
        ({"id": "p", "rules": []}, "'version' must be an integer >= 1"),
        ({"id": "p", "version": "one", "rules": []}, "'version' must be an integer"),
        ({"id": "p", "version": 1, "unknown_attributes": "hide"}, "keep or drop"),
        ({"id": "p", "version": 1, "rules": [GOOD, "reason"]}, "policy rule 2: needs"),
        ({"id": "p", "version": 1, "rules": [{"path": "reason"}]}, "policy rule 1: needs"),
        ({"id": "p", "version": 1, "rules": {"path": "reason"}}, "'rules' must be a list"),
    ],
)
def test_document_errors(doc: Any, message: str) -> None:
    """Top-level document problems raise PolicyError saying what to fix."""
    with pytest.raises(PolicyError, match=message):
        Policy.from_document(doc, event_schema=SCHEMA, hmac_key=KEY)


def test_empty_rule_list_is_a_valid_policy() -> None:
    """A policy with no rules is valid and changes nothing."""
    event = _event(attributes={"a": "b"})
    assert _policy().apply(event) == [] and event == _event(attributes={"a": "b"})
