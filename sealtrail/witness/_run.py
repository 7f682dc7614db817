"""One witness run: check that the archive extends what the record says was seen, cosign
the new heads, record them; or record nothing at all."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from sealtrail.archive import ArchiveStore, ObjectMissingError
from sealtrail.core import layout, merkle
from sealtrail.core.chain_walk import Step
from sealtrail.core.checkpoint import SignedCheckpoint
from sealtrail.core.findings import ARCHIVE, Finding, Kind
from sealtrail.core.index import SignedIndex
from sealtrail.core.note import consistency_request, cosign
from sealtrail.core.signing import Ed25519Signer, Keyring
from sealtrail.core.witness import WitnessedChain, WitnessedIndex, WitnessState
from sealtrail.errors import ConfigError, IntegrityError
from sealtrail.verify import walk_chain
from sealtrail.verify._index import read_index
from sealtrail.witness._files import (
    load_or_create_key,
    load_state,
    safe_name,
    save_state,
    write_atomic,
)

__all__ = ["GRACE_US", "WitnessResult", "run_witness"]

#: A chain the witness has not seen may only be dated this far before its previous run
#: (an archiver writes a new chain's first checkpoint a moment before it can be listed).
GRACE_US = 300 * 1_000_000


@dataclass
class WitnessResult:
    """What a run found and, when nothing, what it recorded."""

    findings: list[Finding] = field(default_factory=list)
    state: WitnessState | None = None
    previous: WitnessState | None = None
    vkey: str = ""
    proofs: int = 0  # consistency proofs checked
    new_chains: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings


def _fail(result: WitnessResult, kind: Kind, chain_id: str, message: str,
          key: str | None = None) -> None:
    result.findings.append(Finding(kind, chain_id, message, key))


def _witness_chain(store: ArchiveStore, chain_id: str, keyring: Keyring, now: int,
                   old: WitnessedChain | None, result: WitnessResult
                   ) -> tuple[WitnessedChain | None, list[bytes] | None]:
    """The chain's new record, checked from the one recorded, and the consistency proof
    from the recorded tree to the new one (None when there is nothing to prove)."""
    leaves: list[bytes] = []
    purged = False

    def collect(step: Step) -> None:
        nonlocal purged
        purged = purged or step.purged
        if step.outcome is not None:
            leaves.extend(step.outcome.leaf_hashes)

    resume = None
    if old is not None:
        key = layout.checkpoint_key(chain_id, old.checkpoint_index)
        try:
            signed = SignedCheckpoint.from_bytes(store.get(key))
        except ObjectMissingError:
            _fail(result, Kind.ROLLBACK, chain_id, f"checkpoint {old.checkpoint_index}, which "
                  "the witness recorded, is gone: the chain was cut back", key)
            return None, None
        except IntegrityError as exc:
            _fail(result, Kind.MALFORMED, chain_id, f"checkpoint {old.checkpoint_index}: {exc}",
                  key)
            return None, None
        if signed.checkpoint_hash != old.checkpoint_hash:
            _fail(result, Kind.FORK, chain_id, f"checkpoint {old.checkpoint_index} is not the "
                  "one the witness recorded: the chain was rewritten", key)
            return None, None
        resume = (signed, old.frontier())
    walk = walk_chain(store, chain_id, keyring, now=now, on_step=collect, resume=resume)
    if walk.finding is not None:
        result.findings.append(walk.finding)
        return None, None
    if walk.last is None or walk.frontier is None:
        return None, None  # no checkpoint yet: nothing to witness
    cp = walk.last.checkpoint
    new = WitnessedChain(chain_id, cp.index, walk.last.checkpoint_hash, walk.frontier.size,
                         walk.frontier.root(), tuple(walk.frontier.nodes))
    if old is None or old.tree_size == 0 or purged:
        return new, None  # no earlier tree, or its leaves are purged: links were checked
    proof = merkle.consistency_proof(old.frontier(), leaves)
    try:
        merkle.verify_consistency(old.tree_size, new.tree_size, old.tree_root, new.tree_root,
                                  proof)
    except IntegrityError as exc:
        _fail(result, Kind.FORK, chain_id, f"not an append-only extension of what the witness "
              f"recorded: {exc}")
        return None, None
    result.proofs += 1
    return new, proof


def _witness_index(store: ArchiveStore, keyring: Keyring, old: WitnessedIndex | None,
                   result: WitnessResult) -> tuple[SignedIndex | None, list[bytes] | None]:
    """The archive's newest index, checked to extend the recorded one (consistency proof
    over the index log), and that proof."""
    view = read_index(store, keyring)
    result.findings.extend(view.findings)
    newest = view.newest
    if old is None or view.findings:
        return newest, None
    if newest is None or newest.seq < old.seq:
        _fail(result, Kind.ROLLBACK, ARCHIVE, f"the archive's newest index is "
              f"{'none' if newest is None else newest.seq}; the witness recorded index "
              f"{old.seq}: newer indexes were removed", layout.index_key(old.seq))
        return None, None
    if newest.statement.archive_id != old.archive_id:
        _fail(result, Kind.FORK, ARCHIVE, f"the archive is {newest.statement.archive_id}, the "
              f"witness recorded {old.archive_id}")
        return None, None
    hashes = []
    for seq in range(old.seq, newest.seq + 1):
        try:
            found = SignedIndex.from_bytes(store.get(layout.index_key(seq)))
        except (ObjectMissingError, IntegrityError) as exc:
            _fail(result, Kind.MISSING, ARCHIVE, f"index {seq}: {exc}", layout.index_key(seq))
            return None, None
        hashes.append(found.index_hash)
    if hashes[0] != old.index_hash:
        _fail(result, Kind.FORK, ARCHIVE, f"index {old.seq} is not the one the witness "
              "recorded", layout.index_key(old.seq))
        return None, None
    proof = merkle.consistency_proof(merkle.Frontier(old.log_size, old.log_frontier),
                                     merkle.leaf_hashes(hashes[1:]))
    try:
        merkle.verify_consistency(old.log_size, newest.seq + 1, old.log_root,
                                  newest.log_root(), proof)
    except IntegrityError as exc:
        _fail(result, Kind.FORK, ARCHIVE, f"the index log is not an append-only extension of "
              f"what the witness recorded: {exc}")
        return None, None
    result.proofs += 1
    return newest, proof


def run_witness(store: ArchiveStore, keyring: Keyring, state_dir: Path, *, name: str,
                origin: str = "sealtrail", now: int | None = None) -> WitnessResult:
    """Witness ``store`` into ``state_dir``. Nothing is recorded unless everything checks
    out: the record, the notes and the proofs are written only when ``result.ok``."""
    now = now if now is not None else time.time_ns() // 1000
    signer, vkey = load_or_create_key(state_dir, name)
    previous = load_state(state_dir)
    result = WitnessResult(previous=previous, vkey=vkey)
    if previous is not None and previous.name != name:
        raise ConfigError(f"{state_dir} is the record of witness {previous.name!r}, not "
                          f"{name!r}")
    newest, index_proof = _witness_index(store, keyring, previous.index if previous else None,
                                         result)
    chain_ids = layout.chain_ids(store.list(layout.CHAINS))
    old_chains = dict(previous.chains) if previous else {}
    for gone in sorted(set(old_chains) - set(chain_ids)):
        _fail(result, Kind.MISSING, gone, f"the chain is gone: the witness recorded it at "
              f"checkpoint {old_chains[gone].checkpoint_index}")
    listed = {c.chain_id for c in newest.chains} if newest is not None else set()
    for gone in sorted(listed - set(chain_ids)):
        _fail(result, Kind.MISSING, gone, "the chain is gone: the archive's newest index "
              "lists it")
    chains: dict[str, WitnessedChain] = {}
    proofs: dict[str, list[bytes]] = {}
    for chain_id in chain_ids:
        new, proof = _witness_chain(store, chain_id, keyring, now, old_chains.get(chain_id),
                                    result)
        if new is None:
            continue
        if chain_id not in old_chains and previous is not None:
            result.new_chains += 1
            _check_new_chain(store, chain_id, previous, newest, result)
        chains[chain_id] = new
        if proof is not None:
            proofs[chain_id] = proof
    if not result.ok:
        return result  # a rollback, fork or missing chain: record nothing
    index = None
    if newest is not None:
        log = newest.statement.log()
        log.append(merkle.leaf_hash(newest.index_hash))
        index = WitnessedIndex(newest.statement.archive_id, newest.seq, newest.index_hash,
                               log.root(), tuple(log.nodes), newest.statement.created_at)
    result.state = WitnessState(name, origin, now, index, chains)
    _record(state_dir, result, signer, now, previous, proofs, index_proof)
    return result


def _check_new_chain(store: ArchiveStore, chain_id: str, previous: WitnessState,
                     newest: SignedIndex | None, result: WitnessResult) -> None:
    """A chain the witness has not seen must be newer than its previous run, and in the
    newest index when it is older than that: else it was added behind their backs."""
    first = SignedCheckpoint.from_bytes(store.get(layout.checkpoint_key(chain_id, 0)))
    created = first.checkpoint.created_at
    if created < previous.witnessed_at - GRACE_US:
        _fail(result, Kind.UNINDEXED, chain_id, "a chain the witness had not seen, dated "
              "before its previous run: it was added to the archive later (planted, or "
              "signed with a retired key)", layout.checkpoint_key(chain_id, 0))
    elif newest is not None and newest.chain(chain_id) is None and \
            created < newest.statement.created_at - GRACE_US:
        _fail(result, Kind.UNINDEXED, chain_id, "the chain is older than the newest index "
              f"{newest.seq} but not in it", layout.checkpoint_key(chain_id, 0))


def _record(state_dir: Path, result: WitnessResult, signer: Ed25519Signer, now: int,
            previous: WitnessState | None, proofs: dict[str, list[bytes]],
            index_proof: list[bytes] | None) -> None:
    """Write the cosigned notes, the proofs checked, then the record (last: a crash before
    it leaves the previous record in force)."""
    state = result.state
    assert state is not None
    seconds = now // 1_000_000
    heads = [(state.origin + "/" + c, w.note_body(state.origin), c)
             for c, w in state.chains.items()]
    if state.index is not None:
        heads.append(("index", state.index.note_body(state.origin), None))
    for label, body, chain_id in heads:
        note = body + b"\n" + cosign(body, state.name, signer, signer.public_key, seconds)
        write_atomic(state_dir / "notes" / f"{safe_name(label)}.note", note)
        old_size = None
        if chain_id is not None and previous and chain_id in previous.chains:
            old_size, proof = previous.chains[chain_id].tree_size, proofs.get(chain_id)
        elif chain_id is None and previous and previous.index is not None:
            old_size, proof = previous.index.log_size, index_proof
        if old_size is not None and proof is not None:
            write_atomic(state_dir / "proofs" / f"{safe_name(label)}.txt",
                         consistency_request(old_size, proof, note))
    save_state(state_dir, state)
