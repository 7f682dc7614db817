"""Where things live in an archive (docs/format.md, "Archive layout").

    chains/<chain_id>/segments/<index:010d>.avro      Avro container of SealedRecords
    chains/<chain_id>/checkpoints/<index:010d>.json   the signed checkpoint of that segment
    schemas/<schema_id:010d>.json                     the writer schema of archived events
"""

from __future__ import annotations

import re

__all__ = ["CHAINS", "chain_ids", "checkpoint_key", "parse_index", "schema_key", "segment_key"]

CHAINS = "chains/"
_INDEX = re.compile(r"^(\d{10})\.(avro|json)$")


def segment_key(chain_id: str, index: int) -> str:
    return f"{CHAINS}{chain_id}/segments/{index:010d}.avro"


def checkpoint_key(chain_id: str, index: int) -> str:
    return f"{CHAINS}{chain_id}/checkpoints/{index:010d}.json"


def schema_key(schema_id: int) -> str:
    return f"schemas/{schema_id:010d}.json"


def parse_index(key: str) -> int | None:
    """The index in a segment or checkpoint key, None for anything else."""
    m = _INDEX.match(key.rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None


def chain_ids(keys: list[str]) -> list[str]:
    """The chain ids present in a listing of archive keys."""
    found = {k[len(CHAINS):].split("/", 1)[0] for k in keys if k.startswith(CHAINS)}
    return sorted(found)
