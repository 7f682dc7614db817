"""What the sealer does when one raw record's path fails in a way nobody planned for.

G10: no record may stop the trail. The sealer wraps each record's whole path (decode,
dedupe, redact, seal, encode) in one ``try``; whatever escapes it, except a transport
failure (retried, never a rejection), becomes a sealed ``REJECTION`` with reason
``INTERNAL``, built here from nothing the record controls: the exception's type and the
place it was raised, never its message (which may quote the value, G9).
"""

from __future__ import annotations

import os
import traceback

from sealtrail.pipeline.decode import Rejected

__all__ = ["DLQ_MAX_BYTES", "dlq_value", "header_schema_id", "internal_rejection"]

#: The largest raw value copied to the dead-letter topic: librdkafka refuses to produce a
#: message over its message.max.bytes (1,000,000 by default), which a raw record accepted
#: by a broker with a larger limit can exceed. A larger value is left in the raw topic; its
#: rejection entry still holds its SHA-256 and size.
DLQ_MAX_BYTES = 900_000


def header_schema_id(value: bytes | None) -> int | None:
    """The schema id of a Confluent wire header at the start of ``value``, if it has one."""
    if value is None or len(value) < 5 or value[0] != 0:
        return None
    return int.from_bytes(value[1:5], "big")


def _where(exc: BaseException) -> str:
    """``file:line in function`` of the innermost frame of ``exc``'s traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "an unknown place"
    last = frames[-1]
    return f"{os.path.basename(last.filename)}:{last.lineno} in {last.name}"


def internal_rejection(exc: BaseException, value: bytes | None) -> Rejected:
    """The rejection for a record whose path raised ``exc`` unexpectedly."""
    size = 0 if value is None else len(value)
    return Rejected("INTERNAL", f"the sealer failed on this record of {size} bytes: "
                    f"{type(exc).__name__} at {_where(exc)} (a sealtrail bug: please report it "
                    "with this detail)", header_schema_id(value))


def dlq_value(value: bytes | None) -> tuple[bytes | None, dict[str, str]]:
    """The value to copy to the dead-letter topic and the extra headers saying why it was
    left out, when it was."""
    if value is not None and len(value) > DLQ_MAX_BYTES:
        return None, {"value_omitted": f"{len(value)} bytes, over the dead-letter limit of "
                      f"{DLQ_MAX_BYTES}"}
    return value, {}
