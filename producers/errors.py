"""Exceptions of the producer client (all under sealtrail.errors.SealtrailError)."""

from __future__ import annotations

from sealtrail.errors import SealtrailError

__all__ = ["ClientClosedError", "EmitBackpressureError", "SpoolFullError"]


class EmitBackpressureError(SealtrailError):
    """The event was NOT accepted because the client cannot take more right now; the
    caller decides whether to retry, fail the request or degrade."""


class SpoolFullError(EmitBackpressureError):
    """The durable spool reached its size bound and the full-spool policy gave up: the
    event was NOT accepted. Room comes back as soon as the broker acknowledges spooled
    events; fix the broker connection or raise spool_max_bytes."""


class ClientClosedError(SealtrailError):
    """emit() on a client that was closed."""
