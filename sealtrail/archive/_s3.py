"""S3 archive with Object Lock: the server enforces retention; sealtrail checks it too.

Objects live at ``<prefix>/<key>`` in a bucket created with Object Lock (hence versioning).
Every put is conditional (``If-None-Match: *``), carries a SHA-256 checksum that the server
verifies and stores, and sets the retention mode and retain-until date on the new version.

Legal holds: S3 has a single ON/OFF legal hold per object version, so sealtrail keeps the set
of case ids in a JSON sidecar object ``<prefix>/_holds/<key>.json`` (``_s3_holds``), updated
with conditional writes (``If-Match`` on its ETag, retried on conflict). The sidecar is
written first, then the version's legal hold is set ON while the set is non-empty and OFF
when it empties, so a crash in between always leaves the object held or recorded as held.
A hold set ON outside sealtrail shows up in :meth:`S3Store.retention` as the case id
``UNTRACKED_HOLD``.

Retention is read with HeadObject (which carries the lock headers), falling back to
GetObjectRetention / GetObjectLegalHold when the headers are absent.
"""

from __future__ import annotations

import builtins
import re
from datetime import UTC, datetime
from typing import Any, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from sealtrail.archive import (
    Retention,
    RetentionMode,
    check_case_id,
    iso_z,
    utc_seconds,
    validate_key,
    validate_prefix,
)
from sealtrail.archive._errors import (
    ArchiveError,
    ArchiveUrlError,
    NoRetentionError,
    ObjectExistsError,
    ObjectMissingError,
    RetentionError,
)
from sealtrail.archive._s3_errors import code_of, redact_url, s3_error, status_of
from sealtrail.archive._s3_holds import HOLDS_DIR, HoldSidecar, sha256_b64

__all__ = ["CLASS_TAG", "UNTRACKED_HOLD", "S3Store"]

#: Object tag naming an object's retention class; lifecycle rules filter on it.
CLASS_TAG = "sealtrail-retention-class"

#: Case id reported for a legal hold that is ON but not recorded in the holds sidecar.
UNTRACKED_HOLD = "(untracked)"
_NO_LOCK_CONFIG = "NoSuchObjectLockConfiguration"
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class S3Store:
    """Archive in ``s3://bucket/prefix`` under Object Lock."""

    enforces_retention: bool = True

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        client: Any = None,
        max_attempts: int = 3,
    ) -> None:
        if not _BUCKET_RE.match(bucket or "") or ".." in bucket:
            raise ArchiveUrlError(f"not a valid S3 bucket name: {bucket!r}")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self.bucket = bucket
        self.prefix = prefix
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self._root = f"{prefix}/" if prefix else ""
        self._endpoint = redact_url(endpoint_url) if endpoint_url else "the AWS S3 endpoint"
        if client is None:
            config = Config(
                retries={"max_attempts": max_attempts, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
                s3={"addressing_style": "path"} if endpoint_url else None,
            )
            client = boto3.session.Session().client(
                "s3", endpoint_url=endpoint_url, region_name=region, config=config
            )
        self._s3: Any = client
        self._holds = HoldSidecar(client, bucket, self._root, self._error)

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    # -- helpers ---------------------------------------------------------------------------

    def _full(self, key: str) -> str:
        return self._root + validate_key(key)

    def _error(self, action: str, key: str | None, exc: Exception) -> ArchiveError:
        """An actionable ArchiveError for a botocore failure (no credentials in it)."""
        where = f"s3://{self.bucket}/{self._root}{key}" if key else self.url
        return s3_error(action, where, key, self.url, self._endpoint, exc)

    def _head(self, key: str, version_id: str | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._full(key)}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            return dict(self._s3.head_object(**kwargs))
        except (ClientError, BotoCoreError) as exc:
            raise self._error("read the metadata of", key, exc) from exc

    def _lock_state(
        self, key: str, head: dict[str, Any]
    ) -> tuple[str | None, datetime | None, bool]:
        """(mode, retain_until, legal hold on) of the version described by ``head``."""
        mode = head.get("ObjectLockMode")
        until = head.get("ObjectLockRetainUntilDate")
        hold = head.get("ObjectLockLegalHoldStatus")
        version: dict[str, Any] = {"Bucket": self.bucket, "Key": self._full(key)}
        if head.get("VersionId"):
            version["VersionId"] = head["VersionId"]
        try:
            if mode is None or until is None:
                try:
                    found = self._s3.get_object_retention(**version).get("Retention", {})
                    mode, until = found.get("Mode"), found.get("RetainUntilDate")
                except ClientError as exc:
                    if code_of(exc) != _NO_LOCK_CONFIG:
                        raise
            if hold is None:
                try:
                    found = self._s3.get_object_legal_hold(**version).get("LegalHold", {})
                    hold = found.get("Status")
                except ClientError as exc:
                    if code_of(exc) != _NO_LOCK_CONFIG:
                        raise
        except (ClientError, BotoCoreError) as exc:
            raise self._error("read the Object Lock state of", key, exc) from exc
        return mode, (utc_seconds(until) if until is not None else None), hold == "ON"

    def _set_server_hold(self, key: str, version_id: str | None, on: bool) -> None:
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self._full(key),
            "LegalHold": {"Status": "ON" if on else "OFF"},
        }
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            self._s3.put_object_legal_hold(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._error("set the legal hold of", key, exc) from exc

    def _class_tag(self, key: str, head: dict[str, Any]) -> str | None:
        """The retention-class tag of the version described by ``head``, if any (None also
        when tags may not be read). AWS's HeadObject does not report TagCount; moto's does."""
        if head.get("TagCount", 1) == 0:
            return None
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._full(key)}
        if head.get("VersionId"):
            kwargs["VersionId"] = head["VersionId"]
        try:
            tags = self._s3.get_object_tagging(**kwargs).get("TagSet", ())
        except ClientError as exc:
            if code_of(exc) in ("AccessDenied", "403", "Forbidden"):
                return None
            raise self._error("read the tags of", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("read the tags of", key, exc) from exc
        for tag in tags:
            if tag.get("Key") == CLASS_TAG:
                return str(tag.get("Value"))
        return None

    # -- ArchiveStore ----------------------------------------------------------------------

    def put(self, key: str, data: bytes, *, retention: Retention) -> None:
        """Conditional, checksummed, retained write; identical re-put is a no-op."""
        full = self._full(key)
        if not isinstance(retention, Retention):
            raise TypeError("retention must be a sealtrail.archive.Retention")
        data = bytes(data)
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": full,
            "Body": data,
            "ObjectLockMode": retention.mode,
            "ObjectLockRetainUntilDate": retention.retain_until,
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": sha256_b64(data),
            "IfNoneMatch": "*",
        }
        if retention.legal_holds:
            kwargs["ObjectLockLegalHoldStatus"] = "ON"
        if retention.retention_class:
            kwargs["Tagging"] = f"{CLASS_TAG}={retention.retention_class}"
        try:
            resp = self._s3.put_object(**kwargs)
        except ClientError as exc:
            if code_of(exc) == "PreconditionFailed" or status_of(exc) == 412:
                if self.get(key) == data:
                    return
                raise ObjectExistsError(key, self.url) from None
            raise self._error("write", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("write", key, exc) from exc
        if retention.legal_holds:
            self._holds.update(key, retention.legal_holds, (), resp.get("VersionId"))

    def get(self, key: str) -> bytes:
        full = self._full(key)
        try:
            resp = self._s3.get_object(Bucket=self.bucket, Key=full, ChecksumMode="ENABLED")
            data: bytes = resp["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise self._error("read", key, exc) from exc
        stored = resp.get("ChecksumSHA256")
        if stored and "-" not in stored and stored != sha256_b64(data):
            raise ArchiveError(
                f"S3 returned bytes for s3://{self.bucket}/{full} whose SHA-256 does not match "
                "the stored checksum; the read was corrupted, retry"
            )
        return data

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except ObjectMissingError:
            return False
        return True

    def list(self, prefix: str = "") -> builtins.list[str]:
        validate_prefix(prefix)
        keys: list[str] = []
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._root + prefix
            )
            for page in pages:
                for obj in page.get("Contents", ()):
                    rel = obj["Key"][len(self._root) :]
                    if not rel.startswith(f"{HOLDS_DIR}/"):
                        keys.append(rel)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(f"list keys under prefix {prefix!r} of", None, exc) from exc
        keys.sort()
        return keys

    def retention(self, key: str) -> Retention:
        head = self._head(key)
        mode, until, hold_on = self._lock_state(key, head)
        if mode is None or until is None:
            raise NoRetentionError(
                f"s3://{self.bucket}/{self._full(key)} has no Object Lock retention: it was not "
                "written by sealtrail, or the bucket lacks Object Lock"
            )
        cases, _ = self._holds.read(key)
        holds = tuple(cases) or ((UNTRACKED_HOLD,) if hold_on else ())
        if mode not in ("COMPLIANCE", "GOVERNANCE"):
            raise ArchiveError(
                f"s3://{self.bucket}/{self._full(key)} has unknown lock mode {mode!r}"
            )
        return Retention(cast(RetentionMode, mode), until, holds, self._class_tag(key, head))

    def server_legal_hold(self, key: str) -> bool:
        """Whether the current version's legal hold is ON at the server (not the sidecar)."""
        return self._lock_state(key, self._head(key))[2]

    def extend_retention(self, key: str, retain_until: datetime) -> None:
        """Lengthen retention, keeping the mode. Checked here: S3-compatible servers differ."""
        new_until = utc_seconds(retain_until)
        head = self._head(key)
        mode, until, _ = self._lock_state(key, head)
        if mode is None or until is None:
            raise RetentionError(
                f"s3://{self.bucket}/{self._full(key)} has no Object Lock retention to extend"
            )
        if new_until < until:
            raise RetentionError(
                f"refusing to shorten retention of {key!r} from {iso_z(until)} to "
                f"{iso_z(new_until)}: retention only grows"
            )
        if new_until == until:
            return
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self._full(key),
            "Retention": {"Mode": mode, "RetainUntilDate": new_until},
        }
        if head.get("VersionId"):
            kwargs["VersionId"] = head["VersionId"]
        try:
            self._s3.put_object_retention(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._error("extend the retention of", key, exc) from exc

    def set_legal_hold(self, key: str, case_id: str, on: bool) -> None:
        """Record ``case_id`` in the holds sidecar, then sync the version's ON/OFF hold."""
        check_case_id(case_id)
        version_id = self._head(key).get("VersionId")
        change = (case_id,)
        cases = self._holds.update(key, change if on else (), () if on else change, version_id)
        self._set_server_hold(key, version_id, bool(cases))

    def delete(self, key: str) -> None:
        """Delete every version of ``key`` after checking each one's retention and hold."""
        full = self._full(key)
        cases, holds_etag = self._holds.read(key)
        if cases:
            raise RetentionError(
                f"refusing to delete {key!r}: under legal hold(s) {', '.join(cases)}"
            )
        versions: list[str] = []
        markers: list[str] = []
        try:
            pages = self._s3.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=full
            )
            for page in pages:
                for v in page.get("Versions", ()):
                    if v["Key"] == full:
                        versions.append(v["VersionId"])
                for m in page.get("DeleteMarkers", ()):
                    if m["Key"] == full:
                        markers.append(m["VersionId"])
        except (ClientError, BotoCoreError) as exc:
            raise self._error("list the versions of", key, exc) from exc
        if not versions:
            raise ObjectMissingError(key, self.url)
        now = datetime.now(UTC)
        for version_id in versions:
            mode, until, hold_on = self._lock_state(key, self._head(key, version_id))
            reasons = []
            if mode is not None and until is None:
                reasons.append(f"{mode} retention with an unreadable date")
            if until is not None and until > now:
                reasons.append(f"{mode or 'Object Lock'} retention until {iso_z(until)}")
            if hold_on:
                reasons.append("a legal hold")
            if reasons:
                raise RetentionError(
                    f"refusing to delete {key!r} (version {version_id}): under "
                    + " and ".join(reasons)
                )
        for version_id in versions + markers:
            try:
                self._s3.delete_object(Bucket=self.bucket, Key=full, VersionId=version_id)
            except (ClientError, BotoCoreError) as exc:
                raise self._error(f"delete version {version_id} of", key, exc) from exc
        if holds_etag is not None:
            self._holds.delete(key)
