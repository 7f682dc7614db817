"""Where things live in an archive: see :mod:`sealtrail.core.layout` (the key names are
part of the format, so they live in the functional core; this module keeps the old
import path)."""

from sealtrail.core.layout import (
    CHAINS,
    INDEX,
    chain_ids,
    checkpoint_key,
    index_key,
    parse_index,
    schema_key,
    segment_key,
)

__all__ = ["CHAINS", "INDEX", "chain_ids", "checkpoint_key", "index_key", "parse_index",
           "schema_key", "segment_key"]
