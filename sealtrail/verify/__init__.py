"""Verifying an archive against a pinned keyring: the shell around the one verifier.

The checks themselves are pure and live in the functional core
(:mod:`sealtrail.core.chain_walk`, :mod:`sealtrail.core.segment_check`); this package
fetches the bytes (:mod:`._reader`, which replay, search, export, report, ``prove``,
completeness, the archiver and the witness read the archive through), adds what needs the
store (Object Lock states, legal holds) and reports. It decides nothing about exit codes
(the CLI does).

For each chain, checkpoints are walked in order. Each must be signed by a trusted key,
link to the previous checkpoint and continue its seq range; its segment must exist with
the recorded SHA-256, hold exactly the entries first_seq..last_seq, each hashing to its
entry_hash, linking to the one before, signed by a trusted key, with the Merkle root and
head the checkpoint states. Raw source offsets must follow each other (completeness, G1).
The first break in a chain is reported with its segment and seq; other chains are still
checked.
"""

from __future__ import annotations

from sealtrail.core.findings import Finding, Kind
from sealtrail.verify._archive import ArchiveReport, verify_archive
from sealtrail.verify._chain import ChainReport, verify_chain
from sealtrail.verify._locks import check_holds
from sealtrail.verify._reader import (
    ArchiveReader,
    ChainPlan,
    Junction,
    check_planned,
    exact_break,
    now_us,
    plan_chain,
    walk_chain,
)

__all__ = ["ArchiveReader", "ArchiveReport", "ChainPlan", "ChainReport", "Finding", "Junction",
           "Kind", "check_holds", "check_planned", "exact_break", "now_us", "plan_chain",
           "verify_archive", "verify_chain", "walk_chain"]
