"""The legal-hold sidecar of an S3 archive: the set of case ids holding an object.

S3 has a single ON/OFF legal hold per object version, so the case ids live in a JSON
object ``<prefix>/_holds/<key>.json`` (``{"key", "version_id", "cases": [...]}``), changed
with conditional writes (``If-Match`` on its ETag, ``If-None-Match: *`` for a new one)
and retried when another writer changed it first.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import json
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sealtrail.archive import check_case_id
from sealtrail.archive._errors import ArchiveError
from sealtrail.archive._s3_errors import NOT_FOUND, code_of, status_of

__all__ = ["HOLDS_DIR", "HoldSidecar", "sha256_b64"]

#: The folder (under the archive's prefix) of the sidecars; never an archive key.
HOLDS_DIR = "_holds"
_UPDATE_ATTEMPTS = 8


def sha256_b64(data: bytes) -> str:
    """The base64 SHA-256 S3 takes (and checks) as ``ChecksumSHA256``."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


class HoldSidecar:
    """The sidecars of the store at ``s3://bucket/root``; ``error`` turns a botocore
    failure to do something to a key into an ArchiveError (the store's own messages)."""

    def __init__(self, client: Any, bucket: str, root: str,
                 error: Callable[[str, str | None, Exception], ArchiveError]) -> None:
        self._s3 = client
        self._bucket = bucket
        self._root = root
        self._error = error

    def key_of(self, key: str) -> str:
        """The object key of ``key``'s sidecar."""
        return f"{self._root}{HOLDS_DIR}/{key}.json"

    def read(self, key: str) -> tuple[builtins.list[str], str | None]:
        """(case ids, sidecar ETag or None if there is no sidecar)."""
        try:
            resp = self._s3.get_object(Bucket=self._bucket, Key=self.key_of(key))
            body = resp["Body"].read()
        except ClientError as exc:
            if code_of(exc) in NOT_FOUND:
                return [], None
            raise self._error("read the legal-hold record of", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("read the legal-hold record of", key, exc) from exc
        try:
            cases = json.loads(body)["cases"]
            if not isinstance(cases, builtins.list):
                raise TypeError("cases is not a list")
            return sorted({check_case_id(c) for c in cases}), str(resp["ETag"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ArchiveError(
                f"legal-hold record s3://{self._bucket}/{self.key_of(key)} is corrupt: {exc}"
            ) from exc

    def write(
        self, key: str, cases: builtins.list[str], etag: str | None, version_id: str | None
    ) -> bool:
        """Conditionally write the sidecar; False if someone else changed it first."""
        doc = {"key": key, "version_id": version_id, "cases": sorted(cases)}
        body = (json.dumps(doc, indent=2) + "\n").encode()
        cond = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=self.key_of(key),
                Body=body,
                ContentType="application/json",
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=sha256_b64(body),
                **cond,
            )
        except ClientError as exc:
            if status_of(exc) in (404, 409, 412) or code_of(exc) in (
                "PreconditionFailed",
                "ConditionalRequestConflict",
                "NoSuchKey",
            ):
                return False
            raise self._error("write the legal-hold record of", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("write the legal-hold record of", key, exc) from exc
        return True

    def update(
        self, key: str, add: tuple[str, ...], remove: tuple[str, ...], version_id: str | None
    ) -> builtins.list[str]:
        """Apply a change to the case set with optimistic concurrency; return the new set."""
        for _attempt in range(_UPDATE_ATTEMPTS):
            cases, etag = self.read(key)
            new = sorted((set(cases) | set(add)) - set(remove))
            if new == cases and (etag is not None or not new):
                return new
            if self.write(key, new, etag, version_id):
                return new
        raise ArchiveError(
            f"legal-hold record of s3://{self._bucket}/{self._root}{key} kept changing under "
            f"concurrent updates ({_UPDATE_ATTEMPTS} attempts); retry"
        )

    def delete(self, key: str) -> None:
        """Remove ``key``'s sidecar (the object itself is gone)."""
        try:
            self._s3.delete_object(Bucket=self._bucket, Key=self.key_of(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._error("delete the legal-hold record of", key, exc) from exc
