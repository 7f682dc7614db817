"""S3 archive store against a real moto S3 server subprocess on loopback, through boto3 (G5).

moto refuses deleting a locked version, but accepts a shortened COMPLIANCE retention that
real S3 refuses; so these tests check sealtrail's own refusals, and show moto's leniency
with a raw call to prove the check is meaningful.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from helpers.moto_server import (
    ACCESS_KEY,
    SECRET_KEY,
    make_locked_bucket,
    moto_s3_server,
    raw_client,
)

from sealtrail.archive import (
    ArchiveError,
    ArchiveStore,
    ObjectExistsError,
    ObjectMissingError,
    Retention,
    RetentionError,
    open_archive,
    open_store,
)
from sealtrail.archive._s3 import UNTRACKED_HOLD, S3Store
from sealtrail.config import load_settings

pytestmark = pytest.mark.s3

BUCKET = "sealtrail-archive"
KEY = "chains/c-1/segments/0000000001.avro"
NOW = datetime.now(UTC).replace(microsecond=0)


def future(days: int = 30) -> datetime:
    return NOW + timedelta(days=days)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_s3_server() as url:
        make_locked_bucket(url, BUCKET)
        yield url


@pytest.fixture(scope="module")
def raw(endpoint: str) -> Any:
    return raw_client(endpoint)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Test credentials for the store's default credential chain, isolated from ~/.aws."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "SEALTRAIL_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(endpoint: str, aws_env: None, prefix: str) -> ArchiveStore:
    return open_store(f"s3://{BUCKET}/{prefix}", s3_endpoint_url=endpoint)


def keep(days: int = 30, *holds: str) -> Retention:
    return Retention("COMPLIANCE", future(days), holds)


def head(raw: Any, key: str, **kwargs: Any) -> dict[str, Any]:
    return dict(raw.head_object(Bucket=BUCKET, Key=key, **kwargs))


def versions(raw: Any, key: str) -> list[dict[str, Any]]:
    resp = raw.list_object_versions(Bucket=BUCKET, Prefix=key)
    return [v for v in resp.get("Versions", []) if v["Key"] == key]


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


# -- writing ------------------------------------------------------------------------------


def test_put_sets_compliance_retention_and_sha256_checksum(
    store: ArchiveStore, raw: Any, prefix: str
) -> None:
    data = b"segment bytes \x00\x01"
    store.put(KEY, data, retention=keep(30))
    meta = head(raw, f"{prefix}/{KEY}", ChecksumMode="ENABLED")
    assert meta["ObjectLockMode"] == "COMPLIANCE"
    assert meta["ObjectLockRetainUntilDate"].astimezone(UTC) == future(30)
    assert meta["ChecksumSHA256"] == sha256_b64(data)
    assert "ObjectLockLegalHoldStatus" not in meta
    assert store.get(KEY) == data
    assert store.exists(KEY) and not store.exists("chains/c-1/segments/0000000002.avro")
    assert store.retention(KEY) == Retention("COMPLIANCE", future(30))
    assert store.url == f"s3://{BUCKET}/{prefix}"
    assert store.enforces_retention is True
    assert isinstance(store, S3Store) and isinstance(store, ArchiveStore)


def test_sub_second_retain_until_is_rounded_up_not_down(
    store: ArchiveStore, raw: Any, prefix: str
) -> None:
    asked = future(1) + timedelta(microseconds=250_000)
    store.put(KEY, b"x", retention=Retention("COMPLIANCE", asked))
    stored = head(raw, f"{prefix}/{KEY}")["ObjectLockRetainUntilDate"].astimezone(UTC)
    assert stored >= asked and stored == future(1) + timedelta(seconds=1)


def test_conditional_put_is_idempotent_and_never_overwrites(
    store: ArchiveStore, raw: Any, prefix: str
) -> None:
    store.put(KEY, b"original", retention=keep())
    store.put(KEY, b"original", retention=keep())  # retry after a lost response
    assert len(versions(raw, f"{prefix}/{KEY}")) == 1
    with pytest.raises(ObjectExistsError, match=re.escape(KEY)):
        store.put(KEY, b"tampered", retention=keep())
    assert store.get(KEY) == b"original"
    assert len(versions(raw, f"{prefix}/{KEY}")) == 1


def test_list_is_sorted_relative_and_skips_hold_records(
    store: ArchiveStore, raw: Any, prefix: str
) -> None:
    keys = ["chains/c-2/a", "chains/c-1/b", "chains/c-1/a", "z"]
    for key in keys:
        store.put(key, key.encode(), retention=keep())
    store.set_legal_hold("z", "case-1", True)
    raw.put_object(Bucket=BUCKET, Key=f"{prefix}x/outside", Body=b"not ours")  # sibling prefix
    assert store.list() == sorted(keys)
    assert store.list("chains/c-1/") == ["chains/c-1/a", "chains/c-1/b"]
    assert store.list("nothing") == []


def test_list_follows_pagination(endpoint: str, raw: Any, aws_env: None, prefix: str) -> None:
    class SmallPages:
        """Delegates to the real client but asks for pages of two keys."""

        def __getattr__(self, name: str) -> Any:
            return getattr(raw, name)

        def get_paginator(self, op: str) -> Any:
            real = raw.get_paginator(op)

            class Paginator:
                def paginate(self, **kw: Any) -> Any:
                    return real.paginate(PaginationConfig={"PageSize": 2}, **kw)

            return Paginator()

    store = S3Store(BUCKET, prefix, client=SmallPages())
    keys = [f"k/{i:03d}" for i in range(7)]
    for key in reversed(keys):
        store.put(key, b"x", retention=keep())
    assert store.list() == keys


# -- deletion -----------------------------------------------------------------------------


def test_locked_version_cannot_be_deleted(store: ArchiveStore, raw: Any, prefix: str) -> None:
    store.put(KEY, b"x", retention=keep())
    full = f"{prefix}/{KEY}"
    version_id = head(raw, full)["VersionId"]
    with pytest.raises(ClientError) as info:  # the server refuses too...
        raw.delete_object(Bucket=BUCKET, Key=full, VersionId=version_id)
    assert info.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(RetentionError, match="COMPLIANCE retention until"):  # ...and so do we
        store.delete(KEY)
    assert store.get(KEY) == b"x"
    assert [v["VersionId"] for v in versions(raw, full)] == [version_id]


def test_delete_after_expiry_removes_every_version(
    store: ArchiveStore, raw: Any, prefix: str
) -> None:
    past = Retention("COMPLIANCE", NOW - timedelta(days=1))
    store.put(KEY, b"x", retention=past)
    store.set_legal_hold(KEY, "case-1", True)
    with pytest.raises(RetentionError, match="case-1"):
        store.delete(KEY)
    store.set_legal_hold(KEY, "case-1", False)
    store.delete(KEY)
    assert not store.exists(KEY)
    assert versions(raw, f"{prefix}/{KEY}") == []
    assert store.list() == []
    with pytest.raises(ObjectMissingError):
        store.delete(KEY)


def test_hold_set_outside_sealtrail_still_blocks_delete(
    store: ArchiveStore, raw: Any, prefix: str
) -> None:
    store.put(KEY, b"x", retention=Retention("COMPLIANCE", NOW - timedelta(days=1)))
    raw.put_object_legal_hold(Bucket=BUCKET, Key=f"{prefix}/{KEY}", LegalHold={"Status": "ON"})
    assert store.retention(KEY).legal_holds == (UNTRACKED_HOLD,)
    with pytest.raises(RetentionError, match="legal hold"):
        store.delete(KEY)
    store.set_legal_hold(KEY, UNTRACKED_HOLD, False)  # releasing it through sealtrail works
    assert store.retention(KEY).legal_holds == ()


# -- retention ----------------------------------------------------------------------------


def test_extend_retention_refuses_shortening_that_moto_would_accept(
    store: ArchiveStore, raw: Any, prefix: str
) -> None:
    # moto accepts a shortened COMPLIANCE retention (real S3 refuses): show it on a raw object.
    store.put("control", b"c", retention=keep(30))
    raw.put_object_retention(
        Bucket=BUCKET,
        Key=f"{prefix}/control",
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": future(1)},
    )
    control = head(raw, f"{prefix}/control")["ObjectLockRetainUntilDate"].astimezone(UTC)
    assert control == future(1), "moto now refuses shortening; this test can rely on it"

    store.put(KEY, b"x", retention=keep(30))
    with pytest.raises(RetentionError, match="shorten"):
        store.extend_retention(KEY, future(1))
    meta = head(raw, f"{prefix}/{KEY}")
    assert meta["ObjectLockRetainUntilDate"].astimezone(UTC) == future(30)

    store.extend_retention(KEY, future(30))  # same date: no request, no change
    store.extend_retention(KEY, future(400))
    meta = head(raw, f"{prefix}/{KEY}")
    assert meta["ObjectLockMode"] == "COMPLIANCE"
    assert meta["ObjectLockRetainUntilDate"].astimezone(UTC) == future(400)
    assert store.retention(KEY) == Retention("COMPLIANCE", future(400))


def test_extend_keeps_governance_mode(store: ArchiveStore, raw: Any, prefix: str) -> None:
    store.put(KEY, b"x", retention=Retention("GOVERNANCE", future(1)))
    store.extend_retention(KEY, future(2))
    assert head(raw, f"{prefix}/{KEY}")["ObjectLockMode"] == "GOVERNANCE"
    assert store.retention(KEY) == Retention("GOVERNANCE", future(2))


def test_legal_holds_by_case(store: ArchiveStore, raw: Any, prefix: str) -> None:
    full = f"{prefix}/{KEY}"
    store.put(KEY, b"x", retention=keep())
    store.set_legal_hold(KEY, "case-A", True)
    store.set_legal_hold(KEY, "case-B", True)
    assert head(raw, full)["ObjectLockLegalHoldStatus"] == "ON"
    assert store.retention(KEY).legal_holds == ("case-A", "case-B")
    record = json.loads(
        raw.get_object(Bucket=BUCKET, Key=f"{prefix}/_holds/{KEY}.json")["Body"].read()
    )
    assert record["cases"] == ["case-A", "case-B"]
    assert record["version_id"] == head(raw, full)["VersionId"]

    store.set_legal_hold(KEY, "case-A", False)
    assert head(raw, full)["ObjectLockLegalHoldStatus"] == "ON"  # case-B still holds it
    assert store.retention(KEY).legal_holds == ("case-B",)
    with pytest.raises(RetentionError, match="case-B"):
        store.delete(KEY)

    store.set_legal_hold(KEY, "case-B", False)
    assert head(raw, full).get("ObjectLockLegalHoldStatus", "OFF") == "OFF"
    assert store.retention(KEY).legal_holds == ()


def test_put_with_holds_sets_the_hold_at_write(store: ArchiveStore, raw: Any, prefix: str) -> None:
    store.put(KEY, b"x", retention=keep(30, "case-7"))
    assert head(raw, f"{prefix}/{KEY}")["ObjectLockLegalHoldStatus"] == "ON"
    assert store.retention(KEY).legal_holds == ("case-7",)
    with pytest.raises(ObjectMissingError):
        store.set_legal_hold("missing", "case-7", True)


# -- errors -------------------------------------------------------------------------------


def test_missing_objects(store: ArchiveStore) -> None:
    for op in (store.get, store.retention, store.delete):
        with pytest.raises(ObjectMissingError, match="nope"):
            op("nope")
    with pytest.raises(ObjectMissingError):
        store.extend_retention("nope", future(1))


def test_missing_bucket_is_an_actionable_error(endpoint: str, aws_env: None) -> None:
    store = open_store("s3://no-such-bucket/p", s3_endpoint_url=endpoint)
    with pytest.raises(ArchiveError, match=r"no-such-bucket.*NoSuchBucket.*Object Lock"):
        store.put(KEY, b"x", retention=keep())
    with pytest.raises(ArchiveError, match="NoSuchBucket"):
        store.list()


def test_bucket_without_object_lock_is_refused(endpoint: str, raw: Any, aws_env: None) -> None:
    raw.create_bucket(Bucket="plain-bucket")
    store = open_store("s3://plain-bucket", s3_endpoint_url=endpoint)
    with pytest.raises(ArchiveError, match="Object Lock enabled"):
        store.put(KEY, b"x", retention=keep())


def test_unreachable_endpoint_names_it_without_credentials(aws_env: None) -> None:
    store = S3Store(BUCKET, "p", endpoint_url="http://127.0.0.1:9", max_attempts=1)
    with pytest.raises(ArchiveError) as info:
        store.get(KEY)
    message = str(info.value)
    assert "cannot reach http://127.0.0.1:9" in message and KEY in message
    assert SECRET_KEY not in message.replace(KEY, "")


def test_endpoint_userinfo_is_redacted(aws_env: None) -> None:
    store = S3Store(BUCKET, "p", endpoint_url="http://user:s3cr3t@127.0.0.1:9", max_attempts=1)
    with pytest.raises(ArchiveError) as info:
        store.exists(KEY)
    assert "s3cr3t" not in str(info.value)


def test_endpoint_and_region_from_environment(
    endpoint: str, aws_env: None, monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    monkeypatch.setenv("SEALTRAIL_S3_ENDPOINT_URL", endpoint)  # read through Settings
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    store = open_archive(load_settings(), f"s3://{BUCKET}/{prefix}")
    store.put(KEY, b"via env", retention=keep())
    assert store.get(KEY) == b"via env"
