"""Errors raised by the archive stores."""

from __future__ import annotations

from sealtrail.errors import ConfigError, TransportError

__all__ = [
    "ArchiveError",
    "ArchiveUrlError",
    "NoRetentionError",
    "ObjectExistsError",
    "ObjectMissingError",
    "RetentionError",
]


class ArchiveError(TransportError):
    """The archive could not be read or written; the message names the store, key and step."""


class ObjectExistsError(ArchiveError):
    """A different object already exists at the key; archived objects are never overwritten."""

    def __init__(self, key: str, where: str) -> None:
        super().__init__(
            f"archive object {key!r} already exists in {where} with different content; "
            "archived objects are never overwritten"
        )
        self.key = key


class ObjectMissingError(ArchiveError):
    """No object at the key."""

    def __init__(self, key: str, where: str) -> None:
        super().__init__(f"archive object {key!r} not found in {where}")
        self.key = key


class NoRetentionError(ArchiveError):
    """The object exists but carries no retention (no Object Lock, or no retention record):
    the answer to "how is it retained" is "not at all", not a failure to ask."""


class RetentionError(ArchiveError):
    """Refused: the request would delete a retained or held object, or shorten/weaken retention."""


class ArchiveUrlError(ConfigError, ValueError):
    """The archive URL is not a directory, ``file://`` or ``s3://bucket[/prefix]`` URL."""
