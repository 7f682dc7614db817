"""A witness of an archive: ``sealtrail witness`` and what ``verify --witness`` reads.

A witness keeps, outside the archive, the newest heads it checked (every chain's
checkpoint and Merkle tree, the index log), checks on each run that the archive extends
them (RFC 9162 consistency proofs; no chain gone, behind or rewritten), and cosigns the
new heads with its own Ed25519 key as C2SP tlog-cosignatures. What the archive alone
cannot prove, that its newest part was removed whole, is proved against this record.
"""

from sealtrail.witness._records import (
    WitnessRecord,
    apply_records,
    load_record,
    record_findings,
    verify_with_witnesses,
)
from sealtrail.witness._run import GRACE_US, WitnessResult, run_witness

__all__ = ["GRACE_US", "WitnessRecord", "WitnessResult", "apply_records", "load_record",
           "record_findings", "run_witness", "verify_with_witnesses"]
