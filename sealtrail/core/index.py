"""The signed archive index: every chain of the archive and its head, in one statement.

The archiver writes index ``n`` (``index/<n:010d>.json``) with each flush and heartbeat:
every chain it or an earlier index knows, with the checkpoint the chain had reached
(index, hash, tree size, head hash, raw topic and partition), and every schema file with
its SHA-256. Chains and schemas are RFC 6962 Merkle-rooted, and the signed statement holds
the roots, so the list cannot change without the signature failing; the statement links to
the previous index by its hash and carries the compact range of all earlier index hashes,
so the indexes themselves form a log with consistency proofs (the witness uses them).

What an index makes provable that the chains alone cannot: a chain the newest index lists
must be there, at or past the checkpoint it lists (else *missing* or *rollback*); a chain
older than the newest index must be in it (else *unindexed*: planted, or signed later with
an old key). What it cannot: the newest indexes removed together with the newest
checkpoints (a rollback of the whole archive) look like an archive that stopped earlier;
a witness's record, kept elsewhere, catches that.

Pure: bytes in, values out. See docs/format.md, "Archive index".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sealtrail.core import layout, merkle
from sealtrail.core.canonical import canonical_json
from sealtrail.core.findings import ARCHIVE, Finding, Kind
from sealtrail.core.hashing import HASH_SIZE, INDEX_DOMAIN, SIG_INDEX_DOMAIN, ZERO_HASH, sha256
from sealtrail.core.hexfield import hex_bytes
from sealtrail.core.signing import Keyring, Signer
from sealtrail.errors import IntegrityError

__all__ = ["INDEX_FORMAT", "UNINDEXED_GRACE_US", "ChainSeen", "IndexStatement", "IndexedChain",
           "IndexedSchema", "SignedIndex", "index_findings", "index_problems", "next_index"]

INDEX_FORMAT = "sealtrail-index/v1"
_STATEMENT = ("archive_id", "seq", "prev_index_hash", "created_at", "key_id", "chains_size",
              "chains_root", "schemas_size", "schemas_root", "log_frontier")


def _int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise IntegrityError(f"index field {name!r} must be an integer")
    return value


def _hash(value: Any, name: str) -> bytes:
    return hex_bytes(value, f"index field {name!r}", HASH_SIZE)


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise IntegrityError(f"index field {name!r} must be a string")
    return value


@dataclass(frozen=True)
class IndexedChain:
    """One chain in an index: the newest checkpoint the writer had seen of it."""

    chain_id: str
    checkpoint_index: int
    checkpoint_hash: bytes
    tree_size: int  # last_seq + 1
    head_hash: bytes
    topic: str  # the raw topic its entries come from ("" when not known)
    partition: int  # the raw partition (-1 when not known)

    def to_json(self) -> dict[str, Any]:
        return {"chain_id": self.chain_id, "checkpoint_index": self.checkpoint_index,
                "checkpoint_hash": self.checkpoint_hash.hex(), "tree_size": self.tree_size,
                "head_hash": self.head_hash.hex(), "topic": self.topic,
                "partition": self.partition}

    @classmethod
    def from_json(cls, doc: Any) -> IndexedChain:
        if not isinstance(doc, dict) or set(doc) != set(cls.__dataclass_fields__):
            raise IntegrityError("an index chain entry has exactly the fields of the format")
        return cls(_str(doc["chain_id"], "chain_id"),
                   _int(doc["checkpoint_index"], "checkpoint_index"),
                   _hash(doc["checkpoint_hash"], "checkpoint_hash"),
                   _int(doc["tree_size"], "tree_size"), _hash(doc["head_hash"], "head_hash"),
                   _str(doc["topic"], "topic"), _int(doc["partition"], "partition"))


@dataclass(frozen=True)
class IndexedSchema:
    """One schema file in an index, by key and SHA-256 of its bytes."""

    key: str
    sha256: bytes

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "sha256": self.sha256.hex()}

    @classmethod
    def from_json(cls, doc: Any) -> IndexedSchema:
        if not isinstance(doc, dict) or set(doc) != {"key", "sha256"}:
            raise IntegrityError("an index schema entry has exactly the fields key, sha256")
        return cls(_str(doc["key"], "key"), _hash(doc["sha256"], "sha256"))


def _root(items: Iterable[IndexedChain | IndexedSchema]) -> bytes:
    return merkle.root([canonical_json(item.to_json()) for item in items])


@dataclass(frozen=True)
class IndexStatement:
    """What an index signs."""

    archive_id: str
    seq: int
    prev_index_hash: bytes
    created_at: int
    key_id: str
    chains_size: int
    chains_root: bytes
    schemas_size: int
    schemas_root: bytes
    log_frontier: tuple[bytes, ...]  # compact range of the hashes of indexes 0..seq-1

    def to_json(self) -> dict[str, Any]:
        return {"archive_id": self.archive_id, "seq": self.seq,
                "prev_index_hash": self.prev_index_hash.hex(), "created_at": self.created_at,
                "key_id": self.key_id, "chains_size": self.chains_size,
                "chains_root": self.chains_root.hex(), "schemas_size": self.schemas_size,
                "schemas_root": self.schemas_root.hex(),
                "log_frontier": [h.hex() for h in self.log_frontier]}

    @classmethod
    def from_json(cls, doc: Any) -> IndexStatement:
        if not isinstance(doc, dict) or set(doc) != set(_STATEMENT):
            raise IntegrityError("an index statement has exactly the fields of the format")
        frontier = doc["log_frontier"]
        if not isinstance(frontier, list):
            raise IntegrityError("index field 'log_frontier' must be a list")
        return cls(_str(doc["archive_id"], "archive_id"), _int(doc["seq"], "seq"),
                   _hash(doc["prev_index_hash"], "prev_index_hash"),
                   _int(doc["created_at"], "created_at"), _str(doc["key_id"], "key_id"),
                   _int(doc["chains_size"], "chains_size"),
                   _hash(doc["chains_root"], "chains_root"),
                   _int(doc["schemas_size"], "schemas_size"),
                   _hash(doc["schemas_root"], "schemas_root"),
                   tuple(_hash(h, "log_frontier") for h in frontier))

    def digest(self) -> bytes:
        return sha256(INDEX_DOMAIN, canonical_json(self.to_json()))

    def log(self) -> merkle.Frontier:
        """The compact range of indexes 0..seq-1 (IntegrityError when it cannot be one)."""
        return merkle.Frontier(self.seq, self.log_frontier)


@dataclass(frozen=True)
class SignedIndex:
    """An index as archived: the signed statement with the lists it roots."""

    statement: IndexStatement
    chains: tuple[IndexedChain, ...]
    schemas: tuple[IndexedSchema, ...]
    index_hash: bytes
    signature: bytes

    def to_bytes(self) -> bytes:
        return canonical_json({
            "format": INDEX_FORMAT, "index": self.statement.to_json(),
            "chains": [c.to_json() for c in self.chains],
            "schemas": [s.to_json() for s in self.schemas],
            "index_hash": self.index_hash.hex(), "signature": self.signature.hex()})

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedIndex:
        """Parse an archived index; IntegrityError when it is not one."""
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise IntegrityError(f"index is not JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT:
            raise IntegrityError(f"index format is not {INDEX_FORMAT}")
        if set(doc) != {"format", "index", "chains", "schemas", "index_hash", "signature"}:
            raise IntegrityError(f"index members are {sorted(doc)}")
        if not isinstance(doc["chains"], list) or not isinstance(doc["schemas"], list):
            raise IntegrityError("index chains and schemas must be lists")
        signature = doc["signature"]
        if not isinstance(signature, str) or len(signature) != 128:
            raise IntegrityError("index signature must be 128 hex characters")
        try:
            sig = bytes.fromhex(signature)
        except ValueError:
            raise IntegrityError("index signature is not hex") from None
        return cls(IndexStatement.from_json(doc["index"]),
                   tuple(IndexedChain.from_json(c) for c in doc["chains"]),
                   tuple(IndexedSchema.from_json(s) for s in doc["schemas"]),
                   _hash(doc["index_hash"], "index_hash"), sig)

    def problem(self, keyring: Keyring) -> str | None:
        """None when the index is what its signer signed: the hash of the statement, the
        signature by a trusted key valid at ``created_at``, the lists sorted, unique and
        rooted in the statement, and the log's compact range well formed."""
        st = self.statement
        digest = st.digest()
        if digest != self.index_hash:
            return (f"index hash {self.index_hash.hex()} does not match its statement "
                    f"(calculated {digest.hex()})")
        found = keyring.verify(st.key_id, SIG_INDEX_DOMAIN + digest, self.signature,
                               at_us=st.created_at)
        if found:
            return found
        ids = [c.chain_id for c in self.chains]
        keys = [s.key for s in self.schemas]
        if ids != sorted(set(ids)) or keys != sorted(set(keys)):
            return "index lists are not sorted and unique"
        if (len(self.chains), _root(self.chains)) != (st.chains_size, st.chains_root):
            return "the chains listed are not the ones the signed statement roots"
        if (len(self.schemas), _root(self.schemas)) != (st.schemas_size, st.schemas_root):
            return "the schemas listed are not the ones the signed statement roots"
        if st.seq == 0 and st.prev_index_hash != ZERO_HASH:
            return "index 0 must link to the zero hash"
        try:
            st.log()
        except IntegrityError as exc:
            return f"log_frontier: {exc}"
        return None

    @property
    def seq(self) -> int:
        return self.statement.seq

    def log_root(self) -> bytes:
        """The root of the index log through this index (indexes 0..seq)."""
        log = self.statement.log()
        log.append(merkle.leaf_hash(self.index_hash))
        return log.root()

    def chain(self, chain_id: str) -> IndexedChain | None:
        for c in self.chains:
            if c.chain_id == chain_id:
                return c
        return None


def next_index(previous: SignedIndex | None, *, archive_id: str, created_at: int,
               signer: Signer, chains: Mapping[str, IndexedChain],
               schemas: Mapping[str, IndexedSchema]) -> SignedIndex:
    """The index after ``previous`` (None: index 0 of a new archive id): its chains and
    schemas, with ``chains`` and ``schemas`` added or moved forward (a chain never moves
    back: the later of the two checkpoints is kept)."""
    merged = {c.chain_id: c for c in previous.chains} if previous else {}
    for chain_id, head in chains.items():
        old = merged.get(chain_id)
        if old is None or head.checkpoint_index >= old.checkpoint_index:
            merged[chain_id] = head
    all_schemas = {s.key: s for s in previous.schemas} if previous else {}
    all_schemas.update(schemas)
    listed = tuple(merged[c] for c in sorted(merged))
    schema_list = tuple(all_schemas[k] for k in sorted(all_schemas))
    if previous is None:
        seq, prev, log = 0, ZERO_HASH, merkle.Frontier()
    else:
        seq, prev = previous.seq + 1, previous.index_hash
        log = previous.statement.log()
        log.append(merkle.leaf_hash(previous.index_hash))
        archive_id = previous.statement.archive_id
    statement = IndexStatement(archive_id, seq, prev, created_at, signer.key_id, len(listed),
                               _root(listed), len(schema_list), _root(schema_list),
                               tuple(log.nodes))
    digest = statement.digest()
    return SignedIndex(statement, listed, schema_list, digest,
                       signer.sign(SIG_INDEX_DOMAIN + digest))


def index_problems(newer: SignedIndex, older: SignedIndex) -> list[str]:
    """Why ``newer`` is not an append-only successor of ``older`` (both already checked
    with :meth:`SignedIndex.problem`): the same archive, linked by hash when consecutive,
    with the log's compact range extended by ``older``, and every chain of ``older``
    still there, at or past the checkpoint it had."""
    a, b = older.statement, newer.statement
    problems = []
    if b.archive_id != a.archive_id:
        problems.append(f"index {b.seq} is of archive {b.archive_id}, index {a.seq} of "
                        f"{a.archive_id}")
    if b.seq <= a.seq:
        problems.append(f"index {b.seq} is not after index {a.seq}")
        return problems
    if b.seq == a.seq + 1 and b.prev_index_hash != older.index_hash:
        problems.append(f"index {b.seq} does not link to index {a.seq}")
    if b.seq == a.seq + 1:
        log = a.log()
        log.append(merkle.leaf_hash(older.index_hash))
        if tuple(log.nodes) != b.log_frontier:
            problems.append(f"index {b.seq}'s log does not extend index {a.seq}'s")
    for old in older.chains:
        new = newer.chain(old.chain_id)
        if new is None:
            problems.append(f"chain {old.chain_id} is in index {a.seq} but not in index "
                            f"{b.seq}")
        elif new.checkpoint_index < old.checkpoint_index or (
                new.checkpoint_index == old.checkpoint_index
                and new.checkpoint_hash != old.checkpoint_hash):
            problems.append(f"chain {old.chain_id} goes back from checkpoint "
                            f"{old.checkpoint_index} in index {a.seq} to "
                            f"{new.checkpoint_index} in index {b.seq}")
    return problems


@dataclass(frozen=True)
class ChainSeen:
    """What verify found of one chain, as far as the index is concerned."""

    chain_id: str
    first_checkpoint_at: int | None  # None: not even its first checkpoint checked out
    version: int  # the highest checkpoint format version of the chain
    broken: bool  # the chain already has a finding of its own


#: How much older than the newest index a chain it does not list may be: a new chain's
#: first checkpoint is written a moment before its archiver lists it, and another
#: archiver may write an index in between (it cannot list a chain it has not seen).
UNINDEXED_GRACE_US = 300 * 1_000_000


def index_findings(newest: SignedIndex | None, seen: Iterable[ChainSeen], *,
                   present: bool | None = None,
                   grace_us: int = UNINDEXED_GRACE_US) -> tuple[list[Finding], list[str]]:
    """The chains missing from the archive that the newest index lists, and the chains of
    the archive that no index lists although they are older than the newest index by more
    than ``grace_us`` (*unindexed*); with no index at all (``present`` false), a finding
    when the archive's checkpoints say it was written with one (format v2). Also what
    cannot be proven, as notes."""
    seen = list(seen)
    findings: list[Finding] = []
    notes: list[str] = []
    if newest is None and present:  # there are indexes, but the newest does not check out
        return findings, notes
    if newest is None:
        v2 = sorted(c.chain_id for c in seen if c.version >= 2)
        if v2:
            findings.append(Finding(
                Kind.MISSING, ARCHIVE, f"the archive holds no signed index, but chain(s) "
                f"{', '.join(v2[:3])}{' ...' if len(v2) > 3 else ''} have checkpoints of "
                "format v2, which are written together with one: the index was removed",
                layout.INDEX))
        else:
            notes.append("no signed archive index (an archive of format v1): a whole chain "
                         "deleted, or the newest entries of a chain removed with their "
                         "checkpoints, cannot be told from an archive that never had them; "
                         "only a witness's record (verify --witness) can")
        return findings, notes
    st = newest.statement
    in_archive = {c.chain_id: c for c in seen}
    where = layout.index_key(st.seq)
    for listed in newest.chains:
        if listed.chain_id not in in_archive:
            findings.append(Finding(
                Kind.MISSING, listed.chain_id, f"the chain is gone: the signed archive index "
                f"{st.seq} lists it at checkpoint {listed.checkpoint_index} (seq "
                f"{listed.tree_size - 1})", layout.checkpoint_key(listed.chain_id, 0), 0,
                f"checkpoint {listed.checkpoint_index}", "no object"))
    pending = []
    for chain in seen:
        if newest.chain(chain.chain_id) is not None or chain.broken:
            continue
        if chain.first_checkpoint_at is not None and \
                chain.first_checkpoint_at < st.created_at - grace_us:
            findings.append(Finding(
                Kind.UNINDEXED, chain.chain_id, f"the chain is in no signed archive index, "
                f"although its first checkpoint is older than the newest index {st.seq}: it "
                "was added to the archive later (planted, or signed with a retired key)",
                where, 0))
        else:
            pending.append(chain.chain_id)
    if pending:
        notes.append(f"{len(pending)} chain(s) began after the newest index {st.seq} and are "
                     f"not indexed yet: {', '.join(sorted(pending)[:5])}")
    return findings, notes
