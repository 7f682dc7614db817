"""Messages about values never quote them; URLs lose their secrets; terminal text loses
its control characters. Property tests over what a hostile producer could send."""

from __future__ import annotations

import copy
import re
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail import schemas
from sealtrail.core.avro import AvroCodec, frame
from sealtrail.core.disclosure import (
    MASK,
    character_classes,
    describe_value,
    escape_control,
    mask_url,
    mask_urls_in,
)
from sealtrail.core.envelope import check_event
from sealtrail.errors import EventValidationError
from sealtrail.pipeline.decode import RawDecoder, Rejected

CODEC = AvroCodec(schemas.load(schemas.AUDIT_EVENT))
EVENT: dict[str, Any] = {
    "event_id": "e-1", "event_type": "auth.login", "action": "login", "occurred_at": 1,
    "actor": {"id": "u1", "type": "user", "principal": None, "on_behalf_of": None},
    "origin": {"service": "svc", "instance": "i1", "service_version": None,
               "environment": None, "source_ip": None, "user_agent": None,
               "request_id": None, "trace_id": None},
    "resource": {"type": "session", "id": "s1"}, "outcome": "SUCCESS", "reason": None,
    "authorization": None, "tenant": None, "session_id": None,
    "classification": "INTERNAL", "attributes": {},
}
DESCRIPTION = re.compile(r"a string of \d+ characters? \(([A-Za-z -]+)(, [A-Za-z -]+)*\)\Z")
canaries = st.text(min_size=0, max_size=40).map(lambda t: "QZXJ" + t)


@settings(max_examples=300, deadline=None)
@given(value=st.text(min_size=1, max_size=60))
def test_a_description_is_length_and_classes_only(value: str) -> None:
    """describe_value of any text is 'a string of N characters (classes)', whatever it
    holds: nothing of the text itself."""
    described = describe_value(value)
    assert DESCRIPTION.fullmatch(described), described
    assert f"{len(value)} character" in described
    assert character_classes(value)


@settings(max_examples=200, deadline=None)
@given(event_type=canaries)
def test_a_bad_event_type_is_described_not_quoted(event_type: str) -> None:
    """The issue's example: an event_type holding an e-mail and a password is rejected
    naming the field, the rule and the length, without the value."""
    event = dict(EVENT, event_type=event_type)
    with pytest.raises(EventValidationError) as caught:
        check_event(event)
    assert caught.value.field == "event_type"
    assert "QZXJ" not in str(caught.value)
    assert f"{len(event_type)} character" in str(caught.value)


@settings(max_examples=100, deadline=None)
@given(path=st.sampled_from(["action", "actor.id", "resource.id", "origin.service"]),
       value=canaries.map(lambda t: t * 20))
def test_too_long_required_fields_say_the_length_only(path: str, value: str) -> None:
    event = copy.deepcopy(EVENT)
    parent: Any = event
    *parents, last = path.split(".")
    for part in parents:
        parent = parent[part]
    parent[last] = value
    if len(value) <= 256:
        return
    with pytest.raises(EventValidationError) as caught:
        check_event(event)
    assert caught.value.field == path and "QZXJ" not in str(caught.value)


@settings(max_examples=200, deadline=None)
@given(value=canaries, field=st.sampled_from(["reason", "tenant"]))
def test_schema_type_errors_do_not_quote_values(value: str, field: str) -> None:
    """validate() names the field and the expected type; a wrong value (here bytes of a
    secret) is described by its type."""
    event = dict(EVENT, **{field: value.encode()})
    with pytest.raises(EventValidationError) as caught:
        CODEC.validate(event)
    assert caught.value.field == field and "QZXJ" not in str(caught.value)
    with pytest.raises(EventValidationError) as caught:
        CODEC.validate(dict(EVENT, outcome=value))
    assert "QZXJ" not in str(caught.value)


class _Writers:
    """WriterSchemas stand-in: every schema id is the AuditEvent reader's."""

    def codec(self, schema_id: int) -> AvroCodec:
        return CODEC


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=200), cut=st.integers(0, 200))
def test_no_rejection_detail_quotes_the_record(body: bytes, cut: int) -> None:
    """Whatever bytes a raw record holds, after a valid header or inside an otherwise
    valid event, the rejection detail never contains a run of them."""
    decoder = RawDecoder(_Writers(), CODEC, max_bytes=1 << 20)  # type: ignore[arg-type]
    secret = b"QZXJ" + body
    good = CODEC.encode(dict(EVENT, reason="QZXJ-" + body.hex()))
    for value in (frame(1, secret), frame(1, good[:cut] + secret), secret,
                  frame(1, good[:cut])):
        outcome = decoder.decode(value)
        if isinstance(outcome, Rejected):
            assert "QZXJ" not in outcome.detail and "qzxj" not in outcome.detail.lower()
            assert body.hex()[:8] not in outcome.detail or len(body) < 4


# -- URLs -------------------------------------------------------

@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://audit:pw@db:5432/trail", f"postgresql://audit:{MASK}@db:5432/trail"),
    ("postgresql://audit@db/trail?password=pw&sslmode=require",
     f"postgresql://audit@db/trail?password={MASK}&sslmode=require"),
    ("https://h/?sslkey=/k&sslpassword=pw", f"https://h/?sslkey={MASK}&sslpassword={MASK}"),
    ("s3://bucket/prefix", "s3://bucket/prefix"),
    ("kafka-1:9092", "kafka-1:9092"),
    ("/var/lib/sealtrail/index.sqlite", "/var/lib/sealtrail/index.sqlite"),
])
def test_mask_url(url: str, expected: str) -> None:
    assert mask_url(url) == expected


@settings(max_examples=200, deadline=None)
@given(password=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e,
                                      exclude_characters="/?#@[]\\"),
                        min_size=1, max_size=20).map(lambda p: "QZXJ" + p),
       name=st.sampled_from(["password", "sslpassword", "access_token", "api_key",
                             "X-Amz-Signature", "client_secret"]))
def test_masked_urls_keep_no_secret(password: str, name: str) -> None:
    """In userinfo or in a password-like query parameter, any password is masked, also
    inside a longer message."""
    for url in (f"postgresql://u:{password}@h:5432/d",
                f"https://h/p?x=1&{name}={password}"):
        assert "QZXJ" not in mask_url(url)
        assert "QZXJ" not in mask_urls_in(f"cannot connect to {url}: refused")


def test_key_value_connection_strings_are_masked() -> None:
    assert "pw" not in mask_urls_in("dbname=trail user=a password=pw host=h")


# -- the terminal -------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=80))
def test_escaped_text_holds_no_control_character(text: str) -> None:
    """After escaping, no C0/C1 control, DEL, bidi override or zero-width character is
    left (tabs and, on request, newlines excepted); printable text is unchanged."""
    for keep in (False, True):
        out = escape_control(text, keep_newlines=keep)
        for c in out:
            assert unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn") \
                or c == "\t" or (keep and c == "\n"), repr(c)
    if text.isprintable():
        assert escape_control(text) == text
