"""Exception types. Two roots: the data is bad, or the transport failed.

Library code and the command handlers raise these; only the CLI's ``main`` prints them and
chooses the exit code (``sealtrail.cli.main``): :class:`IntegrityError` and
:class:`VerificationFailedError` exit 1, every other :class:`SealtrailError` exits 2.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "DecodeError",
    "EventValidationError",
    "IntegrityError",
    "KeyMaterialError",
    "MalformedInputError",
    "NativeUnsupportedError",
    "PolicyError",
    "SealtrailError",
    "TransportError",
    "VerificationFailedError",
]


class SealtrailError(Exception):
    """Root of every sealtrail error."""


class ConfigError(SealtrailError):
    """The configuration or the command line is wrong; the message says what to change."""


class TransportError(SealtrailError):
    """A broker, registry or archive could not be reached or refused the request."""


class DataError(SealtrailError):
    """The data itself is bad (undecodable, invalid, tampered)."""


class DecodeError(DataError):
    """Bytes that are not a valid record of the expected format."""


class EventValidationError(DataError, ValueError):
    """An audit event does not match its schema; ``field`` names the offending path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"invalid audit event: field {field!r}: {message}")
        self.field = field
        self.detail = message


class PolicyError(DataError):
    """A redaction policy file is invalid; the message names the rule and the problem."""


class KeyMaterialError(DataError):
    """A signing key or keyring is missing, malformed or not trusted for this use."""


class MalformedInputError(DataError):
    """A file given to a command is not the kind of file it checks: unreadable, too large,
    nested too deeply, or not of the expected structure and types. Nothing was checked,
    so this is not failed evidence: the CLI exits 2, not 1."""


class IntegrityError(DataError):
    """Evidence of tampering: a hash, link, signature or checkpoint does not check out."""


class VerificationFailedError(DataError):
    """A check ran to its end and the evidence does not hold: a chain broken, a proof or
    bundle that does not verify, a witness that refuses, an alert firing under --strict.
    What broke has been reported already; the message sums it up. The CLI exits 1 (and for
    nothing else but :class:`IntegrityError`)."""


class NativeUnsupportedError(SealtrailError):
    """The native (C) path does not take this schema or file: the caller falls back to the
    reference path (fastavro, the Python segment reader), which reads it or names what is
    wrong. Never reaches a user."""
