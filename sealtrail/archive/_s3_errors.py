r"""S3 failures as actionable :class:`ArchiveError`\ s: what could not be done, where, why,
and what to check; never a credential (a user:password@ part of an endpoint is dropped)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from sealtrail.archive._errors import ArchiveError, ObjectMissingError

__all__ = ["NOT_FOUND", "code_of", "redact_url", "s3_error", "status_of"]

#: Error codes S3 and compatible servers give for a key or version that is not there.
NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchVersion"})


def code_of(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def status_of(exc: ClientError) -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def redact_url(url: str) -> str:
    """Drop any user:password@ part of an endpoint URL before it goes into a message."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def s3_error(action: str, where: str, key: str | None, store_url: str, endpoint: str,
             exc: Exception) -> ArchiveError:
    """An actionable ArchiveError for a botocore failure to ``action`` ``where`` (the
    object ``key`` of the store at ``store_url``, or the store itself when None)."""
    if isinstance(exc, ClientError):
        code, status = code_of(exc), status_of(exc)
        if key is not None and code in NOT_FOUND:
            return ObjectMissingError(key, store_url)
        message = str(exc.response.get("Error", {}).get("Message", "")).strip()
        text = f"S3 could not {action} {where}: {code or 'error'} (HTTP {status})"
        if message:
            text += f": {message}"
        return ArchiveError(text + _hint(code, message))
    if isinstance(exc, NoCredentialsError):
        return ArchiveError(
            f"S3 could not {action} {where}: no AWS credentials found; configure the "
            "standard AWS credential chain (environment, profile or instance role)"
        )
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        return ArchiveError(
            f"S3 could not {action} {where}: cannot reach {endpoint} "
            f"({type(exc).__name__}); check SEALTRAIL_S3_ENDPOINT_URL and the network"
        )
    return ArchiveError(f"S3 could not {action} {where}: {type(exc).__name__}: {exc}")


def _hint(code: str, message: str) -> str:
    if code == "NoSuchBucket":
        return "; create the bucket with Object Lock enabled, or fix the archive URL"
    if code == "InvalidRequest" and "objectlock" in message.replace(" ", "").lower():
        return "; the bucket must be created with Object Lock enabled"
    if code in ("AccessDenied", "403", "Forbidden"):
        return (
            "; check that the IAM policy allows this action on the bucket, and that Object "
            "Lock retention or a legal hold does not forbid it"
        )
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
        return "; the AWS credentials were rejected: check the credential chain"
    if code == "ConditionalRequestConflict":
        return "; a concurrent write to the same key is in progress: retry"
    return ""
