"""sealtrail.inputs: what offline checkers are given is bounded and shaped before use;
MalformedInputError and nothing else, whatever the bytes."""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.errors import ConfigError, MalformedInputError
from sealtrail.inputs import BoundedZip, ListOf, Shape, ZipLimits, check_shape, load_json, read_file

SPEC = Shape({"a": int, "b": ListOf(str, 2), "c": Shape({"d": (str, type(None))}, exact=False)},
             optional=frozenset({"c"}))


@pytest.mark.parametrize("doc,why", [
    ([], "the top level must be an object, found an array"),
    ({"b": []}, "lacks member 'a'"),
    ({"a": True, "b": []}, "a must be an integer, found a boolean"),
    ({"a": 1, "b": ["x", 2]}, "b[1] must be a string, found an integer"),
    ({"a": 1, "b": ["x"] * 3}, "holds 3 items, at most 2"),
    ({"a": 1, "b": [], "z": 0}, "unexpected member 'z'"),
    ({"a": 1, "b": [], "c": {"d": 5}}, "c.d must be a string or null"),
])
def test_shapes_name_the_path_and_the_types(doc: object, why: str) -> None:
    with pytest.raises(MalformedInputError, match=None) as info:
        check_shape(doc, SPEC, "doc")
    assert why in str(info.value)


def test_a_shape_that_fits_passes() -> None:
    check_shape({"a": 1, "b": ["x"], "c": {"d": None, "other": 1}}, SPEC, "doc")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_load_json_raises_only_malformed_input(data: bytes) -> None:
    with contextlib.suppress(MalformedInputError):
        load_json(data, what="doc", max_bytes=100)


def test_load_json_bounds() -> None:
    """Size, depth (before and after the parser) and 5000-digit numbers are refused."""
    for data, why in [(b"1" * 101, "more than 100"), (b"[" * 10**6, "nested too deeply"),
                      (b"[" * 70 + b"]" * 70, "nested too deeply"), (b"9" * 5000, "not JSON")]:
        with pytest.raises(MalformedInputError, match=why):
            load_json(data, what="doc", max_bytes=10**7 if why != "more than 100" else 100)
    assert load_json(b"[" * 60 + b"]" * 60, what="doc", max_bytes=1000) is not None


def test_read_file(tmp_path: Path) -> None:
    """A missing file or a directory is ConfigError (exit 2); a large one is refused before
    it is read."""
    with pytest.raises(ConfigError, match="cannot read doc"):
        read_file(tmp_path / "nope", what="doc", max_bytes=10)
    with pytest.raises(ConfigError, match="not a regular file"):
        read_file(tmp_path, what="doc", max_bytes=10)
    (tmp_path / "big").write_bytes(b"x" * 11)
    with pytest.raises(MalformedInputError, match="11 bytes"):
        read_file(tmp_path / "big", what="doc", max_bytes=10)


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_zip_caps() -> None:
    """Member count, member size, total size, ratio and method are checked on the declared
    sizes; within them, members are read and hashed."""
    limits = ZipLimits(members=3, member_bytes=1000, total_bytes=1500, ratio=10,
                       ratio_floor=100)
    ok = BoundedZip(_zip({"a": b"x" * 50, "b": json.dumps(list(range(50))).encode()}),
                    what="z", limits=limits)
    assert ok.read("a", max_bytes=50) == b"x" * 50 and len(ok.sha256("b")) == 64
    for members, why in [({str(i): b"" for i in range(4)}, "4 members"),
                         ({"a": b"0" * 1001}, "more than 1000"),
                         ({"a": bytes(500)}, "more than 10 times"),
                         ({"a": bytes(range(256)) * 3, "b": bytes(range(256)) * 3},
                          "inflates to 1536 bytes")]:
        with pytest.raises(MalformedInputError, match=why):
            BoundedZip(_zip(members), what="z", limits=limits)
    with pytest.raises(MalformedInputError, match="compression method"):
        BoundedZip(_zip({"a": b"x"}, zipfile.ZIP_BZIP2), what="z")
    with pytest.raises(MalformedInputError, match="at most 10"):
        ok.read("b", max_bytes=10)
