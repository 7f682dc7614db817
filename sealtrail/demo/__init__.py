"""``sealtrail demo``: the whole pipeline end to end on the embedded default."""
