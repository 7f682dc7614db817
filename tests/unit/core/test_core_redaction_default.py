"""The shipped default policy minimises: secret-like keys in any spelling, unknown
attributes, addresses reduced to networks, card numbers and credentials inside values.
Also the compiled form of a policy (nothing interpreted per record) and mask_ip."""

from __future__ import annotations

import copy
import ipaddress
import re
from importlib import resources
from typing import Any

import pytest
import yaml
from helpers.paths import REPO, module_path
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail import schemas
from sealtrail.core._redaction_actions import luhn_valid, mask_ip
from sealtrail.core.avro import AvroCodec
from sealtrail.core.canonical import canonical_json
from sealtrail.core.redaction import Policy
from sealtrail.errors import PolicyError

SCHEMA = schemas.load("AuditEvent")
CODEC = AvroCodec(SCHEMA)
KEY = b"k" * 32
DOCS = REPO / "docs"
DEFAULT_DOC = yaml.safe_load(
    resources.files("sealtrail").joinpath("data", "default-policy.yaml").read_text())
SECRET_WORDS = ["password", "passwd", "pwd", "secret", "token", "api_key", "api-key",
                "apikey", "authorization", "auth", "cookie", "session", "ssn",
                "credential", "private_key", "card_number", "cvv"]


def default_policy() -> Policy:
    return Policy.from_document(DEFAULT_DOC, event_schema=SCHEMA, hmac_key=KEY)


def _event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "e-1", "event_type": "auth.login", "action": "login", "occurred_at": 1,
        "actor": {"id": "u1", "type": "user", "principal": None, "on_behalf_of": None},
        "origin": {"service": "svc", "instance": "i1", "service_version": None,
                   "environment": None, "source_ip": None, "user_agent": None,
                   "request_id": None, "trace_id": None},
        "resource": {"type": "session", "id": "s1"}, "outcome": "SUCCESS", "reason": None,
        "authorization": None, "tenant": None, "session_id": None,
        "classification": "INTERNAL", "attributes": {},
    }
    event.update(overrides)
    return event


def _sealed_text(event: dict[str, Any], fields: list[str]) -> bytes:
    """Everything a sealed record would carry of ``event``: its Avro bytes, its canonical
    JSON and redaction.fields."""
    CODEC.validate(event)
    return CODEC.encode(event) + canonical_json(event) + "\n".join(fields).encode()


# -- secret-like keys -----------------------------------------------------------------------

@st.composite
def secret_keys(draw: st.DrawFn) -> str:
    """A key holding a secret word, in any case, with any prefix and suffix."""
    word = draw(st.sampled_from(SECRET_WORDS))
    cased = "".join(c.upper() if draw(st.booleans()) else c for c in word)
    affix = st.text("abcdefXYZ_-.0123", max_size=6)
    return draw(affix) + cased + draw(affix)


@settings(max_examples=300, deadline=None)
@given(key=secret_keys(), value=st.text(min_size=1, max_size=30).map(lambda v: "CANARY" + v))
def test_secret_like_keys_are_dropped_in_any_case_and_never_named(key: str, value: str) -> None:
    """An attribute whose key looks like a secret (Password, api_token, x-Auth-Header...)
    is dropped by the default policy, and redaction.fields counts it without its key."""
    event = _event(attributes={key: value})
    fields = default_policy()(event)
    assert event["attributes"] == {}
    assert fields == ["attributes.*=drop"]
    assert b"CANARY" not in _sealed_text(event, fields)


@settings(max_examples=200, deadline=None)
@given(attributes=st.dictionaries(st.text(min_size=1, max_size=20),
                                  st.text(max_size=20), max_size=8))
def test_unknown_attributes_are_dropped_and_only_counted(attributes: dict[str, str]) -> None:
    """Any attribute the default names nowhere is dropped; redaction.fields holds one
    ``attributes.*=drop`` per such key and never a key."""
    named = {"email", "phone"}
    event = _event(attributes=dict(attributes))
    fields = default_policy()(event)
    unnamed = [k for k in attributes if k.casefold() not in named]
    assert fields.count("attributes.*=drop") == len(unnamed)
    assert set(event["attributes"]) <= {k for k in attributes if k.casefold() in named}
    for entry in fields:
        assert entry.rpartition("=")[0] in ("attributes.*", "attributes.email",
                                             "attributes.phone")


def test_issue_examples_under_the_default() -> None:
    """The near-miss keys of the issue, an e-mail used as a key, and a Bearer token are
    gone; e-mail and phone are pseudonymised and masked; the source IP keeps its network."""
    event = _event(attributes={
        "Password": "hunter2-PW", "api_token": "tok-API", "Authorization": "Bearer ey-AUTH",
        "client_secret": "cs-SECRET", "SESSION_COOKIE": "sid-COOKIE", "ssn": "078-05-1120",
        "ada@example.com": "role-admin", "Email": "ada@example.com", "phone": "5551234",
        "ticket": "T-1"})
    event["origin"]["source_ip"] = "2001:db8:1234:5678::1"
    event["actor"]["principal"] = "ada@idp.example.com"
    fields = default_policy()(event)
    assert set(event["attributes"]) == {"Email", "phone"}
    assert event["attributes"]["Email"].startswith("hmac:")
    assert event["attributes"]["phone"] == "***1234"
    assert event["origin"]["source_ip"] == "2001:db8:1234::/48"
    assert event["actor"]["principal"].startswith("hmac:")
    text = _sealed_text(event, fields)
    for secret in (b"hunter2", b"API", b"AUTH", b"SECRET", b"COOKIE", b"078-05", b"ada@",
                   b"example.com", b"role-admin", b"5678", b"T-1"):
        assert secret not in text, secret
    assert fields.count("attributes.*=drop") == 8
    assert "attributes.email=pseudonymize" in fields  # named by the rule, not as sent


@settings(max_examples=200, deadline=None)
@given(digits=st.lists(st.integers(0, 9), min_size=12, max_size=18),
       sep=st.sampled_from(["", " ", "-"]), text=st.text("abc :,", max_size=8))
def test_luhn_valid_card_numbers_keep_only_their_last_four_digits(
    digits: list[int], sep: str, text: str
) -> None:
    """A Luhn-valid number of 13-19 digits inside a kept value (reason, a named attribute)
    is masked but for its last four digits; separators stay."""
    body = "".join(map(str, digits))
    check = next(str(d) for d in range(10) if luhn_valid(body + str(d)))
    number = body + check
    shown = sep.join(number[i:i + 4] for i in range(0, len(number), 4))
    event = _event(reason=f"{text}card {shown} declined",
                   attributes={"phone": "x", "email": "y"})
    fields = default_policy()(event)
    reason = event["reason"]
    assert "reason=mask" in fields
    assert number not in reason.replace(" ", "").replace("-", "")
    assert reason.count("*") == len(number) - 4
    assert re.sub(r"[^0-9*]", "", reason).endswith(number[-4:])


def test_a_number_failing_the_luhn_check_is_kept() -> None:
    """Order numbers and the like (no Luhn match) are not mistaken for cards."""
    event = _event(reason="order 4111111111111112 shipped")
    assert default_policy()(event) == []
    assert event["reason"] == "order 4111111111111112 shipped"


def test_credentials_in_free_text_are_masked() -> None:
    """Authorization values, password=... pairs and JWTs in reason are masked."""
    event = _event(reason="upstream said 401 for Authorization: Bearer abc.DEF-123456 "
                   "with password=hunter2 and eyJhbGciOi.eyJzdWIiOi.c2ln")
    fields = default_policy()(event)
    assert fields == ["reason=mask"]
    for secret in ("abc.DEF-123456", "hunter2", "eyJhbGciOi"):
        assert secret not in event["reason"]
    assert event["reason"].startswith("upstream said 401 for Authorization: Bearer ")


# -- mask_ip -------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(address=st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)),
       v4=st.integers(0, 32), v6=st.integers(0, 128))
def test_mask_ip_yields_the_network_of_the_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, v4: int, v6: int
) -> None:
    """mask_ip returns valid prefix notation of the configured length that contains the
    address; host bits are zero, so nothing of the host part survives."""
    out = mask_ip(v4, v6)(str(address))
    assert out is not None
    network = ipaddress.ip_network(out)  # strict: host bits must be zero
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    assert network.prefixlen == (v4 if address.version == 4 else v6)
    assert address in network


@pytest.mark.parametrize(("value", "expected"), [
    ("203.0.113.16", "203.0.113.0/24"),
    ("10.0.0.7", "10.0.0.0/24"),
    ("2001:db8::1640", "2001:db8::/48"),
    ("2001:db8:1234:5678::1", "2001:db8:1234::/48"),
    ("::ffff:203.0.113.9", "203.0.113.0/24"),
    ("fe80::1%eth0", "fe80::/48"),
])
def test_mask_ip_examples(value: str, expected: str) -> None:
    """The issue's examples now give networks (no character counting, no length leak)."""
    assert mask_ip(24, 48)(value) == expected


@pytest.mark.parametrize("value", ["not an ip", "203.0.113.16:443", " 10.0.0.7", "10.0.0",
                                   "[2001:db8::1]", "", "999.1.1.1"])
def test_values_that_are_not_addresses_are_dropped(value: str) -> None:
    """A source_ip that is not an IP address is dropped (nullable field), recorded as
    drop; with not_ip: mask it is masked whole instead."""
    event = _event()
    event["origin"]["source_ip"] = value
    fields = default_policy()(event)
    assert event["origin"]["source_ip"] is None
    assert fields == ["origin.source_ip=drop"]
    masking = Policy.from_document(
        {"id": "p", "version": 1, "rules": [
            {"path": "origin.source_ip", "action": "mask_ip", "not_ip": "mask"}]},
        event_schema=SCHEMA)
    event["origin"]["source_ip"] = value
    assert masking(event) == ["origin.source_ip=mask"]
    assert event["origin"]["source_ip"] == "*" * len(value)


def test_mask_ip_on_a_required_field_masks_non_addresses_whole() -> None:
    """A required field cannot be dropped: a non-address there is masked whole."""
    policy = Policy.from_document({"id": "p", "version": 1, "rules": [
        {"path": "resource.id", "action": "mask_ip"}]}, event_schema=SCHEMA)
    event = _event()
    assert policy(event) == ["resource.id=mask"] and event["resource"]["id"] == "**"


@pytest.mark.parametrize(("options", "message"), [
    ({"ipv4_prefix": 33}, "ipv4_prefix must be 0..32"),
    ({"ipv6_prefix": -1}, "ipv6_prefix 0..128"),
    ({"not_ip": "keep"}, "'not_ip' must be one of"),
    ({"ipv4_prefix": "24"}, "must be an integer"),
])
def test_mask_ip_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy.from_document({"id": "p", "version": 1, "rules": [
            {"path": "origin.source_ip", "action": "mask_ip", **options}]}, event_schema=SCHEMA)


# -- rule selection by key -------------------------------------------------------

def test_attribute_paths_match_keys_in_any_case() -> None:
    """attributes.email names Email and EMAIL too; the label is the rule's path."""
    policy = Policy.from_document({"id": "p", "version": 1, "unknown_attributes": "drop",
                                   "rules": [{"path": "attributes.email",
                                              "action": "pseudonymize"}]},
                                  event_schema=SCHEMA, hmac_key=KEY)
    event = _event(attributes={"Email": "a@x", "EMAIL": "b@y"})
    assert policy(event) == ["attributes.email=pseudonymize"] * 2
    assert all(v.startswith("hmac:") for v in event["attributes"].values())


def test_a_keep_after_a_covering_pattern_is_refused_and_an_exception_first_works() -> None:
    """A keep rule for a key that an earlier all-types key_pattern already drops could
    never apply: the policy says so. Placed first, it is an exception to the pattern."""
    pattern = {"key_pattern": "session", "action": "drop"}
    keep = {"path": "attributes.session_count", "action": "keep"}
    with pytest.raises(PolicyError, match=r"rule 2 .*never applies: rule 1 \(attributes "
                       "with keys matching /session/"):
        Policy.from_document({"id": "p", "version": 1, "rules": [pattern, keep]},
                             event_schema=SCHEMA)
    policy = Policy.from_document({"id": "p", "version": 1, "rules": [keep, pattern]},
                                  event_schema=SCHEMA)
    event = _event(attributes={"session_count": "3", "SESSION_ID": "abc"})
    assert policy(event) == ["attributes.*=drop"]
    assert event["attributes"] == {"session_count": "3"}


@pytest.mark.parametrize(("rule", "message"), [
    ({"key_pattern": "(", "action": "drop"}, "'key_pattern' is not a valid regular"),
    ({"detect": "dna", "action": "mask"}, "unknown detector 'dna'"),
    ({"detect": "email", "action": "pseudonymize"}, "can only mask or drop"),
    ({"detect": "email", "action": "mask", "paths": ["occurred_at"]}, "no string field"),
    ({"detect": "email", "action": "mask", "paths": ["event_id"]}, "needed by the sealer"),
    ({"path": "reason", "key_pattern": "x", "action": "drop"}, "exactly one of"),
    ({"path": "reason", "action": "drop", "paths": ["reason"]}, "'paths' belongs to detect"),
    ({"action": "drop"}, "needs 'action' and one of"),
])
def test_selector_errors(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy.from_document({"id": "p", "version": 1, "rules": [rule]}, event_schema=SCHEMA)


def test_detect_drop_removes_a_nullable_value_and_masks_a_required_one() -> None:
    """A detect rule with action drop removes what it finds a value in (null for a
    nullable field, the key for an attribute) and masks a required field whole."""
    policy = Policy.from_document({"id": "p", "version": 1, "rules": [
        {"path": "attributes.note", "action": "keep"},
        {"detect": "email", "action": "drop",
         "paths": ["reason", "attributes.*", "resource.id"]}]}, event_schema=SCHEMA)
    event = _event(reason="mail ada@example.com", attributes={"note": "cc bob@example.org"})
    event["resource"]["id"] = "ada@example.com"
    fields = policy(event)
    assert event["reason"] is None and event["attributes"] == {}
    assert event["resource"]["id"] == "*" * len("ada@example.com")
    assert sorted(fields) == ["attributes.note=drop", "reason=drop", "resource.id=mask"]


# -- compiled once -------------------------------------------------------

def test_nothing_is_compiled_or_parsed_per_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first event of a type, applying the policy compiles no regular
    expression, matches no glob and reads no rule: the plan is reused as built."""
    policy = default_policy()
    first = _event(attributes={"Password": "x", "email": "a@b", "note": "n"})
    first["origin"]["source_ip"] = "203.0.113.7"
    policy(copy.deepcopy(first))
    plan = policy._plans["auth.login"]

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("interpreted per record")

    monkeypatch.setattr(re, "compile", forbidden)
    monkeypatch.setattr(re, "search", forbidden)
    monkeypatch.setattr(re, "match", forbidden)
    monkeypatch.setattr("fnmatch.fnmatchcase", forbidden)
    monkeypatch.setattr("fnmatch.translate", forbidden)
    for _ in range(3):
        event = copy.deepcopy(first)
        assert policy(event) == ["attributes.*=drop", "attributes.email=pseudonymize",
                                 "origin.source_ip=mask_ip", "attributes.*=drop"]
    assert policy._plans["auth.login"] is plan


# -- the default, its documentation and the compliance mapping agree ----------

def test_default_policy_and_docs_agree() -> None:
    """docs/redaction.md quotes the default's key pattern and decision on unknown
    attributes; docs/compliance.md's GDPR 5(1)(c) row states the same decision and names
    tests that exist."""
    pattern = next(r["key_pattern"] for r in DEFAULT_DOC["rules"] if "key_pattern" in r)
    redaction = (DOCS / "redaction.md").read_text()
    assert pattern in redaction
    assert DEFAULT_DOC["unknown_attributes"] == "drop"
    assert "unknown_attributes: drop" in redaction
    row = next(line for line in (DOCS / "compliance.md").read_text().splitlines()
               if "5(1)(c)" in line)
    assert "unknown attributes dropped" in row and "mask_ip" in row
    for name, test in re.findall(r"`(test_[a-z0-9_]+\.py)::(test_[a-z0-9_]+)`", row):
        assert f"def {test}(" in module_path(name).read_text(), (name, test)
