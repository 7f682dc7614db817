"""Local-directory archive store: write-once objects, recorded (not enforced) retention (G5)."""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.archive import (
    ArchiveError,
    ArchiveStore,
    ArchiveUrlError,
    ObjectExistsError,
    ObjectMissingError,
    Retention,
    RetentionError,
    open_store,
    validate_key,
)
from sealtrail.archive._local import NOT_ENFORCED_NOTE, LocalStore

KEY = "chains/c-1/segments/0000000001.avro"


# Fixed once per run, so that two calls in a test give the same instant.
NOW = datetime.now(UTC).replace(microsecond=0)


def future(days: int = 30) -> datetime:
    return NOW + timedelta(days=days)


def past(days: int = 1) -> datetime:
    return NOW - timedelta(days=days)


def keep(days: int = 30, *holds: str) -> Retention:
    return Retention("COMPLIANCE", future(days), holds)


def expired(*holds: str) -> Retention:
    return Retention("COMPLIANCE", past(), holds)


@pytest.fixture
def store(tmp_path: Path) -> ArchiveStore:
    return open_store(str(tmp_path / "archive"))


def sidecar(tmp_path: Path, key: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(
        (tmp_path / "archive" / "_retention" / f"{key}.json").read_text()
    )
    return doc


# -- opening ------------------------------------------------------------------------------


def test_open_store_path_and_file_url_are_the_same_store(tmp_path: Path) -> None:
    by_path = open_store(str(tmp_path / "a"))
    by_url = open_store((tmp_path / "a").as_uri())
    assert open_store(tmp_path / "a").url == by_path.url  # a Path works too
    assert isinstance(by_path, LocalStore) and isinstance(by_url, LocalStore)
    assert isinstance(by_path, ArchiveStore)
    assert by_path.url == by_url.url == (tmp_path / "a").as_uri()
    assert by_path.enforces_retention is False
    by_path.put("x/y", b"1", retention=keep())
    assert by_url.get("x/y") == b"1"


def test_open_store_does_not_create_the_directory(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "not-yet"))
    assert store.list() == []
    assert not (tmp_path / "not-yet").exists()


@pytest.mark.parametrize(
    "url",
    ["", "ftp://host/x", "file://otherhost/x", "s3://", "s3://Bad_Bucket/x", "s3://bucket/../x"],
)
def test_open_store_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ArchiveUrlError):
        open_store(url)
    with pytest.raises(ValueError):  # ArchiveUrlError is also a ValueError
        open_store(url)


def test_open_store_s3_url_is_canonical_without_network() -> None:
    store = open_store("s3://my-bucket/audit/prod/", s3_endpoint_url="http://127.0.0.1:9")
    assert store.url == "s3://my-bucket/audit/prod"
    assert store.enforces_retention is True
    assert open_store("s3://my-bucket", region="eu-west-1").url == "s3://my-bucket"


# -- write once ---------------------------------------------------------------------------


def test_put_get_exists_list(store: ArchiveStore) -> None:
    keys = [
        "chains/c-2/segments/0000000001.avro",
        KEY,
        "chains/c-1/checkpoints/0000000001.json",
        "chains/c-1/segments/0000000002.avro",
        "top.txt",
    ]
    for i, key in enumerate(keys):
        store.put(key, f"data {i}".encode(), retention=keep())
    for i, key in enumerate(keys):
        assert store.get(key) == f"data {i}".encode()
        assert store.exists(key)
    assert not store.exists("chains/c-1/segments/0000000003.avro")
    assert not store.exists("chains")  # a directory is not an object
    assert store.list() == sorted(keys)
    assert store.list("chains/c-1/") == sorted(k for k in keys if k.startswith("chains/c-1/"))
    assert store.list("chains/c-1/segments/00000000") == [
        KEY,
        "chains/c-1/segments/0000000002.avro",
    ]
    assert store.list("chains/c") == sorted(k for k in keys if k.startswith("chains/"))
    assert store.list("nothing/") == []


def test_get_missing_raises(store: ArchiveStore) -> None:
    with pytest.raises(ObjectMissingError, match="0000000009"):
        store.get("chains/c-1/segments/0000000009.avro")
    store.put(KEY, b"x", retention=keep())
    with pytest.raises(ObjectMissingError):
        store.get("chains/c-1")  # a directory


def test_file_mode_durable_and_no_temp_files_left(store: ArchiveStore, tmp_path: Path) -> None:
    store.put(KEY, b"segment", retention=keep())
    path = tmp_path / "archive" / KEY
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    leftovers = [p for p in (tmp_path / "archive").rglob("*") if ".sealtrail-tmp-" in p.name]
    assert leftovers == []


def test_same_bytes_again_is_a_no_op(store: ArchiveStore, tmp_path: Path) -> None:
    store.put(KEY, b"segment", retention=keep())
    before = (tmp_path / "archive" / KEY).stat()
    store.put(KEY, b"segment", retention=keep(days=1))
    after = (tmp_path / "archive" / KEY).stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert store.get(KEY) == b"segment"
    assert store.retention(KEY).retain_until == future(30)  # not shortened by the retry


def test_different_bytes_raise_and_keep_the_original(store: ArchiveStore) -> None:
    store.put(KEY, b"original", retention=keep())
    with pytest.raises(ObjectExistsError, match=re.escape(KEY)) as info:
        store.put(KEY, b"tampered", retention=keep())
    assert info.value.key == KEY
    assert isinstance(info.value, ArchiveError)
    assert store.get(KEY) == b"original"


def test_concurrent_writers_of_different_bytes_one_wins(store: ArchiveStore) -> None:
    results: dict[int, str] = {}

    def write(i: int) -> None:
        try:
            store.put(KEY, f"writer {i}".encode(), retention=keep())
            results[i] = "ok"
        except ObjectExistsError:
            results[i] = "exists"

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, r in results.items() if r == "ok"]
    assert len(winners) == 1
    assert store.get(KEY) == f"writer {winners[0]}".encode()


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/abs/key",
        "a/../b",
        "..",
        "a/./b",
        "a//b",
        "a/b/",
        "a\\b",
        "a/\x00b",
        "_retention/x.json",
        "_holds/x.json",
        "a/.sealtrail-tmp-x",
    ],
)
def test_bad_keys_are_rejected(store: ArchiveStore, key: str) -> None:
    with pytest.raises(ValueError, match="archive key"):
        store.put(key, b"x", retention=keep())
    for op in (store.get, store.exists, store.delete, store.retention):
        with pytest.raises(ValueError, match="archive key"):
            op(key)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.text(
            alphabet=st.characters(
                min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters="/\\"
            ),
            min_size=1,
            max_size=12,
        ).filter(lambda p: p not in (".", "..") and not p.startswith("_")),
        min_size=1,
        max_size=4,
    )
)
def test_any_valid_key_round_trips(
    tmp_path_factory: pytest.TempPathFactory, parts: list[str]
) -> None:
    key = "/".join(parts)
    assert validate_key(key) == key
    store = open_store(str(tmp_path_factory.mktemp("prop")))
    store.put(key, key.encode(), retention=keep())
    assert store.get(key) == key.encode()
    assert store.list() == [key]


# -- retention metadata -------------------------------------------------------------------


def test_sidecar_records_retention_and_says_it_is_not_enforced(
    store: ArchiveStore, tmp_path: Path
) -> None:
    until = datetime(2040, 5, 6, 7, 8, 9, tzinfo=UTC)
    store.put(KEY, b"x", retention=Retention("COMPLIANCE", until, ("case-9",)))
    doc = sidecar(tmp_path, KEY)
    assert doc == {
        "mode": "COMPLIANCE",
        "retain_until": "2040-05-06T07:08:09Z",
        "legal_holds": ["case-9"],
        "enforced": False,
        "note": NOT_ENFORCED_NOTE,
    }
    assert "does not enforce" in str(doc["note"])
    assert store.retention(KEY) == Retention("COMPLIANCE", until, ("case-9",))
    assert store.list() == [KEY]  # the sidecar is not an archive object


def test_retention_normalises_to_utc_whole_seconds() -> None:
    plus2 = timezone(timedelta(hours=2))
    r = Retention("GOVERNANCE", datetime(2040, 1, 1, 12, 0, 0, 1, tzinfo=plus2), ("b", "a", "b"))
    assert r.retain_until == datetime(2040, 1, 1, 10, 0, 1, tzinfo=UTC)  # rounded up
    assert r.legal_holds == ("a", "b")
    with pytest.raises(ValueError, match="timezone-aware"):
        Retention("COMPLIANCE", datetime(2040, 1, 1))
    with pytest.raises(ValueError, match="mode"):
        Retention("compliance", future())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="case id"):
        Retention("COMPLIANCE", future(), ("",))


def test_delete_refused_under_retention(store: ArchiveStore) -> None:
    store.put(KEY, b"x", retention=keep())
    with pytest.raises(RetentionError, match="COMPLIANCE retention until"):
        store.delete(KEY)
    assert store.get(KEY) == b"x"


def test_delete_refused_under_legal_hold_after_expiry(store: ArchiveStore) -> None:
    store.put(KEY, b"x", retention=expired("case-1"))
    with pytest.raises(RetentionError, match="legal hold"):
        store.delete(KEY)
    assert store.exists(KEY)


def test_delete_allowed_after_expiry_without_hold(store: ArchiveStore, tmp_path: Path) -> None:
    store.put(KEY, b"x", retention=expired())
    store.put("other", b"y", retention=keep())
    store.delete(KEY)
    assert not store.exists(KEY)
    assert store.list() == ["other"]
    assert not (tmp_path / "archive" / "_retention" / f"{KEY}.json").exists()
    with pytest.raises(ObjectMissingError):
        store.delete(KEY)


def test_delete_refused_when_the_retention_record_is_missing(
    store: ArchiveStore, tmp_path: Path
) -> None:
    store.put(KEY, b"x", retention=expired())
    (tmp_path / "archive" / "_retention" / f"{KEY}.json").unlink()
    with pytest.raises(ArchiveError, match="retention record"):
        store.retention(KEY)
    with pytest.raises(RetentionError, match="retention record is missing"):
        store.delete(KEY)
    store.put(KEY, b"x", retention=keep())  # an idempotent re-put repairs the record
    assert store.retention(KEY).retain_until == future(30)


def test_leftover_sidecar_from_a_crash_is_merged_never_shortened(
    store: ArchiveStore, tmp_path: Path
) -> None:
    store.put(KEY, b"x", retention=keep(90, "case-1"))
    (tmp_path / "archive" / KEY).unlink()  # as if the process died before linking the data
    store.put(KEY, b"x", retention=Retention("GOVERNANCE", future(10)))
    got = store.retention(KEY)
    assert got == Retention("COMPLIANCE", future(90), ("case-1",))


def test_extend_retention_only_lengthens(store: ArchiveStore, tmp_path: Path) -> None:
    store.put(KEY, b"x", retention=Retention("COMPLIANCE", future(30)))
    with pytest.raises(RetentionError, match="shorten"):
        store.extend_retention(KEY, future(29))
    assert store.retention(KEY).retain_until == future(30)
    store.extend_retention(KEY, future(30))  # same date: no-op
    store.extend_retention(KEY, future(365))
    assert store.retention(KEY) == Retention("COMPLIANCE", future(365))
    assert sidecar(tmp_path, KEY)["enforced"] is False
    with pytest.raises(ValueError, match="timezone-aware"):
        store.extend_retention(KEY, datetime(2099, 1, 1))
    with pytest.raises(ObjectMissingError):
        store.extend_retention("missing", future(400))


def test_extend_keeps_governance_mode(store: ArchiveStore) -> None:
    store.put(KEY, b"x", retention=Retention("GOVERNANCE", future(1)))
    store.extend_retention(KEY, future(2))
    assert store.retention(KEY).mode == "GOVERNANCE"


def test_legal_holds_by_case(store: ArchiveStore, tmp_path: Path) -> None:
    store.put(KEY, b"x", retention=expired())
    store.set_legal_hold(KEY, "case-A", True)
    store.set_legal_hold(KEY, "case-B", True)
    store.set_legal_hold(KEY, "case-B", True)  # idempotent
    assert store.retention(KEY).legal_holds == ("case-A", "case-B")
    store.set_legal_hold(KEY, "case-A", False)
    assert store.retention(KEY).legal_holds == ("case-B",)
    with pytest.raises(RetentionError, match="case-B"):
        store.delete(KEY)  # still held by the other case
    store.set_legal_hold(KEY, "case-B", False)
    assert sidecar(tmp_path, KEY)["legal_holds"] == []
    store.delete(KEY)
    assert not store.exists(KEY)


def test_legal_hold_needs_an_object_and_a_case_id(store: ArchiveStore) -> None:
    with pytest.raises(ObjectMissingError):
        store.set_legal_hold("missing", "case-1", True)
    store.put(KEY, b"x", retention=keep())
    with pytest.raises(ValueError, match="case id"):
        store.set_legal_hold(KEY, " ", True)


def test_unreadable_sidecar_is_an_archive_error(store: ArchiveStore, tmp_path: Path) -> None:
    store.put(KEY, b"x", retention=keep())
    (tmp_path / "archive" / "_retention" / f"{KEY}.json").write_text("{not json")
    with pytest.raises(ArchiveError, match="unreadable"):
        store.retention(KEY)
    with pytest.raises(ArchiveError):
        store.delete(KEY)
    assert os.path.exists(tmp_path / "archive" / KEY)
