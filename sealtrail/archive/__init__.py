"""Archive storage: write-once objects with retention and legal holds (guarantee G5).

Two stores implement :class:`ArchiveStore`:

* a local directory (``/path`` or ``file:///path``), the embedded default. It records
  retention and legal holds in sidecar files under ``<root>/_retention/`` and says plainly
  that the file system does not enforce them (``enforces_retention`` is False);
* S3 with Object Lock (``s3://bucket/prefix``), where the server enforces retention.

Both refuse, in sealtrail's own code, to overwrite an object, to shorten retention or weaken
its mode, and to delete an object under retention or legal hold.
"""

from __future__ import annotations

import builtins
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from sealtrail.archive._errors import (
    ArchiveError,
    ArchiveUrlError,
    NoRetentionError,
    ObjectExistsError,
    ObjectMissingError,
    RetentionError,
)

__all__ = [
    "ArchiveError",
    "ArchiveStore",
    "ArchiveUrlError",
    "NoRetentionError",
    "ObjectExistsError",
    "ObjectMissingError",
    "Retention",
    "RetentionError",
    "RetentionMode",
    "open_archive",
    "open_store",
    "validate_key",
]

RetentionMode = Literal["COMPLIANCE", "GOVERNANCE"]
_MODES: tuple[str, ...] = ("COMPLIANCE", "GOVERNANCE")
#: First key components reserved for store-internal metadata.
RESERVED_TOP_LEVEL = frozenset({"_retention", "_holds"})
#: Name prefix of the local store's temporary files; no key part may start with it.
TMP_PREFIX = ".sealtrail-tmp-"
_MAX_CASE_ID = 256
_CLASS_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def utc_seconds(when: datetime) -> datetime:
    """``when`` in UTC, rounded *up* to the whole second (never earlier than asked).

    Raises ValueError for a naive datetime: retention dates must say their time zone.
    """
    if not isinstance(when, datetime):
        raise TypeError(f"retain_until must be a datetime, not {type(when).__name__}")
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"retain_until must be timezone-aware (UTC), got naive {when!r}")
    utc = when.astimezone(UTC)
    if utc.microsecond:
        utc = utc.replace(microsecond=0) + timedelta(seconds=1)
    return utc


def check_case_id(case_id: str) -> str:
    """Validate a legal-hold case id: non-empty printable text, at most 256 characters."""
    if not isinstance(case_id, str) or not case_id.strip():
        raise ValueError(f"legal hold case id must be a non-empty string, got {case_id!r}")
    if len(case_id) > _MAX_CASE_ID or not case_id.isprintable():
        raise ValueError(
            f"legal hold case id must be printable and at most {_MAX_CASE_ID} characters, "
            f"got {case_id!r}"
        )
    return case_id


@dataclass(frozen=True)
class Retention:
    """Retention of one archived object.

    ``retain_until`` is normalised to UTC and rounded up to the whole second (S3 keeps
    second precision); ``legal_holds`` to a sorted tuple of distinct case ids.
    """

    mode: RetentionMode
    retain_until: datetime
    legal_holds: tuple[str, ...] = field(default=())
    retention_class: str | None = None
    """The retention class the date was derived from (sealtrail.governance.retention)."""

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ValueError(f"retention mode must be one of {_MODES}, got {self.mode!r}")
        if self.retention_class is not None and not _CLASS_RE.match(self.retention_class):
            raise ValueError(f"retention class must match {_CLASS_RE.pattern}, "
                             f"got {self.retention_class!r}")
        object.__setattr__(self, "retain_until", utc_seconds(self.retain_until))
        if isinstance(self.legal_holds, str):
            raise TypeError("legal_holds must be a tuple of case ids, not a string")
        holds = tuple(sorted({check_case_id(c) for c in self.legal_holds}))
        object.__setattr__(self, "legal_holds", holds)

    def refusal(self, key: str, now: datetime | None = None) -> str | None:
        """Why deleting ``key`` must be refused now, or None if it may be deleted."""
        now = datetime.now(UTC) if now is None else now
        reasons = []
        if self.retain_until > now:
            reasons.append(f"{self.mode} retention until {iso_z(self.retain_until)}")
        if self.legal_holds:
            reasons.append(f"legal hold(s) {', '.join(self.legal_holds)}")
        if not reasons:
            return None
        return f"refusing to delete {key!r}: under {' and '.join(reasons)}"


def iso_z(when: datetime) -> str:
    """ISO-8601 UTC with a ``Z`` suffix, whole seconds: ``2031-01-02T03:04:05Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso_z(text: str) -> datetime:
    """Inverse of :func:`iso_z` (accepts any ISO-8601 form with an offset)."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return utc_seconds(parsed)


def validate_key(key: str) -> str:
    """Check an archive key: a '/'-separated relative path. Returns it; raises ValueError.

    Rejected: empty keys, a leading '/', backslashes, empty, '.' or '..' parts, control
    characters, and names reserved for store metadata (``_retention/``, ``_holds/``).
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"archive key must be a non-empty string, got {key!r}")
    if key.startswith("/"):
        raise ValueError(f"archive key must be relative (no leading '/'): {key!r}")
    if "\\" in key:
        raise ValueError(f"archive key must use '/' separators, not backslashes: {key!r}")
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in key):
        raise ValueError(f"archive key must not contain control characters: {key!r}")
    parts = key.split("/")
    if any(p == "" for p in parts):
        raise ValueError(f"archive key must not have empty parts ('//' or trailing '/'): {key!r}")
    if any(p in (".", "..") for p in parts):
        raise ValueError(f"archive key must not contain '.' or '..' parts: {key!r}")
    if parts[0] in RESERVED_TOP_LEVEL:
        raise ValueError(f"archive key {key!r} uses the reserved prefix {parts[0]!r}/")
    if any(p.startswith(TMP_PREFIX) for p in parts):
        raise ValueError(f"archive key {key!r} uses the reserved name prefix {TMP_PREFIX!r}")
    return key


def validate_prefix(prefix: str) -> str:
    """Check a list() prefix: '' or the start of a key (may end with '/')."""
    if prefix:
        validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


@runtime_checkable
class ArchiveStore(Protocol):
    """Write-once object storage for segments and checkpoints."""

    url: str
    """Canonical URL of the archive root."""
    enforces_retention: bool
    """True for S3 Object Lock; False for a local directory (retention only recorded)."""

    def put(self, key: str, data: bytes, *, retention: Retention) -> None:
        """Store ``data`` at ``key``; a no-op if identical bytes are there already.

        Raises ObjectExistsError if different bytes are there. Never overwrites.
        """
        ...

    def get(self, key: str) -> bytes:
        """The object's bytes; ObjectMissingError if absent."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``."""
        ...

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Sorted keys under ``prefix`` (a string prefix), without store metadata."""
        ...

    def retention(self, key: str) -> Retention:
        """Current retention mode, retain-until date and legal holds of ``key``."""
        ...

    def extend_retention(self, key: str, retain_until: datetime) -> None:
        """Lengthen retention (mode unchanged); RetentionError for an earlier date."""
        ...

    def set_legal_hold(self, key: str, case_id: str, on: bool) -> None:
        """Put (``on=True``) or release the legal hold of ``case_id`` on ``key``."""
        ...

    def delete(self, key: str) -> None:
        """Delete ``key``; RetentionError while under retention or any legal hold."""
        ...


def open_store(
    url: str | os.PathLike[str], *, s3_endpoint_url: str | None = None, region: str | None = None
) -> ArchiveStore:
    """Open the archive at ``url``: a directory path, ``file:///path`` or ``s3://bucket/prefix``.

    For S3 the endpoint is ``s3_endpoint_url`` (None means AWS; :func:`open_archive` passes
    the ``s3_endpoint_url`` setting, ``SEALTRAIL_S3_ENDPOINT_URL``), the region from
    ``region``, ``AWS_REGION`` or ``us-east-1``, and credentials from the standard AWS
    chain. No network request is made here.
    Raises ArchiveUrlError (a ValueError) for an unusable URL.
    """
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if not isinstance(url, str) or not url.strip():
        raise ArchiveUrlError("archive URL is empty; give a directory, file:// or s3:// URL")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "s3":
        from sealtrail.archive._s3 import S3Store

        if parts.query or parts.fragment:
            raise ArchiveUrlError(f"s3 archive URL must not have a query or fragment: {url!r}")
        prefix = parts.path.strip("/")
        if prefix:
            try:
                validate_key(prefix)
            except ValueError as exc:
                raise ArchiveUrlError(f"bad prefix in archive URL {url!r}: {exc}") from None
        endpoint = s3_endpoint_url or None
        region = region or os.environ.get("AWS_REGION") or "us-east-1"
        return S3Store(parts.netloc, prefix, endpoint_url=endpoint, region=region)

    from sealtrail.archive._local import LocalStore

    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ArchiveUrlError(f"file archive URL must be on this host (file:///path): {url!r}")
        if parts.query or parts.fragment:
            raise ArchiveUrlError(f"file archive URL must not have a query or fragment: {url!r}")
        return LocalStore(unquote(parts.path))
    if scheme and len(scheme) > 1:  # one letter would be a Windows drive, not a scheme
        raise ArchiveUrlError(
            f"unsupported archive URL scheme {parts.scheme!r} in {url!r}; "
            "use a directory path, file:///path or s3://bucket/prefix"
        )
    return LocalStore(url)


def open_archive(settings: Any, url: str | None = None) -> ArchiveStore:
    """The archive the configuration names (``url`` overrides ``settings.archive``), with
    its S3 endpoint override if any."""
    return open_store(url or settings.archive, s3_endpoint_url=settings.s3_endpoint_url or None)
