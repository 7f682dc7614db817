"""One record of a segment as the native segment reader returns it (a plain tuple, made
in C: the hot loop unpacks it). The indices are named here, in the core, because the
verification core checks rows; :mod:`sealtrail.archive.fast_segments` makes them.

``record_json`` is the canonical JSON of the whole record, ``body`` the canonical bytes
of its entry body; the rest are its fields (:data:`CAPTURED`).
"""

from __future__ import annotations

from typing import Final

__all__ = ["BODY", "CAPTURED", "CHAIN_ID", "ENTRY_HASH", "EPOCH", "EVENT", "INGESTED_AT",
           "KEY_ID", "OFFSET", "PARTITION", "PREV_HASH", "RECORD_JSON", "SEQ", "SIGNATURE",
           "Row"]

# What a chain check needs of each record, in the order of a row after its two texts.
# ("event" is None for a rejection, else the index of its union branch.)
CAPTURED = ("chain_id", "seq", "epoch", "prev_hash", "entry_hash", "key_id", "signature",
            "ingested_at", "source.partition", "source.offset", "event")

# (record_json, body, chain_id, seq, epoch, prev_hash, entry_hash, key_id, signature,
#  ingested_at, partition, offset, event)
Row = tuple[bytes, bytes, str, int, int, bytes, bytes, str, bytes, int, int, int, int | None]
RECORD_JSON: Final = 0
BODY: Final = 1
CHAIN_ID: Final = 2
SEQ: Final = 3
EPOCH: Final = 4
PREV_HASH: Final = 5
ENTRY_HASH: Final = 6
KEY_ID: Final = 7
SIGNATURE: Final = 8
INGESTED_AT: Final = 9
PARTITION: Final = 10
OFFSET: Final = 11
EVENT: Final = 12
