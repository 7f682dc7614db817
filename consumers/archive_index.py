"""Writing the signed archive index (docs/format.md, "Archive index").

With each flush and heartbeat the archiver writes the next index: every chain it knows
with the checkpoint it has reached, carried over into the chains and schemas of the newest
index already in the archive. Several archivers share one series: each index is written
with a conditional put (never over another), and a writer that loses the race reads the
index that won and writes the next one.

An index is only ever written on top of an index this writer checked: signed by a trusted
key, and an append-only successor of the newest one it saw before (no chain gone or moved
back). Anything else is an :class:`IndexTailError`: the archiver stops writing indexes,
says so loudly and counts it in a metric, rather than sign on top of what it did not check.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from sealtrail.archive import ArchiveError, ArchiveStore, ObjectExistsError, ObjectMissingError
from sealtrail.core import layout
from sealtrail.core.index import (
    IndexedChain,
    IndexedSchema,
    SignedIndex,
    index_problems,
    next_index,
)
from sealtrail.core.signing import Keyring, Signer
from sealtrail.errors import IntegrityError
from sealtrail.governance.retention import RetentionPolicy

__all__ = ["IndexTailError", "IndexWriter", "newest_index_key"]

log = logging.getLogger("sealtrail.archiver")

_ATTEMPTS = 8


class IndexTailError(IntegrityError):
    """The newest archive index does not check out: no index is written on top of it."""


def newest_index_key(store: ArchiveStore) -> str | None:
    """The key of the highest-numbered index in the archive, by listing."""
    keys = [k for k in store.list(layout.INDEX) if layout.parse_index(k) is not None]
    return max(keys, key=lambda k: layout.parse_index(k) or 0) if keys else None


class IndexWriter:
    """Writes the archive index series for one archiver process."""

    def __init__(self, store: ArchiveStore, signer: Signer,
                 keyring: Keyring | Callable[[], Keyring], policy: RetentionPolicy,
                 clock: Callable[[], int] = lambda: time.time_ns() // 1000) -> None:
        self.store = store
        self._signer = signer
        self._keyring = keyring
        self._policy = policy
        self._clock = clock
        self.newest: SignedIndex | None = None  # the newest index this writer checked
        self._looked = False
        self.written = 0
        self.broken: str | None = None  # why no index is written any more

    def _read(self, seq: int) -> SignedIndex | None:
        try:
            data = self.store.get(layout.index_key(seq))
        except ObjectMissingError:
            return None
        found = SignedIndex.from_bytes(data)
        keyring = self._keyring() if callable(self._keyring) else self._keyring
        problem = found.problem(keyring)
        if problem:
            raise IndexTailError(f"archive index {seq} does not check out: {problem}")
        if found.seq != seq:
            raise IndexTailError(f"archive index file {seq} holds index {found.seq}")
        return found

    def refresh(self) -> SignedIndex | None:
        """The newest index in the archive, checked; the first call lists the archive,
        later ones look for the indexes after the newest one already checked."""
        if not self._looked:
            key = newest_index_key(self.store)
            self._looked = True
            if key is not None:
                self.newest = self._read(layout.parse_index(key) or 0)
        while True:
            ahead = self._read(self.newest.seq + 1 if self.newest is not None else 0)
            if ahead is None:
                return self.newest
            if self.newest is not None:
                problems = index_problems(ahead, self.newest)
                if problems:
                    raise IndexTailError(f"archive index {ahead.seq} is not an append-only "
                                         f"successor of index {self.newest.seq}: "
                                         + "; ".join(problems))
            self.newest = ahead

    def write(self, chains: Mapping[str, IndexedChain],
              schemas: Mapping[str, IndexedSchema]) -> SignedIndex | None:
        """Write the next index with ``chains`` and ``schemas`` added or moved forward.
        None when indexes are no longer written (see ``broken``); IndexTailError the first
        time the newest index does not check out."""
        if self.broken is not None:
            return None
        try:
            for _ in range(_ATTEMPTS):
                previous = self.refresh()
                heads = dict(chains)
                if previous is not None:  # keep what is known of a chain's raw partition
                    for chain_id, head in chains.items():
                        old = previous.chain(chain_id)
                        if old is not None and not head.topic:
                            heads[chain_id] = IndexedChain(
                                head.chain_id, head.checkpoint_index, head.checkpoint_hash,
                                head.tree_size, head.head_hash, old.topic, old.partition)
                index = next_index(previous, archive_id=secrets.token_hex(16),
                                   created_at=self._clock(), signer=self._signer,
                                   chains=heads, schemas=schemas)
                cls_ = self._policy.classes[self._policy.default_class]
                try:
                    self.store.put(layout.index_key(index.seq), index.to_bytes(),
                                   retention=self._policy.retention(cls_, datetime.now(UTC)))
                except ObjectExistsError:
                    continue  # another archiver wrote that index first: build on it
                self.newest = index
                self.written += 1
                return index
            raise ArchiveError(f"archive index kept changing under {_ATTEMPTS} concurrent "
                               "writes; will try again at the next flush")
        except IndexTailError as exc:
            self.broken = str(exc)
            log.error("NOT WRITING THE ARCHIVE INDEX ANY MORE: %s. Chains are still "
                      "archived, but verify will report them ahead of the newest index; "
                      "investigate the archive (docs/runbooks.md) and restart", exc)
            raise
