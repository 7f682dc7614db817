"""Where things live in an archive (docs/format.md, "Archive layout"). Pure string
functions: the key names are part of the format.

    chains/<chain_id>/segments/<index:010d>.avro      Avro container of SealedRecords
    chains/<chain_id>/checkpoints/<index:010d>.json   the signed checkpoint of that segment
    index/<seq:010d>.json                             the signed archive index (format v2)
    schemas/<schema_id:010d>.json                     the writer schema of archived events
"""

from __future__ import annotations

import re

__all__ = ["CHAINS", "INDEX", "chain_ids", "checkpoint_key", "index_key", "parse_index",
           "schema_key", "segment_key"]

CHAINS = "chains/"
INDEX = "index/"
_INDEX = re.compile(r"^(\d{10})\.(avro|json)$")


def segment_key(chain_id: str, index: int) -> str:
    return f"{CHAINS}{chain_id}/segments/{index:010d}.avro"


def checkpoint_key(chain_id: str, index: int) -> str:
    return f"{CHAINS}{chain_id}/checkpoints/{index:010d}.json"


def index_key(seq: int) -> str:
    """The key of archive index number ``seq``."""
    return f"{INDEX}{seq:010d}.json"


def schema_key(schema_id: int) -> str:
    return f"schemas/{schema_id:010d}.json"


def parse_index(key: str) -> int | None:
    """The number in a segment, checkpoint or index key, None for anything else."""
    m = _INDEX.match(key.rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None


def chain_ids(keys: list[str]) -> list[str]:
    """The chain ids present in a listing of archive keys."""
    found = {k[len(CHAINS):].split("/", 1)[0] for k in keys if k.startswith(CHAINS)}
    return sorted(found)
