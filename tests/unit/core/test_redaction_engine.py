"""The redaction policy engine: mask options, per-event-type rules, unknown attributes,
encrypt and pseudonymize with keys from the shell, metrics, and the property that nothing a
rule removes or transforms reaches a sealed record (`policy check` as a command:
tests/integration/cli/test_policy_cli.py)."""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from sealtrail import schemas
from sealtrail.core.avro import AvroCodec
from sealtrail.core.canonical import canonical_json
from sealtrail.core.chain import ChainHead, seal
from sealtrail.core.redaction import HmacPseudonymizer, Policy
from sealtrail.core.signing import Ed25519Signer
from sealtrail.errors import PolicyError
from sealtrail.keys import init_keys
from sealtrail.keys.subject import LocalKeyStore, SubjectEncryptor, decrypt_event
from sealtrail.policy import RedactionMetrics, load_policy

SCHEMA = schemas.load(schemas.AUDIT_EVENT)
CODEC = AvroCodec(SCHEMA)
SEALED = AvroCodec(schemas.sealed_record())
KEY = b"k" * 32
SIGNER = Ed25519Signer(bytes(range(32)))
ENC = re.compile(r"enc:v1:dk-[0-9a-f]{16}:[A-Za-z0-9+/]+=*\Z")


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
    for field in SCHEMA["fields"]:  # fields newer schema versions add, at their defaults
        if field["name"] not in event and "default" in field:
            event[field["name"]] = copy.deepcopy(field["default"])
    event.update(overrides)
    return event


class FakeEncryptor:
    """Records what it was asked to encrypt; output names subject and path, not value."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def encrypt(self, subject: str, value: str, *, path: str) -> str:
        self.calls.append((subject, value, path))
        return f"enc:v1:dk-{len(self.calls):016x}:AAAA"


def _policy(*rules: dict[str, Any], encryptor: Any = None, **doc: Any) -> Policy:
    return Policy.from_document({"id": "p", "version": 1, "rules": list(rules), **doc},
                                event_schema=SCHEMA, hmac_key=KEY, encryptor=encryptor)


# -- mask ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(value=st.text(alphabet=st.characters(blacklist_characters="*"), min_size=1,
                     max_size=12),
       first=st.integers(0, 15), last=st.integers(0, 15),
       short=st.sampled_from(["mask_all", "mask_half"]))
def test_mask_never_reveals_a_value_whole(value: str, first: int, last: int,
                                          short: str) -> None:
    """Whatever keep_first/keep_last and short mode, a masked value never comes out
    whole and keeps its length; mask_half masks at least half of a short value."""
    event = _event(reason=value)
    _policy({"path": "reason", "action": "mask", "keep_first": first, "keep_last": last,
             "short": short}).apply(event)
    out = event["reason"]
    assert out != value and len(out) == len(value)
    if len(value) <= first + last:
        masked = out.count("*")
        assert masked == len(value) if short == "mask_all" else masked >= (len(value) + 1) // 2


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ({"keep_last": 4}, "5551234", "***1234"),
        ({"keep_last": 4}, "1234", "****"),
        ({"keep_last": 4, "short": "mask_half"}, "1234", "**34"),
        ({"keep_first": 2, "keep_last": 2, "short": "mask_half"}, "abcd", "a**d"),
        ({"pattern": r"\d"}, "card 4111-1111", "card ****-****"),
        ({"pattern": r"^[^@]+"}, "alice@example.com", "*****@example.com"),
        ({"pattern": r"\d"}, "no digits", "*********"),
        ({"pattern": r"x*"}, "abc", "***"),
        ({"pattern": r"\d", "mask_char": "#"}, "a1", "a#"),
    ],
    ids=["keep-last", "short-all", "short-half", "short-half-both", "pattern-digits",
         "pattern-local-part", "pattern-no-match-masks-all", "pattern-empty-matches",
         "pattern-mask-char"],
)
def test_mask_options(rule: dict[str, Any], value: str, expected: str) -> None:
    """keep_first/keep_last, the short-value modes and the regex pattern mask as documented."""
    event = _event(attributes={"v": value})
    _policy({"path": "attributes.v", "action": "mask", **rule}).apply(event)
    assert event["attributes"]["v"] == expected


# -- rule selection and unknown attributes ---------------------------------------------


def test_attribute_named_for_other_event_type_is_dropped() -> None:
    """With unknown_attributes: drop, an attribute that only a rule for another event type
    names is still unknown for this event type, and dropped."""
    policy = _policy({"path": "attributes.card", "action": "mask", "keep_last": 4,
                      "event_types": ["payment.charge"]}, unknown_attributes="drop")
    pay = _event(event_type="payment.charge", attributes={"card": "4111111111111111"})
    login = _event(attributes={"card": "4111111111111111"})
    assert policy.apply(pay) == ["attributes.card=mask"]
    assert pay["attributes"] == {"card": "************1111"}
    assert policy.apply(login) == ["attributes.*=drop"]  # unnamed here: counted, not named
    assert login["attributes"] == {}


def test_first_matching_rule_per_path_wins() -> None:
    """A rule limited to event types placed before a general one is an exception to it."""
    policy = _policy({"path": "actor.id", "action": "keep", "event_types": ["system.*"]},
                     {"path": "actor.id", "action": "pseudonymize"})
    sysev, login = _event(event_type="system.cron"), _event()
    assert policy.apply(sysev) == [] and sysev["actor"]["id"] == "u1"
    assert policy.apply(login) == ["actor.id=pseudonymize"]
    assert login["actor"]["id"].startswith("hmac:k1:")


def test_event_type_wildcards() -> None:
    """event_types accepts shell-style wildcards (auth.* matches auth.login, not authz.x)."""
    policy = _policy({"path": "reason", "action": "drop", "event_types": ["auth.*"]})
    a, b = _event(reason="r"), _event(event_type="authz.check", reason="r")
    policy.apply(a)
    policy.apply(b)
    assert a["reason"] is None and b["reason"] == "r"


def test_nested_fields_and_dotted_attribute_keys() -> None:
    """Paths reach strings inside nested and nullable records and attribute keys with dots."""
    event = _event(authorization={"decision": "ALLOW", "policy": "internal-rbac",
                                  "permissions": []},
                   attributes={"http.client_ip": "10.1.2.3"})
    changed = _policy({"path": "authorization.policy", "action": "truncate", "max_length": 3},
                      {"path": "attributes.http.client_ip", "action": "mask",
                       "pattern": r"\d+$"}).apply(event)
    assert event["authorization"]["policy"] == "int"
    assert event["attributes"]["http.client_ip"] == "10.1.2.*"
    assert changed == ["authorization.policy=truncate", "attributes.http.client_ip=mask"]


# -- encrypt and pseudonymize ------------------------------------------------------------


def test_encrypt_uses_the_subject_read_before_any_rule() -> None:
    """encrypt keys each field to the subject at subject_field as emitted, even when
    another rule pseudonymizes that very field."""
    enc = FakeEncryptor()
    policy = _policy({"path": "actor.id", "action": "pseudonymize"},
                     {"path": "attributes.address", "action": "encrypt"},
                     {"path": "resource.id", "action": "encrypt",
                      "subject": "attributes.customer"}, encryptor=enc)
    event = _event(attributes={"address": "1 Main St", "customer": "c-9"})
    changed = policy.apply(event)
    assert enc.calls == [("c-9", "s1", "resource.id"), ("u1", "1 Main St", "attributes.address")]
    assert changed == ["actor.id=pseudonymize", "attributes.address=encrypt",
                       "resource.id=encrypt"]  # reported in rule order
    assert event["attributes"]["address"].startswith("enc:v1:")


def test_encrypt_without_subject_fails_closed() -> None:
    """With no subject value the field cannot be made erasable: a droppable field is
    dropped, a required one masked whole, and the record says which."""
    enc = FakeEncryptor()
    policy = _policy({"path": "attributes.address", "action": "encrypt"},
                     {"path": "resource.id", "action": "encrypt"},
                     encryptor=enc, subject_field="actor.principal")
    event = _event(attributes={"address": "1 Main St"})
    assert policy.apply(event) == ["attributes.address=drop", "resource.id=mask"]
    assert event["attributes"] == {} and event["resource"]["id"] == "**"
    assert enc.calls == []


def test_pseudonymizer_object_names_its_key() -> None:
    """A pseudonymizer passed in (e.g. one that follows key rotation) is used as is."""
    policy = Policy.from_document(
        {"id": "p", "version": 1, "rules": [{"path": "actor.id", "action": "pseudonymize"}]},
        event_schema=SCHEMA, pseudonymizer=HmacPseudonymizer(b"x" * 32, "h2"))
    event = _event()
    policy.apply(event)
    assert event["actor"]["id"].startswith("hmac:h2:")


def test_redaction_counts_reach_prometheus() -> None:
    """The observer counts transformed fields per event type and action, exposed as
    sealtrail_redactions_total; event types past the cap are counted as _other."""
    metrics = RedactionMetrics(max_event_types=1)
    policy = Policy.from_document(
        {"id": "p", "version": 1, "unknown_attributes": "drop",
         "rules": [{"path": "reason", "action": "drop"}]},
        event_schema=SCHEMA, observer=metrics)
    policy.apply(_event(reason="r", attributes={"a": "1", "b": "2"}))
    policy.apply(_event(event_type="x.y", reason="r"))
    registry = CollectorRegistry()
    registry.register(metrics)
    text = generate_latest(registry).decode()
    assert 'sealtrail_redactions_total{action="drop",event_type="auth.login"} 3.0' in text
    assert 'sealtrail_redactions_total{action="drop",event_type="_other"} 1.0' in text


# -- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "doc", "message"),
    [
        ([{"path": "reason", "action": "mask", "pattern": "("}], {}, "not a valid regular"),
        ([{"path": "reason", "action": "mask", "pattern": "a", "keep_last": 2}], {},
         "either 'pattern' or keep_first"),
        ([{"path": "reason", "action": "mask", "short": "reveal"}], {}, "'short' must be"),
        ([{"path": "reason", "action": "drop", "max_length": 3}], {},
         r"\['max_length'\] do not apply to action 'drop'"),
        ([{"path": "reason", "action": "encrypt"}], {}, "encrypt needs a key store"),
        ([{"path": "event_type", "action": "pseudonymize"}], {}, "needed by the sealer"),
        ([{"path": "reason", "action": "drop"}, {"path": "reason", "action": "mask"}], {},
         "rule 2 .*never applies: rule 1 .*already covers"),
        ([], {"subject_field": "occurred_at"}, "'subject_field'"),
        ([{"path": "reason", "action": "drop", "event_types": [""]}], {}, "empty event type"),
    ],
    ids=["bad-regex", "pattern-and-keep", "bad-short", "option-for-other-action",
         "encrypt-no-keystore", "protected-field", "shadowed-rule", "bad-subject",
         "empty-event-type"],
)
def test_policy_errors_say_what_to_fix(rules: list[dict[str, Any]], doc: dict[str, Any],
                                       message: str) -> None:
    """Invalid policies fail at load time with a message naming the rule and the fix."""
    with pytest.raises(PolicyError, match=message):
        Policy.from_document({"id": "p", "version": 1, "rules": rules, **doc},
                             event_schema=SCHEMA, hmac_key=KEY)


# -- the property: nothing a rule removes or transforms reaches the sealed record ---------

TARGETS = [
    ("actor.principal", "drop"), ("attributes.token", "drop"),
    ("origin.user_agent", "mask"), ("attributes.phone", "mask"),
    ("reason", "truncate"), ("attributes.note", "truncate"),
    ("resource.id", "pseudonymize"), ("attributes.email", "pseudonymize"),
    ("origin.trace_id", "encrypt"), ("attributes.address", "encrypt"),
    ("attributes.unnamed", "unknown"),
]


def _secret(slot: int) -> st.SearchStrategy[str]:
    width = (0xD800 - 0x0800) // len(TARGETS)
    low = 0x0800 + slot * width
    return st.lists(st.integers(low, low + width - 1), unique=True, min_size=1,
                    max_size=30).map(lambda cps: "".join(map(chr, cps)))


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> LocalKeyStore:
    keys = tmp_path_factory.mktemp("engine-keys")
    init_keys(keys)
    return LocalKeyStore(keys)


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, str]]:
    rules: list[dict[str, Any]] = []
    values: dict[str, str] = {}
    for slot, (path, action) in enumerate(TARGETS):
        values[path] = draw(_secret(slot))
        if action == "unknown":
            continue
        rule: dict[str, Any] = {"path": path, "action": action}
        if action == "mask":
            if draw(st.booleans()):
                rule.update(keep_first=draw(st.integers(0, 8)), keep_last=draw(st.integers(0, 8)),
                            short=draw(st.sampled_from(["mask_all", "mask_half"])))
            else:
                rule["pattern"] = draw(st.sampled_from([".", "^.", ".$", "..", "x"]))
        if action == "truncate":
            rule["max_length"] = draw(st.integers(1, 35))
        rules.append(rule)
    return draw(st.permutations(rules)), values


def _visible(rule: dict[str, Any], value: str, out: str | None) -> set[str]:
    """Characters of ``value`` the rule may legitimately leave in its output."""
    if rule["action"] == "truncate":
        return set(value[: rule["max_length"]])
    if rule["action"] == "mask" and out is not None:
        return set(out) - {"*"}
    return set()


def _locate(event: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    """The dict holding ``path`` and the key in it (attribute keys may contain dots)."""
    if path.startswith("attributes."):
        return event["attributes"], path[len("attributes."):]
    *parents, last = path.split(".")
    node = event
    for part in parents:
        node = node[part]
    return node, last


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_nothing_removed_reaches_the_sealed_record(
    keystore: LocalKeyStore, case: tuple[list[dict[str, Any]], dict[str, str]]
) -> None:
    """Every character a drop/mask/truncate/pseudonymize/encrypt rule or the unknown-
    attribute default removes is absent from the sealed record's Avro bytes and canonical
    JSON (and whole values from their base64 and hex forms); masks reveal no value whole;
    encrypted fields decrypt back while the subject's key exists."""
    rules, values = case
    policy = Policy.from_document(
        {"id": "prop", "version": 1, "unknown_attributes": "drop", "rules": rules},
        event_schema=SCHEMA, hmac_key=KEY, encryptor=SubjectEncryptor(keystore))
    event = _event(actor={"id": "subject-1", "type": "user", "principal": None},
                   origin={**_event()["origin"]})
    for path, value in values.items():
        node, last = _locate(event, path)
        node[last] = value
    original = copy.deepcopy(event)
    fields = policy.apply(event)
    unsealed = {"kind": "EVENT", "event": event, "rejection": None,
                "redaction": {"policy_id": "prop", "policy_version": 1, "fields": fields},
                "ingested_at": 1, "source": {"topic": "raw", "partition": 0, "offset": 0,
                                             "schema_id": 1}}
    record = seal(ChainHead.genesis("raw.0.x"), unsealed, SIGNER)
    # Hashes and the signature are random-looking bytes that can contain any short byte
    # sequence by chance; they are blanked in the binary form (their hex in canonical
    # JSON is ASCII and cannot hold the multi-byte characters looked for).
    blanked = {**record, "prev_hash": bytes(32), "entry_hash": bytes(32),
               "signature": bytes(64)}
    encodings = [SEALED.encode(blanked), canonical_json(record)]
    for rule in [*rules, {"path": "attributes.unnamed", "action": "drop"}]:
        value = values[rule["path"]]
        node, last = _locate(event, rule["path"])
        out = node.get(last)
        allowed = _visible(rule, value, out)
        for char in set(value) - allowed:
            for blob in encodings:
                assert char.encode() not in blob, (rule, char)
        if rule["action"] != "truncate" and len(value) >= 3:  # shorter: chance matches
            whole = value.encode()
            for blob in encodings:
                for form in (whole, base64.b64encode(whole), whole.hex().encode()):
                    assert form not in blob, (rule, form)
        if rule["action"] == "encrypt":
            assert ENC.match(out or ""), out
    assert decrypt_event(event, keystore) == {
        **event, "origin": {**event["origin"], "trace_id": original["origin"]["trace_id"]},
        "attributes": {**event["attributes"],
                       "address": original["attributes"]["address"]}}


def test_shipped_default_policy_loads_with_keys() -> None:
    """The shipped default policy validates and states its id and version."""
    policy = load_policy(None, hashlib.sha256(b"k").digest())
    assert (policy.policy_id, policy.version) == ("default", 3)
    assert policy.subject_field == "actor.id"
