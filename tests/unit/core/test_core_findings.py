"""The one Finding type: its kind is an Enum whose values are the names verify prints."""

from __future__ import annotations

import json

import pytest

from sealtrail.core.findings import ARCHIVE, Finding, Kind


def test_kind_is_an_enum_and_compares_with_its_name() -> None:
    """Kinds are members of Kind; a finding built from a name holds the member."""
    f = Finding("unknown-key", "c1", "not trusted", "chains/c1/segments/0000000000.avro", 0)
    assert f.kind is Kind.UNKNOWN_KEY and f.kind == "unknown-key"
    with pytest.raises(ValueError):
        Finding("no-such-kind", "c1", "x")


def test_finding_text_and_json_name_where_the_evidence_breaks() -> None:
    """str() says chain, segment and seq; to_json() holds expected and found too."""
    f = Finding(Kind.LINK, "c1", "does not link", "chains/c1/segments/0000000002.avro", 8,
                "aa" * 32, "bb" * 32)
    assert str(f) == "chain c1, segment chains/c1/segments/0000000002.avro, seq 8: link: " \
                     "does not link"
    doc = json.loads(json.dumps(f.to_json()))
    assert doc == {"kind": "link", "chain_id": "c1", "message": "does not link",
                   "segment": "chains/c1/segments/0000000002.avro", "seq": 8,
                   "expected": "aa" * 32, "found": "bb" * 32}
    assert str(Finding(Kind.MISSING, ARCHIVE, "index 3 is missing", "index/0000000003.json")
               ) == "archive, segment index/0000000003.json: missing: index 3 is missing"
