"""core.hexfield.hex_bytes, the one reader of hex fields in proofs, the archive index and
a witness's record: exactly lowercase hex of the right length, nothing near it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealtrail.core.hexfield import hex_bytes
from sealtrail.errors import IntegrityError

GOOD = bytes(range(32))


@given(st.binary(min_size=0, max_size=64))
def test_lowercase_hex_reads_back_as_its_bytes(raw: bytes) -> None:
    assert hex_bytes(raw.hex(), "field", len(raw)) == raw


@pytest.mark.parametrize(("value", "says"), [
    (GOOD.hex().upper(), "lowercase hex"),               # the same bytes, another spelling
    (GOOD.hex()[:-2], "32 bytes"),                       # one byte short
    (GOOD.hex() + "00", "32 bytes"),                     # one byte long
    (" " + GOOD.hex(), "lowercase hex"),                 # fromhex skips whitespace
    (GOOD.hex()[:-1] + "g", "not hex"),
    (GOOD.hex()[:-1], "not hex"),                        # odd length
    (list(GOOD), "hex string"),
    (None, "hex string"),
    (GOOD, "hex string"),                                # bytes, not their hex
])
def test_anything_near_it_is_refused_naming_the_field(value: Any, says: str) -> None:
    with pytest.raises(IntegrityError, match=says) as caught:
        hex_bytes(value, "proof field 'root'", 32)
    assert "proof field 'root'" in str(caught.value)
